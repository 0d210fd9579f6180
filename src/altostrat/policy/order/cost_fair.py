"""Fair share of money: the tenant that has spent least, for its weight or budget, goes first.

A tenant's spend is the USD its runs have accrued in its current budget period (its
TenantBudget's period_s, 30 days for tenants without one): each run costs
engine.run_cost_rate (price × dominant share of its nodes) from its start to its stop or
to now. `share=weight` ranks tenants by spend / weight; `share=budget` by spend / USD budget,
the fraction of the period's budget used (tenants without a USD budget count as having used
none of it). First come, first served within a tenant. On a cluster without prices every
spend is 0 and the order is fcfs. docs/policies.md, "cost-fair".
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from altostrat.budgets import DEFAULT_PERIOD_S
from altostrat.policy.registry import register

SHARES = ("weight", "budget")


@dataclass(slots=True)
class _Account:
    period_s: float
    divisor: float  # spend is divided by this: the weight, or the USD budget (inf: unlimited)
    period: int = 0  # index of the period `closed` belongs to
    closed: float = 0.0  # USD of stopped runs accrued in that period
    running: dict = field(default_factory=dict)  # job idx -> (USD per second, start)

    def spend(self, now: float) -> float:
        q = math.floor(now / self.period_s)
        since = q * self.period_s
        total = self.closed if q == self.period else 0.0
        for rate, start in self.running.values():
            total += rate * (now - max(start, since))
        return total

    def close(self, idx: int, now: float) -> None:
        rate, start = self.running.pop(idx)
        q = math.floor(now / self.period_s)
        if q != self.period:
            self.period, self.closed = q, 0.0
        self.closed += rate * (now - max(start, q * self.period_s))


@register(
    "order",
    "cost-fair",
    "tenants by USD spent this budget period per weight (or per budget), FCFS within a tenant",
)
@dataclass
class CostFair:
    share: str = "weight"  # weight | budget: what a tenant's spend is divided by

    dynamic: ClassVar[bool] = True
    preemptive: ClassVar[bool] = False

    # Per run (why this piece is not frozen), reset by `bind`.
    _budgets: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _accounts: dict = field(default_factory=dict, init=False, repr=False, compare=False)  # tenant -> _Account

    def __post_init__(self) -> None:
        if self.share not in SHARES:
            raise ValueError(f"share={self.share!r}: use one of {', '.join(SHARES)}")

    def bind(self, context) -> None:
        self._budgets = context.budgets or {}
        self._accounts = {}

    def _account(self, tenant: str) -> _Account:
        account = self._accounts.get(tenant)
        if account is None:
            b = self._budgets.get(tenant)
            if b is None:
                account = _Account(DEFAULT_PERIOD_S, 1.0 if self.share == "weight" else math.inf)
            elif self.share == "weight":
                account = _Account(b.period_s, b.weight)
            else:
                account = _Account(b.period_s, math.inf if b.usd is None else b.usd)
            self._accounts[tenant] = account
        return account

    def standing(self, tenant: str, now: float) -> float:
        """The tenant's spend this period over its weight or budget: smaller goes first."""
        account = self._account(tenant)
        spend = account.spend(now)
        if account.divisor == 0:  # a zero budget: used up by any spend
            return math.inf if spend > 0 else 0.0
        return spend / account.divisor

    def started(self, job, run, engine, now) -> None:
        self._account(job.tenant).running[job.idx] = (engine.run_cost_rate(run), run.start)

    def stopped(self, job, run, engine, now) -> None:
        self._account(job.tenant).close(job.idx, now)

    def key(self, job, engine, now):
        return (self.standing(job.tenant, now), job.submit)

    def ordered(self, engine, now):
        """Pending jobs by key, each tenant's standing computed once per pass (starting a job
        at `now` adds no spend until later)."""
        standing = {}
        for job in engine.pending.values():
            if job.tenant not in standing:
                standing[job.tenant] = self.standing(job.tenant, now)
        return iter(sorted(engine.pending.values(), key=lambda j: (standing[j.tenant], j.submit, j.idx)))
