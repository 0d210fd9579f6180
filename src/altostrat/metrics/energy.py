"""Energy from the event log and the nodes' power models (catalog/power.py), computed once.

Every node draws its static watts while it is up: the whole metrics window, except a spot
node while revoked and an elastic node while scaled down (from a node_down to a node_up
event; elastic nodes start down); a running job
adds, from its start to its finish or preemption, its allocated milli-GPUs and milli-vCPUs
times the watts per milli of its first node (the log records a start's first node only:
exact when a gang's nodes share GPU model and region, as they do in every built-in cluster).
"""

from __future__ import annotations

import math

import numpy as np

from altostrat.catalog.carbon import CarbonModel
from altostrat.sim.eventlog import FINISH, NODE_DOWN, NODE_UP, PREEMPT, START
from altostrat.sim.simulator import SimResult

J_PER_KWH = 3.6e6


def node_level(result: SimResult, value: np.ndarray) -> np.ndarray:
    """Per log event, the change in Σ value over the nodes that are up: a node's value
    leaves at its node_down and comes back at its node_up."""
    kind = np.asarray(result.log.kind, dtype=np.int8)
    node = np.asarray(result.log.node, dtype=np.int64)
    sign = np.where(kind == NODE_DOWN, -1.0, np.where(kind == NODE_UP, 1.0, 0.0))
    if not len(value):
        return np.zeros(len(kind))
    return sign * value[np.where(sign != 0, node, 0)]


def power_steps(result: SimResult) -> dict[str | None, tuple[float, np.ndarray]] | None:
    """Per region: (static watts, watts delta at each log event); None when no node has a power model."""
    power = result.power
    if not any(p is not None for p in power):
        return None
    log = result.log
    kind = np.asarray(log.kind, dtype=np.int8)
    node = np.asarray(log.node, dtype=np.int64)
    starts = kind == START
    stops = (kind == FINISH) | (kind == PREEMPT)
    start_at, stop_at = attempts(result)
    node_of = node.copy()  # a stop frees the nodes of its start
    ended = stop_at >= 0
    node_of[stop_at[ended]] = node[start_at[ended]]

    modeled = [p is not None for p in power]
    gpu_w = np.array([p.gpu_w_per_milli if p else 0.0 for p in power] + [0.0])  # index -1: no node
    cpu_w = np.array([p.cpu_w_per_milli if p else 0.0 for p in power] + [0.0])
    sign = np.where(starts, 1.0, np.where(stops, -1.0, 0.0))
    watts = sign * (gpu_w[node_of] * np.asarray(log.gpu_milli, dtype=np.float64)
                    + cpu_w[node_of] * np.asarray(log.cpu_milli, dtype=np.float64))

    regions = sorted({p.region for p in power if p is not None}, key=lambda r: (r is None, r or ""))
    code = {r: i for i, r in enumerate(regions)}
    node_region = np.array([code[p.region] if p else -1 for p in power] + [-1])
    ev_region = node_region[node_of]
    static_w = np.array([p.static_w if p else 0.0 for p in power])
    updown = (kind == NODE_DOWN) | (kind == NODE_UP)  # a revoked node stops drawing its static watts
    ev_region[updown] = node_region[node[updown]]
    watts = watts + node_level(result, static_w)
    out = {}
    up = result.up_at_start or (True,) * len(power)
    for r, i in code.items():
        static = sum(p.static_w for p, m, u in zip(power, modeled, up) if m and u and p.region == r)
        out[r] = (static, np.where(ev_region == i, watts, 0.0))
    return out


def attempts(result: SimResult) -> tuple[np.ndarray, np.ndarray]:
    """Each run of a job as log positions: (its START, its FINISH or PREEMPT; -1 while it runs on)."""
    kind = np.asarray(result.log.kind, dtype=np.int8)
    jidx = np.asarray(result.log.job, dtype=np.int64)
    is_start = kind == START
    # by job, then log order, a job's starts and stops alternate, each stop right after its start
    sel = np.flatnonzero(is_start | (kind == FINISH) | (kind == PREEMPT))
    order = sel[np.lexsort((sel, jidx[sel]))]
    pos = np.flatnonzero(is_start[order])
    start_at = order[pos]
    nxt = order[np.minimum(pos + 1, len(order) - 1)] if len(order) else pos
    ended = (pos + 1 < len(order)) & ~is_start[nxt] & (jidx[nxt] == jidx[start_at])
    return start_at, np.where(ended, nxt, -1)


def cumulative_joules(times: np.ndarray, static_w: float, deltas: np.ndarray, at: np.ndarray,
                      clock=None) -> np.ndarray:
    """∫ from times[0] to each of `at` of (static + Σ deltas so far) dt; `at` >= times[0], times sorted.

    `clock`: a nondecreasing function of time to integrate against instead of t itself
    (d clock(t)), e.g. the USD a node has cost by t under a price history (catalog/spot_history.py).
    """
    level = static_w + np.cumsum(deltas)
    c, c_at = (times, at) if clock is None else (clock(times), clock(at))
    # energy at each event time: the level before it times the gap since the previous event
    joules = np.concatenate(([0.0], np.cumsum(level[:-1] * np.diff(c))))
    k = np.searchsorted(times, at, side="right") - 1
    return joules[k] + level[k] * (c_at - c[k])


def _levels(result: SimResult, t0: float, steps):
    """Event times, padded so that the first is at or before t0, with each region's deltas padded alike."""
    t = np.asarray(result.log.time, dtype=np.float64)
    times = np.concatenate(([min(t[0], t0) if len(t) else t0], t))
    return times, {r: (static, np.concatenate(([0.0], d))) for r, (static, d) in steps.items()}


def energy_joules(result: SimResult, t0: float, t1: float) -> float | None:
    steps = power_steps(result)
    if steps is None:
        return None
    if t1 <= t0:
        return 0.0
    times, levels = _levels(result, t0, steps)
    # events before t0 set the level the window starts at; the static draw counts from t0
    window = np.array([t0, t1])
    return float(sum(np.diff(cumulative_joules(times, static, d, window))[0] for static, d in levels.values()))


def hour_grid(start_epoch: float, t0: float, t1: float) -> tuple[np.ndarray, np.ndarray]:
    """The UTC hours (epoch hours) that [t0, t1] of the trace clock overlaps, and their edges on the
    trace clock clipped to [t0, t1] (one more edge than hours); trace time 0 is `start_epoch`."""
    a0, a1 = start_epoch + t0, start_epoch + max(t1, t0)
    hours = np.arange(math.floor(a0 / 3600), max(math.ceil(a1 / 3600), math.floor(a0 / 3600) + 1), dtype=np.int64)
    edges = np.clip(np.append(hours, hours[-1] + 1) * 3600.0, a0, a1) - start_epoch
    # the ends exactly: on the epoch scale t0 rounds, and an edge just before the first event reads no level
    edges[0], edges[-1] = t0, max(t1, t0)
    return hours, edges


def carbon_kg(result: SimResult, t0: float, t1: float, model: CarbonModel) -> float | None:
    """Σ over regions and UTC hours of the window of kWh drawn in that hour × the hour's intensity.

    Trace time 0 is `model.start`. Nodes of a region with no intensity add nothing; None when
    no node with a power model has one.
    """
    steps = power_steps(result)
    if steps is None:
        return None
    hours, edges = hour_grid(model.start_epoch, t0, t1)
    times, levels = _levels(result, t0, steps)
    grams, known = 0.0, False
    for region, (static, d) in levels.items():
        intensity = model.intensity(region, hours)
        if intensity is None:
            continue
        known = True
        grams += float(np.diff(cumulative_joules(times, static, d, edges)) @ intensity) / J_PER_KWH
    return grams / 1000.0 if known else None
