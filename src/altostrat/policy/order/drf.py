"""Dominant resource fairness across tenants (Ghodsi et al., NSDI'11).

A tenant's dominant share is the largest, over GPU, CPU and memory, of what its running
jobs hold divided by the cluster's capacity of that resource. The next job comes from the
tenant with the smallest dominant share (ties: the tenant whose oldest pending job was
submitted first); within a tenant jobs go first come, first served. Shares are re-read
after every job a pass starts, as DRF's progressive filling requires, so one event that
frees room for several jobs spreads them across tenants. All tenants weigh the same.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import ClassVar

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

    # Cluster capacities, computed once per cluster (why this piece is not frozen).
    _caps: tuple = field(default=(None, ()), init=False, repr=False, compare=False)

    def capacities(self, state) -> tuple[int, int, int]:
        if self._caps[0] is not state:
            mem = sum(node.mem_mib for node in state.nodes)
            self._caps = (state, (state.gpu_capacity_milli, state.cpu_capacity_milli, mem))
        return self._caps[1]

    def key(self, job, engine, now):
        caps = self.capacities(engine.state)
        return (dominant_share(engine.tenant_alloc.get(job.tenant), caps), job.submit)

    def ordered(self, engine, now):
        """Pending jobs by progressive filling: always from the currently poorest tenant."""
        caps = self.capacities(engine.state)
        alloc = engine.tenant_alloc
        queues: dict[str, list] = {}
        for job in engine.pending.values():
            queues.setdefault(job.tenant, []).append(job)
        for jobs in queues.values():  # nearly in submit order already: timsort is ~linear
            jobs.sort(key=lambda j: (j.submit, j.idx), reverse=True)  # head last, for pop()

        def rank(tenant):
            head = queues[tenant][-1]
            return (dominant_share(alloc.get(tenant), caps), head.submit, head.idx)

        while queues:
            # O(tenants) per job yielded: shares change as this pass starts (or preempts) jobs.
            tenant = min(queues, key=rank)
            jobs = queues[tenant]
            yield jobs.pop()
            if not jobs:
                del queues[tenant]
