"""Every way to run one job: (instance type, region, node count, lifecycle, start window), with its
cost, time, carbon and risk.

docs/plan.md states the model. Everything per job is numpy over the catalog's rows, so
that a thousand jobs over a few thousand instance types enumerate in well under a second.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from altostrat.catalog import Catalog, CatalogError
from altostrat.catalog.carbon import REGION_STATIC, CarbonModel
from altostrat.catalog.network import DEFAULT_BANDWIDTH_GBPS, NetworkModel
from altostrat.catalog.power import node_power
from altostrat.catalog.regions import jurisdiction
from altostrat.catalog.spot import REVOCATIONS_PER_HOUR
from altostrat.compliance import Place, risk
from altostrat.policy.registry import Recovery
from altostrat.resources import MILLI
from altostrat.spec.schema import JobSpec

# Start windows: a job may start at its submit time or 1, 2, ... hours later, at most
# MAX_WINDOWS starts, and never after its deadline. Later starts only change carbon (the
# grid's hours); with static intensity they are dominated and are not enumerated.
WINDOW_S = 3600.0
MAX_WINDOWS = 24

# Spot revocations per node-hour where catalog/spot.py has no calibrated rate for the cloud.
# An assumption, not a measurement: one revocation per 20 node-hours.
DEFAULT_REVOCATIONS_PER_HOUR = 0.05
# Seconds lost per revocation before work resumes: the simulator's recovery default.
RESTART_S = Recovery.restart_s

# A plan is for work that finishes within this; options expected to run longer (spot
# without checkpoints for a long gang: each revocation starts it over) are not enumerated.
HORIZON_S = 30 * 86400.0

# Regions with no static intensity (catalog/carbon.py REGION_STATIC) get the world average:
# 480 gCO2e/kWh of electricity generated in 2023 (Ember, Global Electricity Review 2024).
FALLBACK_INTENSITY = 480.0



class CatalogTable:
    """The catalog as arrays, with the per-region facts the planner needs; built once per catalog.

    `network_data`: a folder of egress price matrices for the network model (catalog/network.py),
    as `simulate --network-data`; None: its embedded prices. `bandwidth_gbps`: the sustained rate
    a dataset moves at, as `simulate --bandwidth-gbps`.
    """

    def __init__(self, catalog: Catalog, carbon: CarbonModel, network_data: str | None = None,
                 bandwidth_gbps: float = DEFAULT_BANDWIDTH_GBPS) -> None:
        self.catalog = catalog
        self.types = catalog.types
        self.carbon = carbon
        self.regions = sorted({it.region for it in self.types})
        ridx = {r: i for i, r in enumerate(self.regions)}
        self.region_idx = np.array([ridx[it.region] for it in self.types], dtype=np.int64)
        # (cloud, region) of each type, as indexes into self.places: data moves are priced per place
        self.places = sorted({(it.cloud, it.region) for it in self.types})
        pidx = {place: i for i, place in enumerate(self.places)}
        self.place_idx = np.array([pidx[(it.cloud, it.region)] for it in self.types], dtype=np.int64)
        self.network = NetworkModel(network_data, bandwidth_gbps=bandwidth_gbps)
        self._moves: dict[str, tuple[np.ndarray, np.ndarray]] = {}
        self.gpu_model = np.array([it.gpu_model or "" for it in self.types])
        self.models = sorted(set(self.gpu_model))
        self.model_id = np.searchsorted(self.models, self.gpu_model)
        self.gpus = np.array([it.gpu_count for it in self.types], dtype=np.int64)
        self.vcpus = np.array([it.vcpus for it in self.types], dtype=np.float64)
        self.memory_gib = np.array([it.memory_gib for it in self.types], dtype=np.float64)
        self.price = {
            False: np.array([it.price_hr for it in self.types]),
            True: np.array([np.nan if it.spot_price_hr is None else it.spot_price_hr for it in self.types]),
        }
        # Facility watts of a fully loaded node (PUE included); NaN where the GPU has no power figures.
        watts = []
        for it in self.types:
            p = node_power(it.gpu_model, it.gpu_count, it.vcpus * MILLI, it.region)
            watts.append(np.nan if p is None else
                         p.static_w + it.gpu_count * MILLI * p.gpu_w_per_milli + it.vcpus * MILLI * p.cpu_w_per_milli)
        self.node_w = np.array(watts)
        self.has_power = ~np.isnan(self.node_w)
        rate = np.array([REVOCATIONS_PER_HOUR.get(it.cloud, DEFAULT_REVOCATIONS_PER_HOUR) for it in self.types])
        self.revocations_per_s = rate / 3600.0
        self.jurisdiction = [jurisdiction(r) for r in self.regions]
        self._risk: dict[tuple[str, str] | None, tuple[np.ndarray, np.ndarray]] = {}
        self._allowed: dict[frozenset[str] | None, np.ndarray] = {}
        self.intensity = Intensity(self.regions, carbon)

    def moves(self, data_region: str, job: str) -> tuple[np.ndarray, np.ndarray]:
        """Per place, (USD, seconds) per GB of moving a dataset from `data_region` there: priced and
        routed as `simulate` moves it; one table per data region, not per option."""
        if data_region not in self._moves:
            self.network.check_source(data_region, f"job {job!r}")
            per_gb = np.array([self.network.move_per_gb(data_region, cloud, region) for cloud, region in self.places],
                              dtype=np.float64).reshape(-1, 2)
            self._moves[data_region] = (per_gb[:, 0], per_gb[:, 1])
        return self._moves[data_region]

    def risk(self, data_region: str | None, spot: bool) -> np.ndarray:
        """compliance.risk per region (by region index) for a job whose data lives in data_region."""
        # R(x) sees the data's region only through its jurisdiction: one table per jurisdiction
        key = None if data_region is None else ("", jurisdiction(data_region) or data_region)
        if key not in self._risk:
            self._risk[key] = tuple(
                np.array([risk(data_region, Place(r, spot=s)) for r in self.regions]) for s in (False, True))
        return self._risk[key][int(spot)]

    def allowed_regions(self, job: JobSpec) -> np.ndarray:
        """Per region: does the job's residency (regions and jurisdiction codes) allow it?"""
        allowed = job.residency
        if allowed not in self._allowed:
            self._allowed[allowed] = np.array(
                [allowed is None or r in allowed or j in allowed for r, j in zip(self.regions, self.jurisdiction)])
        return self._allowed[allowed]

    def model_values(self, values: dict[str, float], default: float) -> np.ndarray:
        """Per type, the value its GPU model has in `values` (speeds, say), else `default`."""
        per_model = np.array([values.get(m, default) for m in self.models])
        return per_model[self.model_id]


class Intensity:
    """Mean grid intensity (gCO2e/kWh) of a region over a time span: hourly data where given, else static."""

    def __init__(self, regions: list[str], carbon: CarbonModel) -> None:
        self.start_epoch = carbon.start_epoch
        self.static = np.array([REGION_STATIC.get(r, FALLBACK_INTENSITY) for r in regions])
        series = [carbon.series(r) for r in regions]
        self.hourly = np.array([s is not None for s in series])
        self.any_hourly = bool(self.hourly.any())
        # All hourly series back to back; cum holds the running integral (g/kWh x hours) so a
        # span's mean is two lookups, whatever its length.
        self._first = np.zeros(len(regions))
        self._len = np.zeros(len(regions))
        self._off = np.zeros(len(regions), dtype=np.int64)
        self._origin = [s.origin if s is not None else "" for s in series]
        values, cums, off = [], [], 0
        for i, s in enumerate(series):
            if s is None:
                continue
            self._first[i], self._len[i], self._off[i] = s.first_hour, len(s.values), off
            values.append(np.append(s.values, 0.0))  # the value past the end, times zero hours
            cums.append(np.concatenate(([0.0], np.cumsum(s.values))))
            off += len(s.values) + 1
        self._values = np.concatenate(values) if values else np.zeros(1)
        self._cum = np.concatenate(cums) if cums else np.zeros(1)

    def _integral(self, r: np.ndarray, hours: np.ndarray) -> np.ndarray:
        """Integral of intensity from the series' first hour to `hours` (epoch hours, fractional)."""
        pos = hours - self._first[r]
        k = np.floor(pos).astype(np.int64)
        k = np.minimum(k, self._len[r].astype(np.int64))
        return self._cum[self._off[r] + k] + (pos - k) * self._values[self._off[r] + k]

    def mean(self, r: np.ndarray, t0: np.ndarray, t1: np.ndarray) -> np.ndarray:
        """Mean intensity of regions r (indices) from t0 to t1, seconds of workload time."""
        out = self.static[r].astype(np.float64)
        h = self.hourly[r]
        if h.any():
            rh, a, b = r[h], self.start_epoch / 3600 + t0[h] / 3600, self.start_epoch / 3600 + t1[h] / 3600
            bad = (a < self._first[rh]) | (b > self._first[rh] + self._len[rh])
            if bad.any():
                i = int(np.flatnonzero(bad)[0])
                raise CatalogError(
                    f"--carbon-data: a plan option runs from hour {a[i] - self._first[rh][i]:.1f} to "
                    f"{b[i] - self._first[rh][i]:.1f} of {self._origin[rh[i]]}, which holds {int(self._len[rh][i])} "
                    "hours; move --start so that the workload's deadlines fall inside the data")
            out[h] = (self._integral(rh, b) - self._integral(rh, a)) / np.maximum(b - a, 1e-12)
        return out


@dataclass(frozen=True, slots=True)
class JobOptions:
    """Options of one job, parallel arrays; `type_idx` indexes CatalogTable.types."""

    type_idx: np.ndarray
    spot: np.ndarray  # bool
    nodes: np.ndarray
    start_s: np.ndarray  # absolute, seconds from the workload's start
    time_s: np.ndarray  # from submit to finish: waiting for the window, moving data, running
    cost_usd: np.ndarray
    carbon_kg: np.ndarray
    risk: np.ndarray

    def __len__(self) -> int:
        return len(self.type_idx)

    def take(self, keep) -> JobOptions:
        return JobOptions(*(getattr(self, f)[keep] for f in self.__slots__))


@dataclass(frozen=True, slots=True)
class Candidates:
    """Every option of one job as bases (type, lifecycle) x start windows, not yet expanded:
    what varies by window (start, and so time and carbon) is a matrix, the rest per base."""

    submit_s: float
    type_idx: np.ndarray  # per base
    spot: np.ndarray
    nodes: np.ndarray
    cost_usd: np.ndarray
    risk: np.ndarray
    busy_s: np.ndarray  # moving data, then the expected run
    delay_s: np.ndarray  # per window: seconds after submit
    carbon_kg: np.ndarray  # bases x windows

    def __len__(self) -> int:
        return self.carbon_kg.size

    def options(self, b: np.ndarray, k: np.ndarray) -> JobOptions:
        """The options of bases b started in windows k."""
        return JobOptions(self.type_idx[b], self.spot[b], self.nodes[b], self.submit_s + self.delay_s[k],
                          self.delay_s[k] + self.busy_s[b], self.cost_usd[b], self.carbon_kg[b, k], self.risk[b])

    def all(self) -> JobOptions:
        b, k = np.divmod(np.arange(len(self)), len(self.delay_s))
        return self.options(b, k)


def tasks_per_node(job: JobSpec, t: CatalogTable) -> np.ndarray:
    """How many of the job's tasks each instance type holds (0: not one)."""
    milli = round(job.resources.gpu * MILLI)
    if milli == 0:
        fit = np.where(t.gpus == 0, np.iinfo(np.int64).max, 0)
    elif milli < MILLI:  # shares of one GPU never span two
        fit = t.gpus * (MILLI // milli)
    else:
        fit = t.gpus // (milli // MILLI)
    for need, have in ((job.resources.cpu, t.vcpus), (job.resources.memory_gib, t.memory_gib)):
        if need > 0:
            fit = np.minimum(fit, np.floor(have / need + 1e-9).astype(np.int64))
    return fit


def model_ok(job: JobSpec, t: CatalogTable) -> np.ndarray:
    """Types that carry a GPU model the job accepts (every model when it names none)."""
    if job.resources.gpu == 0:
        return t.gpus == 0
    if job.gpu_models is None:
        return t.gpus > 0
    return t.model_values(dict.fromkeys(job.gpu_models, 1.0), 0.0) > 0




def expected_run_s(run_s: np.ndarray, gang_rate_per_s: np.ndarray, checkpoint_s: float | None) -> np.ndarray:
    """Expected wall time of `run_s` seconds of work on capacity revoked at `gang_rate_per_s`.

    Work proceeds in segments of c seconds (the checkpoint interval; the whole run without
    checkpoints); a revocation loses the segment so far and costs RESTART_S. With failures
    at rate λ a segment takes (1/λ + RESTART_S)(e^{λc} − 1) on average (the classic renewal
    result for restart-from-checkpoint), ≈ c (1 + λc/2) when λc is small.
    """
    c = run_s if checkpoint_s is None else np.minimum(run_s, checkpoint_s)
    lam = gang_rate_per_s
    out = run_s.copy()
    live = lam > 0
    x = lam[live] * c[live]
    with np.errstate(over="ignore"):  # e^{λc} past float range: the option never finishes, inf
        out[live] = run_s[live] / c[live] * (1 / lam[live] + RESTART_S) * np.expm1(x)
    return out


def job_options(job: JobSpec, t: CatalogTable, deadline: bool = True) -> Candidates:
    """Every candidate of one job, before risk and dominance pruning.

    With `deadline`, a (type, lifecycle) that misses the job's deadline when started at
    once is left out with all its windows; explain.py asks for them all.
    """
    fit = tasks_per_node(job, t)
    # types it can run on at all: its GPU model, a task fits, residency, power figures known
    idx = np.flatnonzero(model_ok(job, t) & (fit > 0) & t.allowed_regions(job)[t.region_idx] & t.has_power)
    per_node = fit[idx]
    nodes = -(-job.tasks // per_node)
    run_s = job.duration_s / t.model_values(job.speeds or {}, 1.0)[idx]
    transfer_s = np.zeros(len(idx))
    egress_usd = np.zeros(len(idx))
    if job.dataset is not None:
        usd_per_gb, s_per_gb = t.moves(job.dataset.region, job.name)
        egress_usd = job.dataset.size_gb * usd_per_gb[t.place_idx[idx]]
        transfer_s = job.dataset.size_gb * s_per_gb[t.place_idx[idx]]
    # Bases: (type, lifecycle) pairs, on-demand first.
    lifecycles = (False, True) if job.spot else (False,)
    spot = np.repeat(np.array(lifecycles), len(idx))
    b_idx, b_nodes = np.tile(idx, len(lifecycles)), np.tile(nodes, len(lifecycles))
    price = np.concatenate([t.price[s][idx] for s in lifecycles])
    rate = np.where(spot, b_nodes * t.revocations_per_s[b_idx], 0.0)
    wall = expected_run_s(np.tile(run_s, len(lifecycles)), rate, job.checkpoint_s)
    ok = ~np.isnan(price) & (wall <= HORIZON_S)
    if deadline and job.deadline_s is not None:  # started at once it misses the deadline: every later window does too
        ok &= job.submit_s + np.tile(transfer_s, len(lifecycles)) + wall <= job.deadline_s
    b_idx, b_nodes, spot, price, wall = b_idx[ok], b_nodes[ok], spot[ok], price[ok], wall[ok]
    transfer, egress = np.tile(transfer_s, len(lifecycles))[ok], np.tile(egress_usd, len(lifecycles))[ok]
    region = t.region_idx[b_idx]
    k = _windows(job, t, b_idx) if deadline else 1
    delay = np.arange(k) * WINDOW_S
    begin = job.submit_s + delay[None, :] + transfer[:, None]  # bases x windows
    intensity = t.intensity.mean(np.repeat(region, k), begin.ravel(), (begin + wall[:, None]).ravel())
    kwh = b_nodes * t.node_w[b_idx] * wall / 3.6e6
    data_region = job.dataset.region if job.dataset else None
    risk_ = np.where(spot, t.risk(data_region, True)[region], t.risk(data_region, False)[region])
    return Candidates(job.submit_s, b_idx, spot, b_nodes, b_nodes * price * wall / 3600 + egress, risk_,
                      transfer + wall, delay, kwh[:, None] * intensity.reshape(len(b_idx), k) / 1000)


def _windows(job: JobSpec, t: CatalogTable, idx: np.ndarray) -> int:
    """How many start windows to enumerate: one when no candidate's carbon depends on the hour."""
    if not len(idx) or not t.intensity.hourly[t.region_idx[idx]].any():
        return 1
    if job.deadline_s is None:
        return MAX_WINDOWS
    return max(1, min(MAX_WINDOWS, math.floor((job.deadline_s - job.submit_s) / WINDOW_S) + 1))
