"""Dominant resource fairness across tenants (Ghodsi et al., NSDI'11).

A tenant's dominant share is the largest, over GPU, CPU and memory, of what its running
jobs hold divided by the cluster's capacity of that resource. The next job comes from the
tenant with the smallest dominant share (ties: the tenant whose oldest pending job was
submitted first); within a tenant jobs go first come, first served. Shares are re-read
after every job a pass starts, as DRF's progressive filling requires, so one event that
frees room for several jobs spreads them across tenants. A tenant with a fair-share weight
(its TenantBudget's, default 1; the live service's queues carry one) ranks by dominant share
/ weight, so under contention a tenant of weight 2 holds twice the share of one of weight 1.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

from sortedcontainers import SortedList

from altostrat.policy.registry import register


def dominant_share(alloc, caps) -> float:
    """max over resources of allocated / capacity; `alloc` is tenant_alloc's [gpu, cpu, mem]."""
    if not alloc:
        return 0.0
    return max((a / c for a, c in zip(alloc, caps) if c), default=0.0)


@register("order", "drf", "dominant resource fairness across tenants (Ghodsi et al., NSDI'11); FCFS within a tenant")
@dataclass
class DominantResourceFairness:
    dynamic: ClassVar[bool] = True
    preemptive: ClassVar[bool] = False

    # Per-run state (why this piece is not frozen): the cluster's capacities, and each
    # tenant's pending jobs in FCFS order, kept up to date by the engine's enqueue and
    # dequeue hooks so that a pass never regroups the whole queue.
    _caps: tuple = field(default=(None, ()), init=False, repr=False, compare=False)
    _engine: object = field(default=None, init=False, repr=False, compare=False)
    _queues: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _weights: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # tenant -> weight != 1

    def bind(self, context) -> None:
        self._weights = {name: b.weight for name, b in (context.budgets or {}).items() if b.weight != 1}
        self._engine, self._queues = None, {}

    def share(self, tenant, engine) -> float:
        """The tenant's dominant share over its weight: smaller goes first."""
        share = dominant_share(engine.tenant_alloc.get(tenant), self.capacities(engine.state))
        weight = self._weights.get(tenant)
        return share if weight is None else share / weight

    def capacities(self, state) -> tuple[int, int, int]:
        if self._caps[0] is not state:
            mem = sum(node.mem_mib for node in state.nodes)
            self._caps = (state, (state.gpu_capacity_milli, state.cpu_capacity_milli, mem))
        return self._caps[1]

    def key(self, job, engine, now):
        return (self.share(job.tenant, engine), job.submit)

    def _tenant_queues(self, engine) -> dict:
        if self._engine is not engine:  # a new run: rebuild from its pending jobs
            self._engine = engine
            self._queues = {}
            for job in engine.pending.values():
                self._add(job)
        return self._queues

    def _add(self, job) -> None:
        queue = self._queues.get(job.tenant)
        if queue is None:
            queue = self._queues[job.tenant] = SortedList()
        queue.add((job.submit, job.idx))

    # The engine calls these after changing `pending`, so a rebuild already reflects them.
    def enqueued(self, job, engine) -> None:
        if self._engine is engine:
            self._add(job)
        else:
            self._tenant_queues(engine)

    def dequeued(self, job, engine) -> None:
        if self._engine is not engine:
            self._tenant_queues(engine)
            return
        queue = self._queues[job.tenant]
        queue.remove((job.submit, job.idx))
        if not queue:
            del self._queues[job.tenant]

    def ordered(self, engine, now):
        """Pending jobs by progressive filling: always from the currently poorest tenant."""
        queues = self._tenant_queues(engine)
        cursor = dict.fromkeys(queues, 0)  # the engine dequeues only after the pass
        while cursor:
            # O(tenants) per job yielded: shares change as this pass starts (or preempts) jobs.
            tenant = min(cursor, key=lambda t: (self.share(t, engine), queues[t][cursor[t]]))
            position = cursor[tenant]
            yield engine.pending[queues[tenant][position][1]]
            if position + 1 < len(queues[tenant]):
                cursor[tenant] = position + 1
            else:
                del cursor[tenant]
