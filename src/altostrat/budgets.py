"""Tenants' budgets: a dollar and a GPU-hour allowance per period, and a fair-share weight.

Read at the edge from a `kind: Tenants` document or a Workload's `spec.tenants`
(docs/economics.md, "Budgets"); the engine's pieces and the metrics see plain
`TenantBudget`s. A period is [origin + k × period_s, origin + (k + 1) × period_s) on the
engine's clock: origin 0 in the simulator; the live service sets it so that periods start at
multiples of period_s in Unix time.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

DEFAULT_PERIOD_S = 30 * 86_400.0  # a 30-day month: the billing period clouds bill by
# Spend within this relative slack of a budget is within it: sums of float charges and
# refunds must not turn an exactly spent budget into an overrun.
SLACK = 1e-9


@dataclass(frozen=True, slots=True)
class TenantBudget:
    name: str
    usd: float | None = None  # per period; None = no dollar limit
    gpu_hours: float | None = None  # per period; None = no GPU-hour limit
    period_s: float = DEFAULT_PERIOD_S
    weight: float = 1.0  # fair-share weight (the cost-fair, drf and ftf orders)
    origin: float = 0.0  # the engine time a period starts at

    @property
    def limited(self) -> bool:
        return self.usd is not None or self.gpu_hours is not None


def allowance(limit: float | None) -> float:
    """The most a period may hold against `limit` (None: no limit)."""
    return math.inf if limit is None else limit + SLACK * max(limit, 1.0)


def period_overlaps(start: float, end: float, period_s: float) -> Iterator[tuple[int, float]]:
    """(period index, seconds of [start, end) inside it), for each period the interval touches."""
    q = math.floor(start / period_s)
    while start < end:
        edge = (q + 1) * period_s
        yield q, min(end, edge) - start
        start, q = edge, q + 1


def budgets_from_specs(specs) -> dict[str, TenantBudget]:
    """From validated spec.schema.TenantSpec entries."""
    return {
        t.name: TenantBudget(t.name, t.budget_usd, t.budget_gpu_hours, t.period_s, t.weight)
        for t in specs
    }


def load_budgets(path: str) -> dict[str, TenantBudget]:
    """The tenants of the one `kind: Tenants` document in `path` (--budgets FILE)."""
    from altostrat.spec.load import load_one

    return budgets_from_specs(load_one(path, "Tenants").spec.tenants)
