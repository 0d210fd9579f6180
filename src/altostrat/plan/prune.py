"""Pruning: drop options that break a job's own limits, then those another option dominates.

Dominance is on all four objectives at once (cost, time, carbon, risk), so the options left
serve every objective and every budget: swapping a dominated option for its dominator never
raises the objective, the spend or the risk.
"""

from __future__ import annotations

import numpy as np

from altostrat.plan.options import Candidates, JobOptions
from altostrat.spec.schema import JobSpec


def within_limits(job: JobSpec, cand: Candidates, max_risk: float | None) -> np.ndarray:
    """Bases x windows: the options that finish by the job's deadline and stay within the risk cap."""
    ok = np.ones(cand.carbon_kg.shape, dtype=bool)
    if job.deadline_s is not None:
        ok &= job.submit_s + cand.delay_s[None, :] + cand.busy_s[:, None] <= job.deadline_s
    if max_risk is not None:
        ok &= (cand.risk <= max_risk)[:, None]
    return ok


def later_windows(cand: Candidates) -> np.ndarray:
    """Bases x windows: per base, its first window and each later one with less carbon than all before.

    A later window of the same type and lifecycle costs the same, has the same risk and
    finishes later, so it is dominated unless its carbon is lower than every earlier one's.
    """
    keep = np.ones(cand.carbon_kg.shape, dtype=bool)
    keep[:, 1:] = cand.carbon_kg[:, 1:] < np.minimum.accumulate(cand.carbon_kg, axis=1)[:, :-1]
    return keep


def objectives(opts: JobOptions) -> np.ndarray:
    return np.column_stack((opts.cost_usd, opts.time_s, opts.carbon_kg, opts.risk))


def pareto(points: np.ndarray) -> np.ndarray:
    """Indices of the rows no other row dominates (<= everywhere, < somewhere); of equal rows, one.

    Rows in lexicographic order: the first row left is dominated by none (a dominator would
    sort before it and would have removed it, or been removed by a row that then removed
    both). It is kept and removes what it dominates, so the loop runs once per row kept.
    """
    order = np.lexsort(points.T[::-1])
    pts, idx = points[order], order
    kept = []
    while len(idx):
        kept.append(idx[0])
        rest = ~(pts[1:] >= pts[0]).all(axis=1)
        pts, idx = pts[1:][rest], idx[1:][rest]
    return np.array(kept, dtype=np.int64)


def prune(job: JobSpec, cand: Candidates, max_risk: float | None) -> JobOptions:
    """The job's options within its limits that no other such option dominates, cheapest first.

    A window dropped by later_windows() is dominated by an earlier window of its base, which
    meets the deadline whenever it does (earlier start, same duration), so the order is exact.
    """
    b, k = np.nonzero(later_windows(cand) & within_limits(job, cand, max_risk))
    opts = cand.options(b, k)
    if not len(opts):
        return opts
    return opts.take(pareto(objectives(opts)))
