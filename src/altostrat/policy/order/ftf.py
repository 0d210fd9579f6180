"""Finish-time fairness (Themis, Mahajan et al., NSDI'20; the per-job form used by Gavel, OSDI'20).

rho = T_shared / T_isolated, the job's finish time in the shared cluster over its run time
if it had 1/N of the cluster to itself; jobs with the highest rho (treated least fairly so
far) go first. Here, for a job submitted at s with reference duration D needing g GPUs:

    T_shared   = (now - s) + remaining work / speed
    T_isolated = D / v_iso * max(1, g * N / C)

* `remaining work` is engine.remaining (reference seconds left); `speed` is the job's speed
  on the GPU model it runs on, or v_iso while it waits (remaining restart overhead is
  ignored).
* v_iso is the job's best speed over the GPU models in the cluster it may use (1.0 for
  jobs without per-model speeds or without GPUs).
* N is the number of tenants with jobs in the system (pending or running; Themis' apps
  are tenants here) and C the cluster's GPUs; a gang wider than its tenant's fair share
  C/N runs proportionally slower in isolation (time-sharing that share). Tenants with a
  fair-share weight w (their TenantBudget's, default 1) get C × w / (sum of the weights of
  the N tenants) instead.

While a job runs at v_iso its rho stays constant; while it waits rho grows at 1/T_isolated
per second, so short waiting jobs overtake long ones quickly. Not preemptive; with
`+preempt` running jobs are compared at events only (no wake-up of its own).
"""

from __future__ import annotations

import heapq
from dataclasses import dataclass, field
from typing import ClassVar

from altostrat.policy.registry import register
from altostrat.resources import MILLI

INF = float("inf")


@register(
    "order",
    "ftf",
    "finish-time fairness (Themis, NSDI'20, as used in Gavel, OSDI'20): highest rho = T_shared/T_isolated first",
)
@dataclass
class FinishTimeFairness:
    dynamic: ClassVar[bool] = True
    preemptive: ClassVar[bool] = False

    # Each job's isolated speed, per run (why this piece is not frozen): it depends only on
    # the job and the cluster, and looking it up is most of the cost of a key.
    _iso: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _state: object = field(default=None, init=False, repr=False, compare=False)
    _weights: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # tenant -> weight != 1

    def bind(self, context) -> None:
        self._weights = {name: b.weight for name, b in (context.budgets or {}).items() if b.weight != 1}

    def key(self, job, engine, now):
        return (-self.rho(job, engine, now), job.submit)

    def ordered(self, engine, now):
        """Pending jobs by key, per-pass constants computed once, sorted lazily: a pass
        without backfill stops at its first blocked job, so a heap beats a full sort."""
        fair_unit = self._fair_unit(engine)
        ranked = [(-self.rho(j, engine, now, fair_unit), j.submit, j.idx) for j in engine.pending.values()]
        heapq.heapify(ranked)
        pending = engine.pending
        while ranked:
            yield pending[heapq.heappop(ranked)[2]]

    def _fair_unit(self, engine) -> float:
        """GPUs a tenant of weight 1 would own: C / N unweighted (0: a cluster without GPUs)."""
        weights = self._weights
        total = sum(weights.get(t, 1.0) for t in engine.tenant_jobs) if weights else len(engine.tenant_jobs)
        return engine.state.gpu_capacity_milli / MILLI / max(1, total)

    def rho(self, job, engine, now, fair_unit: float | None = None) -> float:
        if fair_unit is None:
            fair_unit = self._fair_unit(engine)
        fair_share = fair_unit * self._weights[job.tenant] if job.tenant in self._weights else fair_unit
        if self._state is not engine.state:
            self._state, self._iso = engine.state, {}
        iso = self._iso.get(job.idx)
        if iso is None:
            iso = self._iso[job.idx] = isolated_speed(job, engine.state)
        run = engine.running.get(job.idx)
        left = engine.remaining(job, now) / (run.speed if run is not None else iso)
        isolated = job.duration / iso
        if job.gpu_milli and fair_share:
            isolated *= max(1.0, job.gpus / fair_share)
        if isolated <= 0:
            return INF  # a zero-length job cannot be treated fairly by waiting
        return (now - job.submit + left) / isolated


def isolated_speed(job, state) -> float:
    if job.speeds is None or not job.gpu_milli:
        return 1.0
    return max((job.speed(m.model) for m in state.candidate_models(job)), default=1.0)
