"""`altostrat tco`: simulate once, price the four scenarios, add energy, carbon and work, project onto years.

Every quantity is first summed over one window W of the simulation (by default the
arrivals, first to last submit; or the whole run, to the last event), then multiplied by
years x SECONDS_PER_YEAR / W: the window's mean rate, repeated.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass

import numpy as np

from altostrat.catalog.carbon import DEFAULT_START, CarbonModel
from altostrat.catalog.catalog import DEFAULT_RESERVED_DISCOUNT
from altostrat.catalog.spot import REVOCATIONS_PER_HOUR
from altostrat.cluster.build import load_cluster
from altostrat.engine import PolicyContext
from altostrat.metrics.energy import J_PER_KWH, cumulative_joules, hour_grid, power_steps
from altostrat.policy.registry import Recovery, parse_policy
from altostrat.metrics.compute import time_weighted
from altostrat.resources import MILLI
from altostrat.sim.eventlog import FINISH, PREEMPT, START
from altostrat.spec.load import SpecError
from altostrat.tco.demand import BusyRun, Curve, clip, simulate_busy
from altostrat.tco.scenarios import PoolPrice, PoolUse, dynamic, pool_price, reserved, static
from altostrat.workload.job import Job, number_jobs
from altostrat.workload.sources import TraceError, WorkloadContext, load_workload

SECONDS_PER_YEAR = 365.25 * 86400
# Commitment discount by term in years: GCP resource-based committed use discounts for GPUs
# and most machine types, 37 % for 1 year (catalog.DEFAULT_RESERVED_DISCOUNT) and 55 % for
# 3 years (cloud.google.com/compute/docs/instances/signing-up-committed-use-discounts); AWS
# reserved instances and Azure reservations are of the same order.
RESERVED_DISCOUNT = {1: DEFAULT_RESERVED_DISCOUNT, 3: 0.55}
# A GPU node from request to running its first task: VM start-up is tens of seconds to about a
# minute on AWS and GCP (Hao et al., "An Empirical Analysis of VM Startup Times in Public IaaS
# Clouds", IEEE CLOUD 2021), plus GPU driver and container image set-up: 3 minutes in all.
BOOT_S = 180.0
# Kubernetes cluster-autoscaler's default --scale-down-unneeded-time (10 min; AKS and GKE keep it).
SCALE_DOWN_S = 600.0
SPOT_FRACTION = 0.5  # of jobs, by count, allowed on spot when the workload marks none
CHECKPOINT_S = 1800.0  # a spot job's checkpoint interval when it names none
# Used only when catalog.spot.REVOCATIONS_PER_HOUR has no rate for the pool's cloud and no
# --spot-revocations-per-hour is given: one revocation per 10 node-hours, of the order of the
# GPU spot logs in ../shared/data/prices/spot-availability-2020 (docs/tco.md).
FALLBACK_REVOCATIONS_PER_HOUR = 0.1
WINDOWS = ("arrivals", "run")


@dataclass(frozen=True)
class TcoRequest:
    workload: str
    cluster: str = "philly-like"
    policy: str = "fcfs+best-fit+backfill"
    years: float = 3.0
    seed: int | None = None
    start: str = DEFAULT_START
    carbon_data: str | None = None
    boot_s: float = BOOT_S
    scale_down_s: float = SCALE_DOWN_S
    reserved_term: int | None = None  # years, 1 or 3; None: 3 for a horizon of 3 years or more, else 1
    reserved_discount: float | None = None  # None: RESERVED_DISCOUNT of the term
    spot_fraction: float | None = None  # None: the workload's spot flags, or SPOT_FRACTION when it sets none
    spot_revocations_per_hour: float | None = None  # None: the cloud's calibrated rate, else the fallback
    skip_invalid: bool = False
    window: str = "arrivals"  # arrivals: first to last submit (steady state); run: first submit to last event

    def check(self) -> None:
        rules = (
            ("--years", self.years, self.years > 0 and math.isfinite(self.years), "a number of years > 0, e.g. 3"),
            ("--boot-s", self.boot_s, self.boot_s >= 0, "seconds >= 0"),
            ("--scale-down-s", self.scale_down_s, self.scale_down_s >= 0, "seconds >= 0"),
            ("--reserved-term", self.reserved_term, self.reserved_term in (None, 1, 3), "1 or 3 (years)"),
            ("--reserved-discount", self.reserved_discount,
             self.reserved_discount is None or 0 <= self.reserved_discount < 1, "a fraction in [0, 1), e.g. 0.55"),
            ("--spot-fraction", self.spot_fraction, self.spot_fraction is None or 0 <= self.spot_fraction <= 1,
             "a fraction of jobs in [0, 1]"),
            ("--spot-revocations-per-hour", self.spot_revocations_per_hour,
             self.spot_revocations_per_hour is None or self.spot_revocations_per_hour >= 0, "a rate >= 0"),
            ("--window", self.window, self.window in WINDOWS, " or ".join(WINDOWS)),
        )
        for option, value, ok, want in rules:
            if not ok:
                raise SpecError(f"{option} {value!r}: give {want}")

    @property
    def term(self) -> int:
        return self.reserved_term or (3 if self.years >= 3 else 1)

    @property
    def discount(self) -> float:
        """The commitment discount over the horizon: terms are bought whole, so a horizon that is
        not a multiple of the term pays for the rest of the last one."""
        d = RESERVED_DISCOUNT[self.term] if self.reserved_discount is None else self.reserved_discount
        paid_years = math.ceil(self.years / self.term - 1e-9) * self.term
        return 1 - (1 - d) * paid_years / self.years


@dataclass(frozen=True, slots=True)
class Draw:
    """A step function of facility watts in one region, counted `weight` times."""

    region: str | None
    times: np.ndarray
    deltas: np.ndarray  # watts change at each time
    weight: float = 1.0
    span: tuple[float, float] | None = None  # integrate over this (starting at or after times[0]); None: all of it


def static_draws(uses: list[PoolUse], prices: dict[str, PoolPrice], weight: float = 1.0) -> list[Draw]:
    out = []
    for use in uses:
        power = prices[use.pool].power
        if power is not None and len(use.powered.times):
            out.append(Draw(power.region, use.powered.times,
                            power.static_w * np.diff(use.powered.level, prepend=0), weight))
    return out


def dynamic_draws(run: BusyRun, span: tuple[float, float], weight: float = 1.0) -> list[Draw]:
    """The draw of allocated GPUs and vCPUs above idle (metrics/energy.py) during `span`, per region."""
    steps = power_steps(run.result)
    t = np.asarray(run.result.log.time, dtype=np.float64)
    if steps is None or not len(t):
        return []
    span = (max(span[0], float(t[0])), max(span[1], float(t[0])))
    return [Draw(region, t, deltas, weight, span) for region, (_, deltas) in steps.items()]


def energy_carbon(draws: list[Draw], carbon: CarbonModel) -> tuple[float | None, float | None]:
    """(joules, grams CO2e) of the draws, energy split at UTC hours and priced at each hour's intensity."""
    if not draws:
        return None, None
    joules, grams, known = 0.0, 0.0, False
    for d in draws:
        hours, edges = hour_grid(carbon.start_epoch, *(d.span or (d.times[0], d.times[-1])))
        per_hour = np.diff(cumulative_joules(d.times, 0.0, d.deltas, edges)) * d.weight
        joules += float(per_hour.sum())
        intensity = carbon.intensity(d.region, hours)
        if intensity is not None:
            known = True
            grams += float(per_hour @ intensity) / J_PER_KWH
    return joules, grams if known else None


def spot_jobs(jobs: list[Job], fraction: float | None, seed: int | None) -> set[int]:
    """Indexes of the jobs that run on spot: the workload's own flags when it sets any and no
    fraction is given, else a seeded random `fraction` of the jobs by count."""
    if fraction is None:
        flagged = {j.idx for j in jobs if j.spot}
        if flagged:
            return flagged
        fraction = SPOT_FRACTION
    rng = np.random.default_rng(1 if seed is None else seed)
    return set(rng.choice(len(jobs), size=round(fraction * len(jobs)), replace=False).tolist())


def _subset(jobs: list[Job], keep: set[int], inside: bool) -> list[Job]:
    return number_jobs([dataclasses.replace(j) for j in jobs if (j.idx in keep) == inside])


def _pool_busy(run: BusyRun, t0: float, t1: float) -> dict[str, list[np.ndarray]]:
    """Per pool, its nodes' busy intervals inside the window [t0, t1]."""
    return {pool: [clip(run.busy[i], t0, t1) for i in idx] for pool, idx in run.pools().items()}


def _work(run: BusyRun, t0: float, t1: float) -> tuple[float, str]:
    """The work done in the window: GPU-hours allocated to jobs, or vCPU-hours for a CPU-only mix."""
    log = run.result.log
    kind = np.asarray(log.kind)
    t = np.asarray(log.time, dtype=np.float64)
    sign = np.where(kind == START, 1, np.where((kind == FINISH) | (kind == PREEMPT), -1, 0))
    gpu_h = time_weighted(t, sign * np.asarray(log.gpu_milli), t0, t1) / MILLI / 3600
    if gpu_h > 0:
        return gpu_h, "GPU-h/kWh"
    return time_weighted(t, sign * np.asarray(log.cpu_milli), t0, t1) / MILLI / 3600, "vCPU-h/kWh"


def tco(req: TcoRequest) -> dict:
    """The four scenarios of docs/tco.md as the `--json` object: {"years", "scenarios": […]}."""
    req.check()
    carbon = CarbonModel(req.start, req.carbon_data)
    carbon.check()
    parse_policy(req.policy)  # a bad policy fails before the workload is read
    _, probe = load_cluster(req.cluster)
    jobs = load_workload(req.workload, WorkloadContext(cluster=probe, seed=req.seed, skip_invalid=req.skip_invalid))
    if not jobs:
        raise SpecError(f"--workload {req.workload!r}: no jobs")
    if any(math.isnan(j.duration) for j in jobs):
        raise TraceError(f"--workload {req.workload!r}: its pods have no creation/deletion times; TCO needs timed jobs")
    prices: dict[str, PoolPrice] = {}
    for node in probe.nodes:
        if node.pool not in prices:
            prices[node.pool] = pool_price(node.pool, node)
    context = PolicyContext(carbon=carbon)
    base = simulate_busy(jobs, req.cluster, req.policy, context)
    t0, t1 = base.t0, (base.last_submit if req.window == "arrivals" else base.t1)
    window = t1 - t0
    if window <= 0:
        raise SpecError(f"--window {req.window}: the window of {req.workload!r} spans no time"
                        + ("; its jobs all arrive at once: use --window run" if req.window == "arrivals" else ""))
    busy = _pool_busy(base, t0, t1)
    od = {p: pr.instance.price_hr for p, pr in prices.items()}

    static_uses = [static(p, Curve.of(b), od[p], t0, t1) for p, b in busy.items()]
    dynamic_uses = [dynamic(p, b, od[p], req.boot_s, req.scale_down_s) for p, b in busy.items()]
    reserved_uses = [reserved(u.pool, u, od[u.pool], req.discount, t0, t1) for u in dynamic_uses]
    base_dyn = dynamic_draws(base, (t0, t1))

    # dynamic with spot: spot and on-demand capacity are separate, so each class is simulated alone
    chosen = spot_jobs(jobs, req.spot_fraction, req.seed)
    od_run = base if not chosen else (None if len(chosen) == len(jobs) else
                                      simulate_busy(_subset(jobs, chosen, False), req.cluster, req.policy, context))
    spot_run = None if not chosen else (base if od_run is None else
                                        simulate_busy(_subset(jobs, chosen, True), req.cluster, req.policy, context))
    od_part = [] if od_run is None else [dynamic(p, b, od[p], req.boot_s, req.scale_down_s)
                                         for p, b in _pool_busy(od_run, t0, t1).items()]
    spot_part, factor, spot_notes = [], 1.0, {}
    if spot_run is not None:
        spot_busy = _pool_busy(spot_run, t0, t1)
        no_spot_price = sorted(p for p in spot_busy if prices[p].instance.spot_price_hr is None)
        raw = [dynamic(p, b, 0.0, req.boot_s, req.scale_down_s, "spot") for p, b in spot_busy.items()]
        factor, spot_notes = _revocation_overhead(req, spot_run, raw, prices)
        spot_part = [dataclasses.replace(u, pool=f"{u.pool}/spot", usd=factor * u.powered.integral() / 3600 * (
            prices[u.pool].instance.spot_price_hr or od[u.pool])) for u in raw]
        spot_notes["jobs_on_spot"] = len(chosen)
        if no_spot_price:
            spot_notes["no_spot_price_billed_on_demand"] = no_spot_price
    spot_prices = {**prices, **{f"{p}/spot": pr for p, pr in prices.items()}}

    scale = req.years * SECONDS_PER_YEAR / window
    work, unit = _work(base, t0, t1)
    common = {"window": req.window, "window_s": window, "policy": req.policy}
    plans = [
        ("static-on-demand", static_uses, static_draws(static_uses, prices) + base_dyn,
         {"nodes": "peak of busy nodes per pool, on-demand, up all the time"}),
        ("reserved-mix", reserved_uses, static_draws(reserved_uses, prices) + base_dyn,
         {"term_years": req.term, "discount": req.discount, "boot_s": req.boot_s, "scale_down_s": req.scale_down_s}),
        ("dynamic-on-demand", dynamic_uses, static_draws(dynamic_uses, prices) + base_dyn,
         {"boot_s": req.boot_s, "scale_down_s": req.scale_down_s}),
        ("dynamic-spot", od_part + spot_part,
         static_draws(od_part, prices) + ([] if od_run is None else dynamic_draws(od_run, (t0, t1)))
         + static_draws(spot_part, spot_prices, factor) + ([] if spot_run is None else dynamic_draws(spot_run, (t0, t1), factor)),
         {"boot_s": req.boot_s, "scale_down_s": req.scale_down_s, **spot_notes}),
    ]
    scenarios = []
    for name, uses, draws, notes in plans:
        joules, grams = energy_carbon(draws, carbon)
        kwh = None if joules is None else joules / J_PER_KWH
        total = sum(u.usd for u in uses) * scale
        starts = [u.starts for u in uses if u.starts is not None]
        scenarios.append({
            "name": name,
            "tco_usd": total,
            "monthly_usd": total / (12 * req.years),
            "energy_mwh": None if kwh is None else kwh * scale / 1000,
            "carbon_tco2e": None if grams is None else grams * scale / 1e6,
            "perf_per_watt": work / kwh if kwh else None,
            "perf_unit": unit,
            "nodes": {u.pool: u.nodes for u in uses},
            "node_hours": sum(u.powered.integral() for u in uses) / 3600 * scale,
            "node_starts": sum(starts) * scale if starts else None,
            "assumptions": {**common, **notes},
        })
    ref = scenarios[0]
    for s in scenarios:
        s["tco_vs_static"] = s["tco_usd"] / ref["tco_usd"] if ref["tco_usd"] else None
        s["energy_vs_static"] = s["energy_mwh"] / ref["energy_mwh"] if ref["energy_mwh"] else None
    return {"years": req.years, "scenarios": scenarios}


def _revocation_overhead(req: TcoRequest, run: BusyRun, uses: list[PoolUse],
                         prices: dict[str, PoolPrice]) -> tuple[float, dict]:
    """1 + expected node-time lost to revocations per node-hour on spot.

    A revocation loses, on average, half a checkpoint interval of work, then pays a new
    node's boot and the restore (Recovery.restart_s). The rate is the node-hour-weighted
    mean over the spot pools; the interval the work-weighted mean over the spot jobs.
    """
    hours = {u.pool: u.powered.integral() / 3600 for u in uses}
    rates = {}
    for pool in hours:
        cloud = prices[pool].instance.cloud
        rates[pool] = (req.spot_revocations_per_hour if req.spot_revocations_per_hour is not None
                       else REVOCATIONS_PER_HOUR.get(cloud, FALLBACK_REVOCATIONS_PER_HOUR))
    total = sum(hours.values())
    rate = sum(rates[p] * h for p, h in hours.items()) / total if total else 0.0
    weights = [(j.duration * max(j.gpus, j.tasks), j.checkpoint_s or CHECKPOINT_S) for j in run.result.jobs]
    w = sum(a for a, _ in weights)
    interval = sum(a * c for a, c in weights) / w if w else CHECKPOINT_S
    restart = Recovery().restart_s
    factor = 1 + rate * (interval / 2 + req.boot_s + restart) / 3600
    source = ("--spot-revocations-per-hour" if req.spot_revocations_per_hour is not None else
              "calibrated" if all(prices[p].instance.cloud in REVOCATIONS_PER_HOUR for p in hours) else "fallback")
    return factor, {"revocations_per_hour": rate, "revocation_rate_source": source, "checkpoint_s": interval,
                    "restart_s": restart, "revocation_overhead": factor}
