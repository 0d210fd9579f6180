"""Time series for plots, from the event log: utilization, queue length, JCT CDF."""

from __future__ import annotations

import numpy as np

from altostrat.sim.eventlog import FINISH, PREEMPT, REJECT, START, SUBMIT
from altostrat.sim.simulator import SimResult


def _step_sample(times: np.ndarray, level: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """Value of a step function (changing to level[i] at times[i]) at each grid point."""
    pos = np.searchsorted(times, grid, side="right") - 1
    return np.where(pos >= 0, level[np.clip(pos, 0, None)], 0)


def series(result: SimResult, points: int = 300) -> dict:
    log = result.log
    t = np.asarray(log.time, dtype=np.float64)
    kind = np.asarray(log.kind)
    gpu = np.asarray(log.gpu_milli, dtype=np.float64)
    if len(t) == 0:
        return {"time_s": [], "gpu_utilization": [], "queue_length": [], "jct_s": [], "jct_cdf": []}
    grid = np.linspace(t.min(), t.max(), points)
    alloc = np.cumsum(np.where(kind == START, gpu, np.where((kind == FINISH) | (kind == PREEMPT), -gpu, 0)))
    queue = np.cumsum(np.where((kind == SUBMIT) | (kind == PREEMPT), 1, 0) - np.where((kind == START) | (kind == REJECT), 1, 0))
    cap = result.gpu_capacity_milli or 1
    submit = np.array([j.submit for j in result.jobs])
    fin = kind == FINISH
    jct = np.sort(t[fin] - submit[np.asarray(log.job)[fin]])
    if len(jct) > 500:
        jct = jct[np.linspace(0, len(jct) - 1, 500).astype(int)]
    return {
        "time_s": grid.tolist(),
        "gpu_utilization": (_step_sample(t, alloc, grid) / cap).tolist(),
        "queue_length": _step_sample(t, queue, grid).tolist(),
        "jct_s": jct.tolist(),
        "jct_cdf": (np.arange(1, len(jct) + 1) / max(len(jct), 1)).tolist(),
    }
