"""`carbon-shift`: hold a job with deadline slack until the hour its run is forecast cleanest.

At a job's first consideration the gate plans its start once: among now and the whole UTC
hours within its slack (capped by `max_delay_h`), the start whose forecast intensity, averaged
over the job's expected run, is lowest; it holds the job until then if that is at least
`min_saving` cleaner than starting now. The plan is kept (the forecast is not chased on later
passes; a job preempted after its release is not held again). docs/policies.md has the rules.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field

import numpy as np

from altostrat.catalog.carbon import REGION_STATIC
from altostrat.catalog.carbon_forecast import FORECASTERS, forecast
from altostrat.cluster.state import allowed_on
from altostrat.policy.registry import register

HOUR = 3600.0


@register(
    "gate",
    "carbon-shift",
    "carbon-aware temporal shifting within deadline slack (Wiesner et al., \"Let's Wait Awhile\", Middleware'21)",
)
@dataclass
class CarbonShift:
    forecaster: str = "blend"
    max_delay_h: float = 24.0  # never hold a job longer than this
    default_slack_h: float = 0.0  # slack of a job without a deadline (0: never shifted)
    min_saving: float = 0.05  # hold only if the forecast run is this fraction cleaner than now
    margin_h: float = 2.0  # kept free before a deadline, for a busy cluster to start the job late

    # Per-run state: the calendar and grid (bind), each job's planned release (sim seconds),
    # one node per distinct (region, jurisdiction, spot, GPU model) to find a job's regions and
    # best speed without scanning every node, the forecasts made at the current hour, and the
    # GPU milli the planned runs expect to hold per epoch hour (so plans do not herd into one hour).
    _carbon: object = field(default=None, init=False, repr=False, compare=False)
    _epoch: float = field(default=0.0, init=False, repr=False, compare=False)
    _release: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _kinds: list | None = field(default=None, init=False, repr=False, compare=False)
    _hour: int | None = field(default=None, init=False, repr=False, compare=False)
    _forecasts: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _booked: dict = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.forecaster not in FORECASTERS:
            raise ValueError(f"forecaster={self.forecaster!r}: use one of {', '.join(FORECASTERS)}")
        for name in ("max_delay_h", "default_slack_h", "margin_h"):
            if not getattr(self, name) >= 0:
                raise ValueError(f"{name}={getattr(self, name)} must be >= 0 hours")
        if not 0 <= self.min_saving < 1:
            raise ValueError(f"min_saving={self.min_saving} must be a fraction in [0, 1)")

    def bind(self, context) -> None:
        self._carbon = context.carbon
        self._epoch = context.carbon.start_epoch if context.carbon is not None else 0.0
        self._release.clear()
        self._kinds = None
        self._hour = None
        self._forecasts.clear()
        self._booked.clear()

    def hold(self, job, engine, now: float) -> float | None:
        release = self._release.get(job.idx)
        if release is None:
            release = self._release[job.idx] = self._plan(job, engine, now)
        return release if now < release else None

    # -- planning, once per job ----------------------------------------------------------
    def _plan(self, job, engine, now: float) -> float:
        if self._carbon is None:
            return now
        regions, speed = self._where(job, engine)
        run_s = engine.remaining(job, now) / speed + engine.overhead_due.get(job.idx, 0.0)
        a0 = self._epoch + now  # epoch seconds
        start = self._best_start(job, engine, now, a0, regions, run_s)
        self._book(start, run_s, job.gpu_milli_total)
        return now if start == a0 else start - self._epoch  # now exactly: epoch + now - epoch may round

    def _best_start(self, job, engine, now: float, a0: float, regions: list, run_s: float) -> float:
        """The epoch second to start at: now, or the cleanest whole hour within the slack."""
        if job.deadline is not None:
            slack = job.deadline - now - run_s - self.margin_h * HOUR
        else:
            slack = self.default_slack_h * HOUR
        window = min(slack, self.max_delay_h * HOUR)
        hour0 = math.floor(a0 / HOUR)
        last = math.floor((a0 + window) / HOUR)  # the latest whole hour to start at
        if window <= 0 or last <= hour0:
            return a0
        starts = np.concatenate(([a0], np.arange(hour0 + 1, last + 1) * HOUR))
        horizon = math.ceil((last * HOUR + run_s) / HOUR) - hour0 + 1
        curve = None
        for region in regions:
            mean = self._mean_intensity(region, hour0, horizon, starts, run_s)
            if mean is not None:
                curve = mean if curve is None else np.minimum(curve, mean)
        if curve is None:
            return a0
        curve[1:][~self._room(engine, job, hour0, starts[1:], run_s)] = np.inf
        best = int(np.argmin(curve))  # the earliest of equal minima
        if best == 0 or curve[best] > (1.0 - self.min_saving) * curve[0]:
            return a0
        return float(starts[best])

    def _room(self, engine, job, hour0: int, starts: np.ndarray, run_s: float) -> np.ndarray:
        """Whether the GPUs booked for each hour of a run from each start leave room for the job."""
        need = job.gpu_milli_total
        if not need:
            return np.ones(len(starts), dtype=bool)
        first = (starts // HOUR).astype(np.int64)
        end = np.ceil((starts + run_s) / HOUR).astype(np.int64)
        booked = np.array([self._booked.get(h, 0) for h in range(hour0, int(end.max()) + 1)])
        spare = engine.state.gpu_capacity_milli - need
        return np.array([booked[a - hour0:max(b, a + 1) - hour0].max() <= spare for a, b in zip(first, end)])

    def _book(self, start: float, run_s: float, milli: int) -> None:
        if milli:
            for h in range(math.floor(start / HOUR), max(math.ceil((start + run_s) / HOUR), math.floor(start / HOUR) + 1)):
                self._booked[h] = self._booked.get(h, 0) + milli

    def _where(self, job, engine) -> tuple[list, float]:
        """The regions of the nodes the job may run on, and its best speed there."""
        if self._kinds is None:
            kinds = {}
            for node in engine.state.nodes:
                kinds.setdefault((node.region, node.jurisdiction, node.spot, node.gpu_model if node.gpus else None), node)
            self._kinds = list(kinds.values())
        regions, speed = set(), 0.0
        for node in self._kinds:
            if not allowed_on(node, job):
                continue
            if job.gpu_milli:
                if not node.gpus or (job.gpu_models is not None and node.gpu_model not in job.gpu_models):
                    continue
                speed = max(speed, job.speed(node.gpu_model))
            else:
                speed = 1.0
            regions.add(node.region)
        return sorted(regions, key=lambda r: r or ""), speed or 1.0

    def _mean_intensity(self, region, hour0: int, horizon: int, starts: np.ndarray, run_s: float):
        """Forecast gCO2e/kWh averaged over [s, s + run_s] for each start s; None if the region has none.

        Without hourly data the region is flat at its static figure: shifting cannot help there.
        """
        hourly = self._forecast(region, hour0, horizon)
        if hourly is None:
            static = REGION_STATIC.get(region or "")
            return None if static is None else np.full(len(starts), static)
        if run_s <= 0:
            return hourly[(starts // HOUR).astype(np.int64) - hour0]
        # piecewise constant per hour: integrate it exactly between the start and the end
        cum = np.concatenate(([0.0], np.cumsum(hourly)))  # hour-weighted sums up to each hour
        padded = np.append(hourly, hourly[-1])  # an end exactly at the horizon reads one past it

        def integral(t: np.ndarray) -> np.ndarray:
            u = t / HOUR - hour0
            k = np.minimum(np.floor(u).astype(np.int64), len(hourly))
            return cum[k] + padded[k] * (u - k)

        return (integral(starts + run_s) - integral(starts)) * (HOUR / run_s)

    def _forecast(self, region, hour0: int, horizon: int):
        if self._hour != hour0:  # forecasts made at an earlier hour are stale
            self._hour = hour0
            self._forecasts.clear()
        if region in self._forecasts:
            values = self._forecasts[region]
            if values is None or len(values) >= horizon:
                return None if values is None else values[:horizon]
        series = self._carbon.series(region)
        values = None if series is None else forecast(series, hour0, horizon, self.forecaster)
        self._forecasts[region] = values
        return values
