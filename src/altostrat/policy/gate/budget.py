"""Tenants' dollar and GPU-hour budgets per period, enforced by commitment (docs/economics.md, "Budgets").

A job starts only if what it is expected to spend in each budget period its run touches,
added to what its tenant has already committed there, stays within the budget. What a run
is expected to spend is committed when it starts, period by period; what it did not spend
when it stops early (preemption, revocation) is refunded. Spend accrues no faster than it is
committed, so no period's actual spend exceeds its budget.

Before placement the engine does not know which nodes a job will get, so the test charges
the most it could cost: the dearest node kind it may run on (price × dominant share × tasks)
for its longest expected run (slowest allowed GPU model, longest data transfer, restart
overhead due). Starting commits its actual cost, which is no more.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

from altostrat.budgets import allowance, period_overlaps
from altostrat.cluster.state import allowed_on
from altostrat.policy.registry import PolicyError, register
from altostrat.resources import MILLI

NEVER_WITHIN = "needs more in one budget period than its tenant's budget"


@register("gate", "budget", "tenants' USD and GPU-hour budgets per period, committed at start, refunded at stop")
@dataclass
class BudgetGate:
    # Per run (why this piece is not frozen), reset by `bind`.
    _limits: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # tenant -> (P, usd, GPU-h, origin)
    _transfer: object = field(default=None, init=False, repr=False, compare=False)
    _committed: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # tenant -> {q: [usd, GPU-h]}
    _runs: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # job idx -> (usd/s, GPU-h/s, end)
    _bounds: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # job idx -> (usd/s, speed, xfer)
    _kinds: list | None = field(default=None, init=False, repr=False, compare=False)

    def bind(self, context) -> None:
        limited = {name: b for name, b in (context.budgets or {}).items() if b.limited}
        if not limited:
            raise PolicyError("gate budget: no tenant has a budget; pass --budgets FILE (a kind: Tenants document) "
                              "or give spec.tenants with budgetUsd or budgetGpuHours in the Workload YAML")
        self._limits = {n: (b.period_s, allowance(b.usd), allowance(b.gpu_hours), b.origin) for n, b in limited.items()}
        self._transfer = context.transfer_s
        self._committed, self._runs, self._bounds, self._kinds = {}, {}, {}, None

    # -- the gate -------------------------------------------------------------------------
    def hold(self, job, engine, now):
        limits = self._limits.get(job.tenant)
        if limits is None:
            return None
        usd_rate, seconds = self.bound(job, engine)
        if self._fits(job, limits, now, now + seconds, usd_rate):
            return None
        period, origin = limits[0], limits[3]
        if not self._fits_empty(job, limits, seconds, usd_rate):
            return math.inf  # its restart overhead outgrew a period's budget: only a refund can help
        return origin + (math.floor((now - origin) / period) + 1) * period  # the budget resets then

    def refuse(self, job, engine) -> str | None:
        """Reject at submission a job that no period's whole budget could hold."""
        limits = self._limits.get(job.tenant)
        if limits is None:
            return None
        usd_rate, seconds = self.bound(job, engine)
        return None if self._fits_empty(job, limits, seconds, usd_rate) else NEVER_WITHIN

    def started(self, job, run, engine, now) -> None:
        limits = self._limits.get(job.tenant)
        if limits is None:
            return
        record = (engine.run_cost_rate(run), job.gpus / 3600, run.end)
        self._runs[job.idx] = record
        self.charge(job.tenant, run.start, run.end, record[0], record[1])

    def stopped(self, job, run, engine, now) -> None:
        record = self._runs.pop(job.idx, None)
        if record is None:
            return
        if now < record[2]:  # refund what it did not run
            self.charge(job.tenant, now, record[2], -record[0], -record[1])
        elif now > record[2]:  # a live job can run past its expected end: charge the overrun (never in a simulation)
            self.charge(job.tenant, record[2], now, record[0], record[1])

    def committed(self, tenant: str) -> dict[int, tuple[float, float]]:
        """Period index -> (USD, GPU-hours) the tenant's runs have committed there."""
        return {q: (usd, gh) for q, (usd, gh) in self._committed.get(tenant, {}).items()}

    def limits(self, tenant: str) -> tuple[float, float, float, float] | None:
        """(period seconds, USD, GPU-hours, origin) of a tenant's budget (inf: no limit), None without one."""
        return self._limits.get(tenant)

    def charge(self, tenant, start, end, usd_per_s, gpu_hours_per_s) -> None:
        """Book [start, end) at these rates (negative: a refund) in the periods it touches; the
        live service also books the runs that ended before it (re)built its engine."""
        limits = self._limits.get(tenant)
        if limits is None:
            return
        book = self._committed.setdefault(tenant, {})
        period, origin = limits[0], limits[3]
        for q, secs in period_overlaps(start - origin, end - origin, period):
            entry = book.get(q)
            if entry is None:
                entry = book[q] = [0.0, 0.0]
            entry[0] += usd_per_s * secs
            entry[1] += gpu_hours_per_s * secs

    # -- accounts -------------------------------------------------------------------------

    def _fits(self, job, limits, start, end, usd_rate) -> bool:
        period, max_usd, max_gh, origin = limits
        book = self._committed.get(job.tenant, {})
        gh_rate = job.gpus / 3600
        for q, secs in period_overlaps(start - origin, end - origin, period):
            usd, gh = book.get(q, (0.0, 0.0))
            if usd + usd_rate * secs > max_usd or gh + gh_rate * secs > max_gh:
                return False
        return True

    @staticmethod
    def _fits_empty(job, limits, seconds, usd_rate) -> bool:
        """Whether the run fits when it starts at a period's start with nothing committed."""
        period, max_usd, max_gh, _ = limits
        span = min(seconds, period)
        return usd_rate * span <= max_usd and job.gpus / 3600 * span <= max_gh

    def bound(self, job, engine) -> tuple[float, float]:
        """(USD per second, seconds): the most the job's next run can cost per second and last."""
        bound = self._bounds.get(job.idx)
        if bound is None:
            bound = self._bounds[job.idx] = self._job_bound(job, engine.state)
        usd_rate, speed, transfer = bound
        work = engine.work_left.get(job.idx, job.duration)
        return usd_rate, engine.overhead_due.get(job.idx, 0.0) + transfer + work / speed

    def _job_bound(self, job, state) -> tuple[float, float, float]:
        """Over the node kinds the job may run on: dearest rate, slowest speed, longest transfer."""
        from altostrat.engine import task_share  # the engine imports the policy package

        if self._kinds is None:  # nodes alike in everything a cost or speed depends on
            kinds = {}
            for n in state.nodes:
                kinds.setdefault((n.price_per_s, n.gpu_model, n.gpus, n.cpu_milli, n.mem_mib, n.region,
                                  n.jurisdiction, n.spot), n)
            self._kinds = list(kinds.values())
        usd_rate, speed, transfer = 0.0, math.inf, 0.0
        for node in self._kinds:
            if not _may_host(node, job):
                continue
            usd_rate = max(usd_rate, (node.price_per_s or 0.0) * task_share(node, job) * job.tasks)
            speed = min(speed, job.speed(node.gpu_model))
            if self._transfer is not None and job.dataset_gb:
                transfer = max(transfer, self._transfer(job, node))
        return usd_rate, (1.0 if speed == math.inf else speed), transfer


def _may_host(node, job) -> bool:
    """Whether one task of the job could ever run on the node."""
    if job.gpu_milli:
        if not node.gpus or job.gpu_milli > node.gpus * MILLI:
            return False
        if job.gpu_models is not None and node.gpu_model not in job.gpu_models:
            return False
    return job.cpu_milli <= node.cpu_milli and job.mem_mib <= node.mem_mib and allowed_on(node, job)
