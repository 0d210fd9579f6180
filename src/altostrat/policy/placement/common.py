"""Building blocks shared by placements: candidate node streams and gang filling."""

from __future__ import annotations

from collections.abc import Callable, Iterable

from altostrat.cluster.state import ClusterState, ModelIndex, Plan
from altostrat.resources import MILLI
from altostrat.workload.job import Job


def fill(state: ClusterState, job: Job, nodes: Iterable[int], per_node: int = 0) -> Plan | None:
    """Give each node in turn as many tasks as fit (at most `per_node` if set)."""
    left = job.tasks
    plan: Plan = []
    for idx in nodes:
        room = state.room(state.nodes[idx], job)
        if room:
            take = min(room, left, per_node) if per_node else min(room, left)
            plan.append((idx, take))
            left -= take
            if not left:
                return plan
    return None


def by_fit(state: ClusterState, model: ModelIndex | None, job: Job, tightest: bool) -> Iterable[int]:
    """Nodes that could host one task, tightest (least free) or emptiest first."""
    g = job.gpu_milli
    if model is None:  # CPU-only job: order by free CPU
        lo = (job.cpu_milli, -1)
        return (idx for _, idx in state.by_cpu.irange(lo, reverse=not tightest))
    if g >= MILLI:
        return model.ascending(g // MILLI) if tightest else model.descending(g // MILLI)
    return model.shares_ascending(g) if tightest else model.shares_descending(g)


def by_index(state: ClusterState, model: ModelIndex | None, job: Job) -> Iterable[int]:
    """Nodes with some free capacity, in node order."""
    if model is None:
        return range(len(state.nodes))
    return model.open


def leftover(state: ClusterState, job: Job, plan: Plan) -> int:
    """Free milli-GPUs (CPU milli for CPU-only jobs) left on the plan's nodes after it."""
    if job.gpu_milli:
        return sum(sum(state.nodes[i].gpu_free) - n * job.gpu_milli for i, n in plan)
    return sum(state.nodes[i].cpu_free - n * job.cpu_milli for i, n in plan)


def best_over_models(
    state: ClusterState,
    job: Job,
    plan_for: Callable[[ModelIndex | None], Plan | None],
    score: Callable[[Plan], object] | None = None,
) -> Plan | None:
    """Run `plan_for` on each GPU model the job may use; keep the lowest-scoring plan.

    Without `score` the first model that yields a plan wins (cluster order).
    """
    if not job.gpu_milli:
        return plan_for(None)
    best, best_score = None, None
    for model in state.candidate_models(job):
        if not state.fits_now(model, job):
            continue
        plan = plan_for(model)
        if plan is None:
            continue
        if score is None:
            return plan
        s = score(plan)
        if best is None or s < best_score:
            best, best_score = plan, s
    return best
