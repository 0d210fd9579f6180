"""The plan as a mixed-integer program, solved with HiGHS.

Binary x[o] per option o of job j(o): sum_{o of j} x[o] = 1 for every job; sum_o cost[o] x[o]
<= budget (and one such row per tenant budget); minimise sum_o score[o] x[o]. The budget
rows couple the jobs (a multiple-choice knapsack), which is what needs an integer solver.
"""

from __future__ import annotations

import os
import sys
from contextlib import contextmanager

import highspy
import numpy as np

# Other objectives break ties with this weight (each scaled to at most 1 over all options),
# small enough never to outweigh a real difference of the objective itself.
TIE_WEIGHT = 1e-9
# HiGHS stops within this relative gap of the optimum (its default is 1e-4). Without a
# budget the problem is solved exactly (its LP relaxation is integral); with one, a plan
# may miss the optimum by this fraction, and ties may then be broken only approximately.
MIP_REL_GAP = 1e-6


class PlanError(ValueError):
    """No plan meets the constraints; the message says which one binds."""


def scores(objs: np.ndarray, primary: int) -> np.ndarray:
    """Objective column `primary` plus TIE_WEIGHT x each other column, all scaled by their max."""
    scale = np.abs(objs).max(axis=0)
    scaled = objs / np.where(scale > 0, scale, 1.0)
    weights = np.full(objs.shape[1], TIE_WEIGHT)
    weights[primary] = 1.0
    return scaled @ weights


@contextmanager
def _quiet_stdout():
    """HiGHS prints its banner on stdout from C++ when the first solver is made; keep --json clean."""
    sys.stdout.flush()
    saved = os.dup(1)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 1)
        yield
    finally:
        os.dup2(saved, 1)
        os.close(saved)
        os.close(devnull)


def solve(job_of: np.ndarray, n_jobs: int, score: np.ndarray, cost: np.ndarray,
          budgets: list[tuple[np.ndarray, float]]) -> np.ndarray | None:
    """The chosen option per job (indices into the option arrays), or None when infeasible.

    `job_of[o]` is option o's job (options grouped by job, jobs 0..n_jobs-1 in order);
    each budget is (mask of the options it covers, USD cap).
    """
    n = len(job_of)
    rows_per_col = 1 + np.zeros(n, dtype=np.int64)
    for mask, _ in budgets:
        rows_per_col += mask
    start = np.zeros(n + 1, dtype=np.int32)
    np.cumsum(rows_per_col, out=start[1:])
    index = np.empty(start[-1], dtype=np.int32)
    value = np.empty(start[-1], dtype=np.float64)
    index[start[:-1]] = job_of
    value[start[:-1]] = 1.0
    fill = start[:-1] + 1  # next free slot of each column
    for b, (mask, _) in enumerate(budgets):
        cols = np.flatnonzero(mask)
        index[fill[cols]] = n_jobs + b
        value[fill[cols]] = cost[cols]
        fill[cols] += 1
    row_lower = np.concatenate((np.ones(n_jobs), np.full(len(budgets), -highspy.kHighsInf)))
    row_upper = np.concatenate((np.ones(n_jobs), [cap for _, cap in budgets]))
    with _quiet_stdout():
        h = highspy.Highs()
    h.setOptionValue("output_flag", False)
    h.setOptionValue("mip_rel_gap", MIP_REL_GAP)
    h.passModel(n, n_jobs + len(budgets), int(start[-1]), 1, 1, 0.0,  # column-wise, minimise
                score.astype(np.float64), np.zeros(n), np.ones(n), row_lower, row_upper,
                start, index, value, np.ones(n, dtype=np.int32))  # every column integer
    h.run()
    status = h.getModelStatus()
    if status == highspy.HighsModelStatus.kInfeasible:
        return None
    if status != highspy.HighsModelStatus.kOptimal:
        raise PlanError(f"HiGHS stopped without an optimal plan: {h.modelStatusToString(status)}")
    x = np.asarray(h.getSolution().col_value)
    chosen = np.flatnonzero(x > 0.5)
    return chosen[np.argsort(job_of[chosen], kind="stable")]
