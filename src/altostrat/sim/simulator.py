"""The discrete-event simulator: the engine driven by a virtual clock.

Time jumps from event to event: arrivals (read in submit order, never all pushed on the
heap), completions (pushed when a job starts, dropped if it was preempted meanwhile),
wake-ups (only when a policy piece asks for one) and, for spot nodes, revocation notices,
revocations and returns drawn from a seeded hazard model. Its cost grows with events, not
with simulated time.
"""

from __future__ import annotations

import heapq
import random
import time as wallclock
from array import array
from collections.abc import Callable
from dataclasses import dataclass

from altostrat.catalog.power import NodePower, cluster_power
from altostrat.cluster.state import ClusterState, Node
from altostrat.engine import PREEMPT, REJECT, REVOKED, START, Decision, Engine, PolicyContext
from altostrat.policy.registry import Policy
from altostrat.sim.eventlog import (FINISH, NODE_DOWN, NODE_UP, NOTICE, SUBMIT, EventLog, PREEMPT as LOG_PREEMPT,
                                    REJECT as LOG_REJECT, START as LOG_START)
from altostrat.workload.job import Job

# heap event kinds, in the order they apply at equal times
_FINISH, _WAKE, _NOTICE, _REVOKE, _RESTORE = range(5)


@dataclass
class SimResult:
    jobs: list[Job]
    log: EventLog
    decision_ns: array  # wall time of each engine call that made a decision
    wall_s: float
    events: int
    gpu_capacity_milli: int
    cpu_capacity_milli: int
    until: float | None
    warmup: float
    reject_reasons: dict[int, str]
    price_per_s: float | None = None  # the cluster's, for cost (None when no node is priced)
    power: tuple[NodePower | None, ...] = ()  # per node index, for energy and carbon (None: no power model)
    nodes: tuple[Node, ...] = ()  # the cluster's nodes, for per-node prices and regions
    revocations: dict[int, int] | None = None  # job idx -> times a spot revocation stopped it


def simulate(
    jobs: list[Job],
    state: ClusterState,
    policy: Policy,
    until: float | None = None,
    warmup: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    context: PolicyContext | None = None,
    seed: int = 1,
) -> SimResult:
    """Replay `jobs` (sorted by submit, numbered) on `state` under `policy`; `seed` drives
    the spot hazard model."""
    engine = Engine(state, policy, context)
    log = EventLog()
    decision_ns = array("q")
    reasons: dict[int, str] = {}
    heap: list[tuple] = []
    seq = 0
    next_wake = None
    n = len(jobs)
    i = 0
    events = 0
    clock = wallclock.perf_counter_ns
    wall0 = wallclock.perf_counter()
    end_of_time = float("inf") if until is None else until
    rng = random.Random(seed)

    def push(when: float, kind: int, job, payload) -> None:
        nonlocal seq
        seq += 1
        heapq.heappush(heap, (when, kind, seq, job, payload))

    def next_revocation(node: Node, now: float) -> None:
        """Draw the node's next revocation (Poisson while up) and its notice."""
        at = now + rng.expovariate(node.revocations_per_hour / 3600.0)
        push(max(now, at - node.notice_s), _NOTICE, None, node)
        push(at, _REVOKE, None, node)

    for node in state.nodes:
        if node.revocations_per_hour > 0:
            next_revocation(node, 0.0)

    def apply(decisions: list[Decision], now: float, revoked: int = -1) -> None:
        for d in decisions:
            job = d.job
            if d.kind is START:
                run = engine.running[job.idx]
                log.append(now, LOG_START, job.idx, job.gpu_milli_total, job.cpu_milli * job.tasks, run.alloc[0][0])
                push(run.end, _FINISH, job, run)
            elif d.kind is PREEMPT:
                log.append(now, LOG_PREEMPT, job.idx, job.gpu_milli_total, job.cpu_milli * job.tasks,
                           revoked if d.reason is REVOKED else -1)
            elif d.kind is REJECT:
                log.append(now, LOG_REJECT, job.idx)
                reasons[job.idx] = d.reason

    def idle() -> bool:
        """Nothing left that a node event could help: no arrivals, nothing running, and
        nothing pending, or pending with every node up and no wake-up due (a revocation
        frees nothing)."""
        return i >= n and not engine.running and (
            not engine.pending or (next_wake is None and all(nd.up for nd in state.nodes)))

    while True:
        t_arrival = jobs[i].submit if i < n else float("inf")
        revoked = -1
        if heap and heap[0][0] <= t_arrival:
            now, kind, _, job, run = heapq.heappop(heap)
            if now > end_of_time:
                break
            if kind >= _NOTICE:
                if idle():
                    break
                node = run
                if kind == _NOTICE:
                    log.append(now, NOTICE, -1, node=node.idx)
                    engine.cordon(node)
                    continue
                if kind == _REVOKE:
                    log.append(now, NODE_DOWN, -1, node=node.idx)
                    revoked = node.idx
                    t0 = clock()
                    decisions = engine.revoke(node, now)
                    push(now + (rng.expovariate(1.0 / node.mean_down_s) if node.mean_down_s > 0 else 0.0),
                         _RESTORE, None, node)
                else:
                    log.append(now, NODE_UP, -1, node=node.idx)
                    t0 = clock()
                    decisions = engine.node_back(node, now)
                    next_revocation(node, now)
            elif kind == _FINISH:
                if engine.running.get(job.idx) is not run:
                    continue  # stale: the job was preempted after this was pushed
                log.append(now, FINISH, job.idx, job.gpu_milli_total, job.cpu_milli * job.tasks)
                t0 = clock()
                decisions = engine.finish(job, now)
            else:
                if next_wake != now:
                    continue  # superseded wake-up
                next_wake = None
                t0 = clock()
                decisions = engine.wakeup(now)
        elif i < n:
            now = t_arrival
            if now > end_of_time:
                break
            job = jobs[i]
            i += 1
            log.append(now, SUBMIT, job.idx)
            t0 = clock()
            decisions = engine.submit(job, now)
        else:
            break
        if decisions:
            decision_ns.append(clock() - t0)
            apply(decisions, now, revoked)
        events += 1
        if engine.pending:
            wake = engine.next_wakeup(now)
            if wake is not None and wake > now and (next_wake is None or wake < next_wake):
                next_wake = wake
                push(wake, _WAKE, None, None)
        if progress is not None and not events & 4095:
            progress(i, n)
    if progress is not None:
        progress(i, n)
    return SimResult(
        jobs=jobs,
        log=log,
        decision_ns=decision_ns,
        wall_s=wallclock.perf_counter() - wall0,
        events=events,
        gpu_capacity_milli=state.gpu_capacity_milli,
        cpu_capacity_milli=state.cpu_capacity_milli,
        until=until,
        warmup=warmup,
        reject_reasons=reasons,
        price_per_s=state.price_per_s,
        power=cluster_power(state.nodes),
        nodes=tuple(state.nodes),
        revocations=engine.revocations,
    )
