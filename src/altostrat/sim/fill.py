"""`--arrivals fill:F`: the FGD paper's (Weng et al., USENIX ATC'23) fill experiment.

The pod list is topped up with copies of its pods drawn at random with replacement until
the pods ask for F x the cluster's GPU capacity in milli-GPUs (or, when above, pods are
removed in random order until they no longer exceed it). Then the pods arrive one by
one in a seeded shuffled order and never leave: each is placed by the policy's
placement piece on the shared ClusterState, or counted as failed (a reject) when it fits
nowhere, and the next pod is tried. The order piece plays no part: nothing ever waits.

Pod k arrives at virtual time k seconds. The event log records a submit, then a start
or a reject, for every pod, so the usual metrics apply: jobs_unschedulable counts the
failed pods and jobs_unfinished the placed ones (there are no departures).

The fill curve samples the cluster each time the GPU milli asked by the pods so far
first reaches a multiple of 0.05 of the capacity, plus once after the last pod. All
three fractions are of the cluster's GPU capacity in milli-GPUs: arrived = asked by the
pods so far (placed or failed), allocated = granted to placed pods, and unallocated =
1 - allocated, the capacity not allocated (the paper's "Unalloc. GPU" axis).
"""

from __future__ import annotations

import dataclasses
import math
import time as wallclock
from array import array
from collections.abc import Callable

import numpy as np

from altostrat.catalog.power import cluster_power
from altostrat.cluster.state import ClusterState
from altostrat.policy.registry import Policy
from altostrat.sim.eventlog import REJECT, START, SUBMIT, EventLog
from altostrat.sim.simulator import SimResult
from altostrat.spec.load import SpecError
from altostrat.workload.job import Job

STEPS = 20  # curve points per 1.0 of capacity: one every 0.05
FITS_NOWHERE = "fits nowhere when it arrives (fill mode: pods never leave)"


def parse_arrivals(text: str) -> float:
    """`fill:F` -> F (> 0)."""
    kind, _, value = text.partition(":")
    try:
        factor = float(value)
    except ValueError:
        factor = -1.0
    if kind.strip() != "fill" or not factor > 0 or not math.isfinite(factor):
        raise SpecError(f"--arrivals {text!r}: write fill:F with F > 0, e.g. fill:1.3 (pods asking 1.3x the GPU capacity)")
    return factor


def fill_workload(jobs: list[Job], capacity_milli: int, factor: float, seed: int) -> list[Job]:
    """The pods of one fill run in arrival order: topped up or pruned to factor x capacity, shuffled.

    Copies get the id `ORIGINAL~N`. Pod k is numbered k and submitted at time k.
    """
    if not jobs:
        raise SpecError("--arrivals fill: the workload has no pods")
    target = factor * capacity_milli
    rng = np.random.default_rng(seed)
    pods = list(jobs)
    asked = sum(j.gpu_milli_total for j in pods)
    if asked < target:
        if not any(j.gpu_milli for j in jobs):
            raise SpecError("--arrivals fill: no pod asks for a GPU, so the pod list cannot reach the GPU target")
        copies: dict[str, int] = {}
        while asked < target:
            src = jobs[int(rng.integers(len(jobs)))]
            copies[src.id] = copies.get(src.id, 0) + 1
            pods.append(dataclasses.replace(src, id=f"{src.id}~{copies[src.id]}"))
            asked += src.gpu_milli_total
    elif asked > target:
        drop = set()
        for i in rng.permutation(len(pods)).tolist():
            if asked <= target:
                break
            drop.add(i)
            asked -= pods[i].gpu_milli_total
        pods = [p for i, p in enumerate(pods) if i not in drop]
    order = rng.permutation(len(pods)).tolist()
    out = []
    for k, i in enumerate(order):
        out.append(dataclasses.replace(pods[i], submit=float(k), idx=k))
    return out


def simulate_fill(
    pods: list[Job],
    state: ClusterState,
    policy: Policy,
    progress: Callable[[int, int], None] | None = None,
) -> tuple[SimResult, list[dict]]:
    """Place `pods` (from fill_workload) one by one; return the run and its fill curve."""
    placement = policy.placement
    prepare = getattr(placement, "prepare", None)
    if prepare is not None:  # a placement that models the target workload sees the whole pod list
        prepare(pods)
    log = EventLog()
    decision_ns = array("q")
    reasons: dict[int, str] = {}
    capacity = state.gpu_capacity_milli
    if not capacity:
        raise SpecError("--arrivals fill: the cluster has no GPUs")
    curve: list[dict] = []
    arrived = allocated = 0
    next_step = 1
    clock = wallclock.perf_counter_ns
    wall0 = wallclock.perf_counter()
    n = len(pods)
    for k, job in enumerate(pods):
        now = float(k)
        log.append(now, SUBMIT, k)
        arrived += job.gpu_milli_total
        why = state.never_fits(job)
        if why is not None:
            log.append(now, REJECT, k)
            reasons[k] = why
        else:
            t0 = clock()
            plan = placement.place(job, state)
            decision_ns.append(clock() - t0)
            if plan is None:
                log.append(now, REJECT, k)
                reasons[k] = FITS_NOWHERE
            else:
                alloc = state.allocate(job, plan)
                allocated += job.gpu_milli_total
                log.append(now, START, k, job.gpu_milli_total, job.cpu_milli * job.tasks, alloc[0][0])
        if arrived * STEPS >= next_step * capacity or k == n - 1:  # integers: steps are exact
            curve.append(_point(arrived, allocated, capacity))
            while arrived * STEPS >= next_step * capacity:
                next_step += 1
        if progress is not None and not k & 1023:
            progress(k, n)
    if progress is not None:
        progress(n, n)
    result = SimResult(
        jobs=pods,
        log=log,
        decision_ns=decision_ns,
        wall_s=wallclock.perf_counter() - wall0,
        events=n,
        gpu_capacity_milli=capacity,
        cpu_capacity_milli=state.cpu_capacity_milli,
        until=None,
        warmup=0.0,
        reject_reasons=reasons,
        price_per_s=state.price_per_s,
        power=cluster_power(state.nodes),
        nodes=tuple(state.nodes),
    )
    return result, curve


def _point(arrived: int, allocated: int, capacity: int) -> dict:
    return {
        "arrived_fraction": arrived / capacity,
        "allocated_gpu_fraction": allocated / capacity,
        "unallocated_gpu_fraction": 1 - allocated / capacity,
    }
