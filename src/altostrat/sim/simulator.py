"""The discrete-event simulator: the engine driven by a virtual clock.

Time jumps from event to event: arrivals (read in submit order, never all pushed on the
heap), completions (pushed when a job starts, dropped if it was preempted meanwhile) and
wake-ups (only when the order policy asks for one). Its cost grows with events, not with
simulated time.
"""

from __future__ import annotations

import heapq
import time as wallclock
from array import array
from collections.abc import Callable
from dataclasses import dataclass

from altostrat.catalog.power import NodePower, cluster_power
from altostrat.cluster.state import ClusterState
from altostrat.engine import PREEMPT, REJECT, START, Decision, Engine, PolicyContext
from altostrat.policy.registry import Policy
from altostrat.sim.eventlog import FINISH, EventLog, PREEMPT as LOG_PREEMPT, REJECT as LOG_REJECT, START as LOG_START, SUBMIT
from altostrat.workload.job import Job

_FINISH, _WAKE = 0, 1  # heap event kinds; finishes sort before wake-ups at equal times


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


def simulate(
    jobs: list[Job],
    state: ClusterState,
    policy: Policy,
    until: float | None = None,
    warmup: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    context: PolicyContext | None = None,
) -> SimResult:
    """Replay `jobs` (sorted by submit, numbered) on `state` under `policy`."""
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

    def apply(decisions: list[Decision], now: float) -> None:
        nonlocal seq
        for d in decisions:
            job = d.job
            if d.kind is START:
                run = engine.running[job.idx]
                log.append(now, LOG_START, job.idx, job.gpu_milli_total, job.cpu_milli * job.tasks, run.alloc[0][0])
                seq += 1
                heapq.heappush(heap, (run.end, _FINISH, seq, job, run))
            elif d.kind is PREEMPT:
                log.append(now, LOG_PREEMPT, job.idx, job.gpu_milli_total, job.cpu_milli * job.tasks)
            elif d.kind is REJECT:
                log.append(now, LOG_REJECT, job.idx)
                reasons[job.idx] = d.reason

    while True:
        t_arrival = jobs[i].submit if i < n else float("inf")
        if heap and heap[0][0] <= t_arrival:
            now, kind, _, job, run = heapq.heappop(heap)
            if now > end_of_time:
                break
            if kind == _FINISH:
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
            apply(decisions, now)
        events += 1
        if engine.pending:
            wake = engine.next_wakeup(now)
            if wake is not None and wake > now and (next_wake is None or wake < next_wake):
                next_wake = wake
                seq += 1
                heapq.heappush(heap, (wake, _WAKE, seq, None, None))
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
    )
