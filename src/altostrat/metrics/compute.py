"""Metrics computed once, from the event log alone.

The window is [warmup or first submit, until or last event]. Only jobs submitted inside
the window count toward job metrics; utilizations are time-weighted over the window.
Fractions lie in [0, 1]; a metric that does not apply (no deadlines, one tenant, nothing
completed, no priced node for cost, no node with a power model for energy or with a grid
intensity for carbon) is None. Cost and static power count every node while it is up: the
whole window, except a spot node while revoked and an elastic node while scaled down (from a
node_down to a node_up event; metrics/energy.py for energy and carbon). Egress counts every
start inside the window of a job whose dataset lives outside the start's region: each
attempt moves the data again. With a spot price history (catalog/spot_history.py SpotBilling),
the spot nodes it covers cost the history's price at each moment they are up instead.
"""

from __future__ import annotations

import numpy as np

from altostrat.catalog.carbon import CarbonModel
from altostrat.catalog.network import NetworkModel
from altostrat.catalog.spot_history import SpotBilling
from altostrat.metrics.energy import J_PER_KWH, carbon_kg, energy_joules, node_level
from altostrat.metrics.tenants import per_tenant
from altostrat.sim.eventlog import FINISH, PREEMPT, REJECT, START, SUBMIT
from altostrat.sim.simulator import SimResult

METRIC_KEYS = (
    "jobs_submitted", "jobs_completed", "jobs_unschedulable", "jobs_unfinished",
    "avg_jct_s", "p50_jct_s", "p99_jct_s", "avg_wait_s", "makespan_s",
    "gpu_utilization", "cpu_utilization", "unallocated_gpu_fraction",
    "deadline_violation_rate", "preemptions", "jain_fairness",
    "decision_p50_us", "decision_p99_us", "cost_usd", "energy_kwh", "carbon_kgco2e", "spot_revocations",
    "egress_gb", "egress_usd", "budget_overruns", "per_tenant",
)


def _num(x) -> float | None:
    return None if x is None else float(x)


def time_weighted(times: np.ndarray, deltas: np.ndarray, t0: float, t1: float, clock=None) -> float:
    """∫ level(t) dt over [t0, t1], where level steps by `deltas` at `times` (sorted);
    ∫ level(t) d clock(t) with a `clock` (metrics/energy.py cumulative_joules)."""
    if t1 <= t0 or len(times) == 0:
        return 0.0
    level = np.cumsum(deltas, dtype=np.float64)
    starts = np.clip(times, t0, t1)
    ends = np.clip(np.append(times[1:], t1), t0, t1)
    return float(np.sum(level * (ends - starts if clock is None else clock(ends) - clock(starts))))


def jain(values) -> float | None:
    x = np.asarray(values, dtype=np.float64)
    if len(x) < 2 or not np.any(x):
        return None
    return float(x.sum() ** 2 / (len(x) * np.square(x).sum()))


def cost_usd(result: SimResult, t0: float, t1: float, spot: SpotBilling | None = None) -> float | None:
    """Σ over nodes of price × seconds up inside the window; a node `spot` bills pays its
    series' price over each second it is up instead."""
    if result.price_per_s is None:
        return None
    if t1 <= t0:
        return 0.0
    price = np.array([nd.price_per_s or 0.0 for nd in result.nodes], dtype=np.float64)
    t = np.asarray(result.log.time, dtype=np.float64)
    times = np.concatenate(([min(t0, t[0]) if len(t) else t0], t))
    up = np.asarray(result.up_at_start, dtype=bool) if result.up_at_start else np.ones(len(price), dtype=bool)
    groups = spot.groups if spot is not None else ()
    for _, _, members in groups:
        price[members] = 0.0
    total = time_weighted(times, np.concatenate(([price[up].sum()], node_level(result, price))), t0, t1)
    for _, clock, members in groups:  # the number of the series' nodes up, against its USD clock
        count = np.zeros(len(price))
        count[members] = 1.0
        total += time_weighted(times, np.concatenate(([count[up].sum()], node_level(result, count))), t0, t1, clock)
    return total


def egress(result: SimResult, t0: float, t1: float, network: NetworkModel) -> tuple[np.ndarray, np.ndarray]:
    """Per job, (GB over the wire, USD) of the data moves of its starts in [t0, t1], as the run planned them."""
    jobs, nodes, log = result.jobs, result.nodes, result.log
    gb, usd = np.zeros(len(jobs)), np.zeros(len(jobs))
    if not nodes or not any(j.dataset_gb for j in jobs):
        return gb, usd
    for time, kind, j, node in zip(log.time, log.kind, log.job, log.node):
        if kind == START and t0 <= time <= t1 and jobs[j].dataset_gb:
            move = network.plan_transfer(jobs[j], nodes[node])
            if move is not None:
                gb[j] += move.gb_moved
                usd[j] += move.usd
    return gb, usd


def compute_metrics(result: SimResult, carbon: CarbonModel | None = None, network: NetworkModel | None = None,
                    budgets: dict | None = None, spot: SpotBilling | None = None) -> dict:
    """`carbon`: the calendar and grid data for carbon_kgco2e (default: static intensities, DEFAULT_START);
    `network`: the transfer model of egress_gb and egress_usd (default: the embedded prices, 10 Gbit/s);
    `budgets`: tenant -> budgets.TenantBudget, for budget_overruns (metrics/tenants.py);
    `spot`: the spot price history of cost_usd (default: the catalog's flat spot prices)."""
    log = result.log
    jobs = result.jobs
    t = np.asarray(log.time, dtype=np.float64)
    kind = np.asarray(log.kind, dtype=np.int8)
    jidx = np.asarray(log.job, dtype=np.int64)
    gpu = np.asarray(log.gpu_milli, dtype=np.int64)
    cpu = np.asarray(log.cpu_milli, dtype=np.int64)
    node = np.asarray(log.node, dtype=np.int64)
    n = len(jobs)

    submit = np.array([j.submit for j in jobs], dtype=np.float64)
    t0 = result.warmup if result.warmup else (float(submit.min()) if n else 0.0)
    t1 = result.until if result.until is not None else (float(t.max()) if len(t) else t0)
    in_window = submit >= t0

    finish = np.full(n, np.nan)
    first_start = np.full(n, np.inf)
    rejected = np.zeros(n, dtype=bool)
    submitted = np.zeros(n, dtype=bool)
    submitted[jidx[kind == SUBMIT]] = True
    finish[jidx[kind == FINISH]] = t[kind == FINISH]
    rejected[jidx[kind == REJECT]] = True
    s_mask = kind == START
    np.minimum.at(first_start, jidx[s_mask], t[s_mask])
    first_start[np.isinf(first_start)] = np.nan

    counted = submitted & in_window
    done = counted & ~np.isnan(finish)
    jct = finish[done] - submit[done]
    started = counted & ~np.isnan(first_start)
    wait = first_start[started] - submit[started]

    # running time per job: starts count negative, stops positive
    stops = (kind == FINISH) | (kind == PREEMPT)
    ran = np.zeros(n)
    np.add.at(ran, jidx[s_mask], -t[s_mask])
    np.add.at(ran, jidx[stops], t[stops])

    span = t1 - t0
    gpu_delta = np.where(s_mask, gpu, np.where(stops, -gpu, 0))
    cpu_delta = np.where(s_mask, cpu, np.where(stops, -cpu, 0))
    gpu_cap, cpu_cap = result.gpu_capacity_milli, result.cpu_capacity_milli
    gpu_util = time_weighted(t, gpu_delta, t0, t1) / (gpu_cap * span) if gpu_cap and span > 0 else None
    cpu_util = time_weighted(t, cpu_delta, t0, t1) / (cpu_cap * span) if cpu_cap and span > 0 else None

    # GPU capacity idle while at least one GPU job waits
    wants_gpu = np.array([j.gpu_milli > 0 for j in jobs], dtype=bool)
    g_ev = wants_gpu[jidx] if n else np.zeros(0, dtype=bool)
    pend_delta = np.where(g_ev & ((kind == SUBMIT) | (kind == PREEMPT)), 1, 0) - np.where(
        g_ev & ((kind == START) | (kind == REJECT)), 1, 0
    )
    waiting = np.cumsum(pend_delta) > 0
    alloc_level = np.cumsum(gpu_delta)
    idle_while_waiting = np.where(waiting, gpu_cap - alloc_level, 0)
    unalloc = None
    if gpu_cap and span > 0:
        unalloc = time_weighted(t, np.diff(idle_while_waiting, prepend=0), t0, t1) / (gpu_cap * span)

    deadline = np.array([np.nan if j.deadline is None else j.deadline for j in jobs], dtype=np.float64)
    has_dl = counted & ~np.isnan(deadline)
    dl_rate = None
    if has_dl.any():
        finished_late = has_dl & ~np.isnan(finish) & (finish > deadline)
        missed_open = has_dl & np.isnan(finish) & (deadline < t1)
        judged = has_dl & (~np.isnan(finish) | (deadline < t1))
        dl_rate = float((finished_late | missed_open).sum() / judged.sum()) if judged.any() else None

    tenants: dict[str, list[float]] = {}
    for i in np.flatnonzero(done):
        tenants.setdefault(jobs[i].tenant, []).append(ran[i] / (finish[i] - submit[i]) if finish[i] > submit[i] else 1.0)
    fairness = jain([np.mean(v) for v in tenants.values()]) if len(tenants) >= 2 else None

    joules = energy_joules(result, t0, t1)
    moved = egress(result, t0, t1, network or NetworkModel())
    carbon = carbon or CarbonModel()
    tenants, overruns = per_tenant(result, t0, t1, carbon, budgets, moved, spot)
    lat = np.asarray(result.decision_ns, dtype=np.float64) / 1000.0
    return {
        "jobs_submitted": int(counted.sum()),
        "jobs_completed": int(done.sum()),
        "jobs_unschedulable": int((counted & rejected).sum()),
        "jobs_unfinished": int((counted & ~rejected & np.isnan(finish)).sum()),
        "avg_jct_s": _num(jct.mean()) if len(jct) else None,
        "p50_jct_s": _num(np.percentile(jct, 50)) if len(jct) else None,
        "p99_jct_s": _num(np.percentile(jct, 99)) if len(jct) else None,
        "avg_wait_s": _num(wait.mean()) if len(wait) else None,
        "makespan_s": _num(finish[done].max() - submit[counted].min()) if done.any() else None,
        "gpu_utilization": _num(gpu_util),
        "cpu_utilization": _num(cpu_util),
        "unallocated_gpu_fraction": _num(unalloc),
        "deadline_violation_rate": dl_rate,
        "preemptions": int(((kind == PREEMPT) & in_window[jidx]).sum()) if n else 0,
        "jain_fairness": fairness,
        "decision_p50_us": _num(np.percentile(lat, 50)) if len(lat) else None,
        "decision_p99_us": _num(np.percentile(lat, 99)) if len(lat) else None,
        "cost_usd": cost_usd(result, t0, t1, spot),
        "energy_kwh": None if joules is None else joules / J_PER_KWH,
        "carbon_kgco2e": carbon_kg(result, t0, t1, carbon),
        # jobs stopped by a revocation (their preempt names the revoked node)
        "spot_revocations": int(((kind == PREEMPT) & (node >= 0) & in_window[jidx]).sum()) if n else 0,
        "egress_gb": float(moved[0].sum()),
        "egress_usd": float(moved[1].sum()),
        "budget_overruns": overruns,
        "per_tenant": tenants,
    }
