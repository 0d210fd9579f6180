"""Per-tenant cost, energy, carbon, spot revocations, egress and budget overruns, from the event log.

Each run of a job (a START to its FINISH or PREEMPT, or to the window's end) is charged on
its first node, as metrics/energy.py does (exact when a gang's nodes share price, GPU model
and region): cost is the node's price × the job's dominant share of it × tasks; power is its
dynamic draw plus that share of the node's static draw. On a node billed by a spot price
history the price is the history's over the run's seconds, exactly. What no job holds (idle
capacity) is in the run's totals but no tenant's: docs/economics.md, "Per-tenant metrics".
"""

from __future__ import annotations

import math

import numpy as np

from altostrat.budgets import allowance
from altostrat.catalog.carbon import CarbonModel
from altostrat.catalog.spot_history import SpotBilling
from altostrat.metrics.energy import J_PER_KWH, attempts, cumulative_joules
from altostrat.resources import MILLI
from altostrat.sim.simulator import SimResult

TENANT_KEYS = ("cost_usd", "energy_kwh", "carbon_kgco2e", "spot_revocations", "egress_gb", "egress_usd",
               "budget_overruns")


def per_tenant(result: SimResult, t0: float, t1: float, model: CarbonModel, budgets: dict | None,
               moved: tuple[np.ndarray, np.ndarray] | None = None,
               spot: SpotBilling | None = None) -> tuple[dict[str, dict], int | None]:
    """({tenant: {TENANT_KEYS}}, budget overruns over all tenants; None when no tenant has a budget).

    Cost, energy and carbon count the window [t0, t1]; overruns every budget period up to t1.
    `moved`: per job, the (GB, USD) its data moves cost (metrics/compute.py egress);
    `spot`: the spot price history that bills some nodes (metrics/compute.py cost_usd).
    """
    jobs = result.jobs
    names, tenant_of = np.unique(np.array([j.tenant for j in jobs], dtype=str), return_inverse=True)
    runs = Runs(result, t0, t1, spot)
    count = len(names)
    tenant = tenant_of[runs.job] if len(jobs) else runs.job

    def by_tenant(values: np.ndarray) -> np.ndarray:
        return np.bincount(tenant, weights=values, minlength=count)

    cost = None if result.price_per_s is None else by_tenant(runs.usd)
    joules = None if runs.watts is None else by_tenant(runs.watts * runs.seconds)
    carbon = None if runs.watts is None else runs.carbon_grams(model)
    if carbon is not None:
        carbon = by_tenant(carbon) / 1000.0
    revoked = np.zeros(count, dtype=np.int64)
    if result.revocations:
        idx = np.fromiter(result.revocations, dtype=np.int64, count=len(result.revocations))
        np.add.at(revoked, tenant_of[idx], np.fromiter(result.revocations.values(), dtype=np.int64, count=len(idx)))
    if moved is None:
        egress_gb = egress_usd = np.zeros(count)
    else:
        egress_gb = np.bincount(tenant_of, weights=moved[0], minlength=count)
        egress_usd = np.bincount(tenant_of, weights=moved[1], minlength=count)
    limited = {name: b for name, b in (budgets or {}).items() if b.limited}
    overruns = {name: budget_overruns(runs, tenant == k, limited[name], t1) for k, name in enumerate(names)
                if name in limited}
    out = {
        str(name): {
            "cost_usd": None if cost is None else float(cost[k]),
            "energy_kwh": None if joules is None else float(joules[k]) / J_PER_KWH,
            "carbon_kgco2e": None if carbon is None else float(carbon[k]),
            "spot_revocations": int(revoked[k]),
            "egress_gb": float(egress_gb[k]),
            "egress_usd": float(egress_usd[k]),
            "budget_overruns": overruns.get(name),
        }
        for k, name in enumerate(names)
    }
    return out, (sum(overruns.values()) if limited else None)


class Runs:
    """Every run of a job, with its rates on its first node and its seconds inside the window."""

    def __init__(self, result: SimResult, t0: float, t1: float, spot: SpotBilling | None = None) -> None:
        start_at, stop_at = attempts(result)
        t = np.asarray(result.log.time, dtype=np.float64)
        self.job = np.asarray(result.log.job, dtype=np.int64)[start_at]
        node = np.asarray(result.log.node, dtype=np.int64)[start_at]
        self.start = t[start_at]
        self.end = np.where(stop_at >= 0, t[stop_at], math.inf)  # still running when the log ends
        self.t0, self.t1 = t0, max(t1, t0)
        self.seconds = np.clip(self.end, self.t0, self.t1) - np.clip(self.start, self.t0, self.t1)
        # per task of each run's job: GPU milli, CPU milli, memory MiB
        need = np.array([(j.gpu_milli, j.cpu_milli, j.mem_mib) for j in result.jobs], dtype=np.float64).reshape(-1, 3)
        need = need[self.job]
        tasks = np.array([j.tasks for j in result.jobs], dtype=np.float64)[self.job]
        self.gpus = tasks * need[:, 0] / MILLI
        # USD per second of a run; on a node billed by a price history, nodes' worth per USD of its clock
        self.usd_rate = np.zeros(len(node))
        self.clock_of = np.full(len(node), -1, dtype=np.int64)  # index into self.clocks; -1: a flat price
        self.clocks = [clock for _, clock, _ in spot.groups] if spot is not None else []
        share = np.zeros(len(node))
        if result.nodes:
            share = _dominant_share(result.nodes, need, node)
            price = np.array([n.price_per_s or 0.0 for n in result.nodes])
            billed = np.full(len(result.nodes), -1, dtype=np.int64)
            for g, (_, _, members) in enumerate(spot.groups if spot is not None else ()):
                billed[members] = g
            self.clock_of = billed[node]
            self.usd_rate = np.where(self.clock_of >= 0, 1.0, price[node]) * share * tasks
        self.usd = self.usd_rate * self.seconds  # each run's cost inside the window
        for g, clock in enumerate(self.clocks):
            here = self.clock_of == g
            self.usd[here] = self.usd_rate[here] * (clock(np.clip(self.end[here], self.t0, self.t1))
                                                    - clock(np.clip(self.start[here], self.t0, self.t1)))
        self.watts = self.region = None
        self.regions: list = []
        power = result.power
        if any(p is not None for p in power):
            static = np.array([p.static_w if p else 0.0 for p in power])[node]
            gpu_w = np.array([p.gpu_w_per_milli if p else 0.0 for p in power])[node]
            cpu_w = np.array([p.cpu_w_per_milli if p else 0.0 for p in power])[node]
            self.watts = tasks * (gpu_w * need[:, 0] + cpu_w * need[:, 1] + static * share)
            self.regions = sorted({p.region for p in power if p is not None}, key=lambda r: (r is None, r or ""))
            code = {r: k for k, r in enumerate(self.regions)}
            self.region = np.array([code[p.region] if p else -1 for p in power], dtype=np.int64)[node]  # -1: no model

    def carbon_grams(self, model: CarbonModel) -> np.ndarray | None:
        """Per run: its energy in each UTC hour of the window × the hour's intensity in its node's
        region (as metrics/energy.carbon_kg); None when no region has an intensity."""
        start = model.start_epoch
        a0, a1 = start + self.t0, start + self.t1
        hours = np.arange(math.floor(a0 / 3600), max(math.ceil(a1 / 3600), math.floor(a0 / 3600) + 1), dtype=np.int64)
        edges = np.clip(np.append(hours, hours[-1] + 1) * 3600.0, a0, a1) - start
        s = np.clip(self.start, self.t0, self.t1)
        e = np.clip(self.end, self.t0, self.t1)
        grams, known = np.zeros(len(s)), False
        for k, r in enumerate(self.regions):
            intensity = model.intensity(r, hours)
            if intensity is None:
                continue
            known = True
            # ∫ intensity dt from the window's start, piecewise linear between hour edges
            integral = np.concatenate(([0.0], np.cumsum(np.diff(edges) * intensity)))
            here = self.region == k
            grams[here] = self.watts[here] * (np.interp(e[here], edges, integral)
                                              - np.interp(s[here], edges, integral)) / J_PER_KWH
        return grams if known else None


def _dominant_share(nodes, need: np.ndarray, node: np.ndarray) -> np.ndarray:
    """engine.task_share, vectorised: a task's largest fraction of its node's GPUs, CPU or memory."""
    have = np.array([(n.gpus * MILLI, n.cpu_milli, n.mem_mib) for n in nodes], dtype=np.float64)[node]
    fractions = np.divide(need, have, out=np.zeros_like(need), where=have > 0)
    return fractions.max(axis=1, initial=0.0)


def budget_overruns(runs: Runs, mine: np.ndarray, budget, t1: float) -> int:
    """Budget periods up to t1 in which the tenant's runs spent more USD or GPU-hours than its budget."""
    period = budget.period_s
    periods = max(1, math.ceil(t1 / period)) if t1 > 0 else 0
    if not periods:
        return 0
    edges = np.minimum(np.arange(periods + 1) * period, max(t1, 0.0))
    s, e = runs.start[mine], np.minimum(runs.end[mine], t1)
    over = np.zeros(periods, dtype=bool)
    if budget.usd is not None:  # flat-priced runs against time, the others against their series' clock
        rate, clock_of = runs.usd_rate[mine], runs.clock_of[mine]
        spent = sum(_spent(s[clock_of == g], e[clock_of == g], rate[clock_of == g], edges, clock)
                    for g, clock in ((-1, None), *enumerate(runs.clocks)))
        over |= spent > allowance(budget.usd)
    if budget.gpu_hours is not None:
        over |= _spent(s, e, runs.gpus[mine] / 3600, edges) > allowance(budget.gpu_hours)
    return int(over.sum())


def _spent(s: np.ndarray, e: np.ndarray, rate: np.ndarray, edges: np.ndarray, clock=None) -> np.ndarray:
    """Per period between edges, what runs [s, e) spent at their rates (against `clock`)."""
    # a step function of the summed rate: +rate at a start, -rate at a stop
    times = np.concatenate(([0.0], s, e))
    deltas = np.concatenate(([0.0], rate, -rate))
    order = np.argsort(times, kind="stable")
    return np.diff(cumulative_joules(times[order], 0.0, deltas[order], edges, clock))
