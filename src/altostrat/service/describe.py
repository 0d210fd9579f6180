"""`describe job`: why a pending job waits, where it stands in the order, and when it may start.

The reconciler thread owns the engine, so `snapshot` runs on it (Reconciler.explain asks it
between two turns) and copies what the estimate needs; `estimate_start` then runs the
simulator on those copies on the API's thread, never touching the live engine.
docs/service.md, "Describe", has the reasons and the estimate's assumptions.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

from altostrat.cluster.state import Alloc, ClusterState, Node, allowed_on
from altostrat.engine import Engine, PolicyContext
from altostrat.policy.gate.budget import BudgetGate
from altostrat.policy.order.cost_fair import CostFair
from altostrat.policy.order.drf import DominantResourceFairness
from altostrat.policy.order.ftf import FinishTimeFairness
from altostrat.policy.registry import parse_policy
from altostrat.resources import MILLI
from altostrat.service.quota import QueueQuotaGate, queue_policy
from altostrat.sim.eventlog import START
from altostrat.sim.simulator import simulate
from altostrat.workload.job import Job

FAIR_SHARE_ORDERS = (DominantResourceFairness, CostFair, FinishTimeFairness)
# the primary reason is the first of these that holds (docs/service.md, "Describe")
REASONS = ("quota", "budget", "policy-gate", "fair-share", "capacity", "gang", "order", "next-pass")


@dataclass
class Snapshot:
    """A pending job as the engine sees it at engine time `now` (wall clock `wall`), and
    copies of the live state to run forward: times are relative to `now`."""

    idx: int
    reason: str
    message: str
    position: int  # index in the engine's current order of pending jobs (0: looked at first)
    pending: int
    now: float
    wall: float
    policy: str
    nodes: list[Node]  # fresh copies of the engine's nodes: nothing allocated
    running: list[tuple[Job, Alloc]]  # each running job, its duration the time it is expected to have left
    queued: list[Job]  # every pending job, its duration the work it has left
    gate: QueueQuotaGate  # the queues, nothing in use
    context: PolicyContext  # queue weights and budgets, periods shifted to the snapshot's clock


def pending_reason(engine: Engine, job: Job, now: float, quota: QueueQuotaGate | None,
                   order: list[Job], position: int) -> tuple[str, str]:
    """The first reason of REASONS that holds for a job the engine holds pending; `order` is
    `engine.queue(now)`, the job at `position` in it."""
    blocked = quota.blocked(job, engine, now) if quota is not None else None
    if blocked:
        return "quota", blocked
    for gate in engine.gates:
        if gate is not quota and gate.hold(job, engine, now) is not None:
            if isinstance(gate, BudgetGate):
                return "budget", _budget_message(gate, job, engine, now)
            return "policy-gate", f"held by the policy's {type(gate).__name__} gate"
    # the messages name no other tenant, queue nor job: the job's tenant reads them; the
    # engine's tenant of a live job is its queue
    if isinstance(engine.order, FAIR_SHARE_ORDERS):
        others = {j.tenant for j in order[:position] if j.tenant != job.tenant}
        if others:
            ahead = sum(j.tenant != job.tenant for j in order[:position])
            return "fair-share", (f"{ahead} job(s) of {len(others)} other queue(s) come first under "
                                  f"{engine.policy.name}'s fair-share order")
    need = (job.gpu_milli_total, job.cpu_milli * job.tasks, job.mem_mib * job.tasks)
    free = _free_by_model(engine.state.nodes, job)
    if not any(all(f >= n for f, n in zip(room, need)) for room in free.values()):
        shown = "; ".join(f"{model or 'CPU nodes'}: {_amounts(room)}" for model, room in sorted(
            free.items(), key=lambda kv: kv[0] or "")) or "no node it may use is up"
        return "capacity", f"needs {_amounts(need)} at once; free now: {shown}"
    if engine.placement.place(job, engine.state) is None:
        where = ("no single node holds its task" if job.tasks == 1
                 else f"no set of nodes holds all {job.tasks} tasks at once")
        return "gang", f"enough is free in total, but {where}"
    if position > 0:
        return "order", (f"it would fit now, but {position} job(s) come first in the policy's order "
                         f"(first: {order[0].id if order[0].tenant == job.tenant else 'a job of another queue'}) "
                         "and the policy starts jobs in that order"
                         + (" (backfill did not admit it)" if engine.policy.backfill else ""))
    return "next-pass", "it fits now: the engine starts it at its next pass"


def pending_reasons(engine: Engine, jobs: list[Job], now: float, quota: QueueQuotaGate) -> dict[str, tuple[str, str]]:
    """Job name -> (reason, message) of `jobs`, which the engine holds pending, in the engine's
    order (the first it looks at first): one order for all and no estimate, so cheap enough
    for every refresh of the dashboard. Run on the thread that owns `engine`."""
    if not jobs:
        return {}
    order = engine.queue(now)
    wanted = {job.idx for job in jobs}
    return {job.id: pending_reason(engine, job, now, quota, order, i)
            for i, job in enumerate(order) if job.idx in wanted}


def not_in_engine(status: dict, wall: float) -> tuple[str, str, float | None]:
    """Why a job PENDING in the store waits while the engine does not hold it (its dependencies,
    which the reconciler writes in its status, a retry's backoff, or not yet taken in):
    (reason, message, the backoff's end or None)."""
    if status.get("waitingFor"):
        return "dependency", status["reason"], None
    retry = status.get("notBefore")
    backoff = bool(retry and retry > wall)
    return ("retry-backoff" if backoff else "not-admitted",
            status.get("reason") or "not yet taken in by the engine (no Pool, or submitted a moment ago)",
            retry if backoff else None)
def _budget_message(gate: BudgetGate, job: Job, engine: Engine, now: float) -> str:
    """Which of its queue's budgets the job's expected spend would overrun, and when it renews."""
    period, max_usd, max_gh, origin = gate.limits(job.tenant)
    usd_rate, seconds = gate.bound(job, engine)
    q = math.floor((now - origin) / period)
    usd, gh = gate.committed(job.tenant).get(q, (0.0, 0.0))
    span = min(seconds, origin + (q + 1) * period - now)  # its expected run within this period
    parts = []
    if usd + usd_rate * span > max_usd:
        parts.append(f"{usd:.2f} of {max_usd:.2f} USD committed, the job may cost {usd_rate * span:.2f} more")
    if gh + job.gpus / 3600 * span > max_gh:
        parts.append(f"{gh:.3g} of {max_gh:.3g} GPU-hours committed, the job may use {job.gpus / 3600 * span:.3g} more")
    parts = parts or ["the job's expected run would overrun a later period's budget"]
    renews = origin + (q + 1) * period - now
    return f"queue {job.tenant}'s budget this period: {'; '.join(parts)}; the period renews in {renews:.0f} s"


def _free_by_model(nodes: list[Node], job: Job) -> dict[str | None, list[int]]:
    """Free [GPU milli, CPU milli, MiB] per GPU model on the up nodes the job may use (a gang
    runs on one model; a CPU-only job on any node, under None)."""
    free: dict[str | None, list[int]] = {}
    for node in nodes:
        if not node.up or not allowed_on(node, job):
            continue
        if job.gpu_milli and (not node.gpus or (job.gpu_models is not None and node.gpu_model not in job.gpu_models)):
            continue
        room = free.setdefault(node.gpu_model if job.gpu_milli else None, [0, 0, 0])
        room[0] += sum(node.gpu_free)
        room[1] += node.cpu_free
        room[2] += node.mem_free
    return free


def _amounts(r) -> str:
    return f"{r[0] / MILLI:g} GPU, {r[1] / MILLI:g} CPU, {r[2] / 1024:g} GiB"


def snapshot(engine: Engine, job: Job, now: float, wall: float, quota: QueueQuotaGate, policy: str) -> Snapshot:
    """Run on the thread that owns `engine`: the reason, the position, and copies to run forward."""
    order = engine.queue(now)
    position = next(i for i, j in enumerate(order) if j.idx == job.idx)
    reason, message = pending_reason(engine, job, now, quota, order, position)

    def shifted(j: Job, duration: float) -> Job:
        return dataclasses.replace(j, submit=j.submit - now, duration=duration,
                                   deadline=None if j.deadline is None else j.deadline - now)

    return Snapshot(
        idx=job.idx, reason=reason, message=message, position=position, pending=len(order), now=now, wall=wall,
        policy=policy,
        nodes=[dataclasses.replace(n) for n in engine.state.nodes],  # __post_init__ frees the copy
        running=[(shifted(run.job, max(0.0, run.end - now)), run.alloc) for run in engine.running.values()],
        queued=[shifted(j, engine.work_left.get(j.idx, j.duration)) for j in order],
        gate=quota.copy(), context=_shifted(engine.context, now))


def _shifted(context: PolicyContext, now: float) -> PolicyContext:
    """The context on a clock whose 0 is `now`: budget periods start `now` earlier."""
    if not context.budgets:
        return context
    return dataclasses.replace(context, budgets={name: dataclasses.replace(b, origin=b.origin - now)
                                                 for name, b in context.budgets.items()})


def estimate_start(snap: Snapshot) -> float | None:
    """Seconds after the snapshot until the job first starts when the engine runs forward on
    the snapshot's copies with the same policy and quotas, every job taking exactly its
    expected time; None if it never starts then."""
    gate = snap.gate.copy()
    policy = queue_policy(parse_policy(snap.policy), gate, gate.specs)
    jobs = sorted(snap.queued, key=lambda j: (j.submit, j.idx))  # pending jobs arrive again, in their order
    result = simulate(jobs, ClusterState([dataclasses.replace(n) for n in snap.nodes]), policy, adopted=snap.running,
                      context=snap.context)
    for t, kind, j in zip(result.log.time, result.log.kind, result.log.job):
        if kind == START and j == snap.idx:
            return max(0.0, t)  # a start "in the past" is a start at the next pass
    return None


def describe_job(view: dict, snap: Snapshot | None, wall: float) -> dict:
    """The API's answer for a Job view (GET /v1/jobs/NAME) and, when the engine holds it
    pending, its snapshot."""
    status = view["status"]
    attempts: dict[int, list[dict]] = {}
    for task in status["tasks"]:
        attempts.setdefault(task["attempt"], []).append(
            {k: task[k] for k in ("task", "node", "devices", "state", "exitCode", "startedAt", "endedAt")})
    out = {"name": view["metadata"]["name"], "tenant": view["metadata"].get("tenant"), "queue": view["spec"]["queue"],
           "state": status["state"], "reason": status.get("reason"), "exitCode": status.get("exitCode"),
           "attempts": [{"attempt": a, "tasks": tasks} for a, tasks in sorted(attempts.items())]}
    if status["state"] != "PENDING":
        return out
    if snap is None:  # pending in the store, not (or not yet) in the engine
        reason, message, retry = not_in_engine(status, wall)
        out["pending"] = {"reason": reason, "message": message, "queuePosition": None, "pendingJobs": None,
                          "estimatedStart": retry}
        return out
    seconds = estimate_start(snap)
    out["pending"] = {"reason": snap.reason, "message": snap.message, "queuePosition": snap.position,
                      "pendingJobs": snap.pending, "estimatedStart": None if seconds is None else snap.wall + seconds}
    return out
