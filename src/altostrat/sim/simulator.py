"""The discrete-event simulator: the engine driven by a virtual clock.

Time jumps from event to event: arrivals (read in submit order, never all pushed on the
heap), completions (pushed when a job starts, dropped if it was preempted meanwhile),
wake-ups (only when a policy piece asks for one), for spot nodes revocation notices,
revocations and returns drawn from a seeded hazard model, and for elastic nodes the end of a
boot and the idle timer that releases them. Its cost grows with events, not with simulated
time.
"""

from __future__ import annotations

import heapq
import random
import time as wallclock
from array import array
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from altostrat.catalog.power import NodePower, cluster_power
from altostrat.cluster.state import Alloc, ClusterState, Node, is_empty
from altostrat.engine import BOOT, PREEMPT, REJECT, REVOKED, START, Decision, Engine, PolicyContext
from altostrat.policy.registry import Policy
from altostrat.sim.eventlog import (FINISH, NODE_DOWN, NODE_UP, NOTICE, SUBMIT, EventLog, PREEMPT as LOG_PREEMPT,
                                    REJECT as LOG_REJECT, START as LOG_START)
from altostrat.workload.job import Job

# heap event kinds, in the order they apply at equal times
_FINISH, _WAKE, _NOTICE, _REVOKE, _RESTORE, _BOOTED, _IDLE = range(7)


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
    nodes: tuple[Node, ...] = ()  # by index: prices, shapes, regions, where each start ran
    revocations: dict[int, int] = field(default_factory=dict)  # job idx -> times a spot revocation stopped it
    up_at_start: tuple[bool, ...] = ()  # per node: in service at time 0 (elastic nodes start down)


def simulate(
    jobs: list[Job],
    state: ClusterState,
    policy: Policy,
    until: float | None = None,
    warmup: float = 0.0,
    progress: Callable[[int, int], None] | None = None,
    context: PolicyContext | None = None,
    seed: int = 1,
    adopted: Sequence[tuple[Job, Alloc]] = (),
) -> SimResult:
    """Replay `jobs` (sorted by submit, numbered) on `state` under `policy`; `seed` drives
    the spot hazard model. `adopted` jobs already run at time 0 on their allocations and end
    after their `duration` (the control plane's describe runs its live state forward)."""
    up_at_start = tuple(nd.up for nd in state.nodes)
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

    # a node's hazard events carry its generation, which moves on whenever it goes down:
    # a scaled-down node's pending revocation is void
    gen = [0] * len(state.nodes)
    empty_since: dict[int, float] = {}

    def next_revocation(node: Node, now: float) -> None:
        """Draw the node's next revocation (Poisson while up) and its notice."""
        if node.revocations_per_hour > 0:
            at = now + rng.expovariate(node.revocations_per_hour / 3600.0)
            push(max(now, at - node.notice_s), _NOTICE, gen[node.idx], node)
            push(at, _REVOKE, gen[node.idx], node)

    for node in state.nodes:
        if node.up:
            next_revocation(node, 0.0)
    for job, alloc in adopted:
        engine.adopt(job, alloc, 0.0)
        push(engine.running[job.idx].end, _FINISH, job, engine.running[job.idx])

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
            elif d.kind is BOOT:
                log.append(now, NODE_UP, -1, node=d.node.idx)  # billed from the request
                push(now + d.node.boot_s, _BOOTED, gen[d.node.idx], d.node)

    def idle() -> bool:
        """Nothing left that a node event could help: no arrivals, nothing running, and
        nothing pending, or pending with no wake-up due and no node booting or coming back
        (a revocation or an idle timer frees nothing)."""
        return i >= n and not engine.running and (
            not engine.pending or (next_wake is None and not engine.unavailable and not engine.booting))

    def node_event(kind: int, node: Node, now: float) -> list[Decision]:
        idx = node.idx
        if kind == _NOTICE:
            log.append(now, NOTICE, -1, node=idx)
            engine.cordon(node)
            return []
        if kind == _REVOKE:
            log.append(now, NODE_DOWN, -1, node=idx)
            gen[idx] += 1
            decisions = engine.revoke(node, now)
            push(now + (rng.expovariate(1.0 / node.mean_down_s) if node.mean_down_s > 0 else 0.0), _RESTORE, None, node)
            return decisions
        if kind == _RESTORE:
            if node.elastic:  # bootable again; it stays down until needed
                return engine.node_available(node, now)
            log.append(now, NODE_UP, -1, node=idx)
            next_revocation(node, now)
            return engine.node_back(node, now)
        if kind == _BOOTED:
            next_revocation(node, now)
            return engine.node_back(node, now)
        if now - empty_since.get(idx, now) >= node.idle_s:  # _IDLE
            if engine.scale_down(node):
                log.append(now, NODE_DOWN, -1, node=idx)
                gen[idx] += 1
            elif node.up and is_empty(node):  # kept while other nodes boot: look again later
                push(now + node.idle_s, _IDLE, None, node)
        return []

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
                if job is not None and job != gen[run.idx]:
                    continue  # a hazard event of a node that has gone down since
                revoked = run.idx if kind == _REVOKE else -1
                t0 = clock()
                decisions = node_event(kind, run, now)
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
        if engine.emptied:
            for node in engine.emptied:
                empty_since[node.idx] = now
                push(now + node.idle_s, _IDLE, None, node)
            engine.emptied.clear()
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
        up_at_start=up_at_start,
        revocations=engine.revocations,
    )
