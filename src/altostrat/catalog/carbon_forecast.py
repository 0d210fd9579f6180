"""Carbon-intensity forecasts made at a decision hour from the data known then.

A forecast made at epoch hour `d` covers hours d, d+1, …, d+H−1 and reads only the series'
values at hours ≤ d (the current hour's value counts as known: Electricity Maps publishes it
live). docs/economics.md gives their measured accuracy.

* `persistence`: seasonal naive, period 24 h: hour h takes the value 24 h earlier, or 48 h
  earlier when that is still in the future, and so on; the current hour its own value.
* `blend`: the mean of the last 7 days at the same hour of day (the daily profile, which
  carries the solar dip), plus today's anomaly: how far the current hour is above or below
  its own 7-day mean, fading with time constant BLEND_TAU_H. Cheap: 8 lookups per hour.
* `oracle`: the true future, for a benchmark's upper bound only; a scheduler cannot have it.

Hours after the series' last value are forecast from its last day as if the decision were
made there (a series that stops cannot tell more). With nothing known at the decision hour
there is no forecast (None).
"""

from __future__ import annotations

import numpy as np

from altostrat.catalog.carbon import HourlySeries

PERIOD_H = 24
PROFILE_DAYS = 7
# Fitted on 2022, the year before the one the benchmark reports: mean MAE over six zones
# (US-CAL-CISO, DE, GB, JP-TK, AU-NSW, US-TEX-ERCO) at horizons 1-24 h was 39.4 / 35.1 / 30.7 /
# 31.3 / 34.6 gCO2e/kWh for tau 1 / 5 / 24 / 48 h / never fading (persistence: 38.3).
BLEND_TAU_H = 24.0


def _lagged(hours: np.ndarray, last: int) -> np.ndarray:
    """Each hour, or the same hour of the latest day known at `last` (whole periods back)."""
    periods = np.maximum(hours - last, 0) + PERIOD_H - 1
    return hours - PERIOD_H * (periods // PERIOD_H)


def _persistence(values: np.ndarray, first: int, last: int, hours: np.ndarray) -> np.ndarray:
    src = _lagged(hours, last)
    out = values[np.maximum(src - first, 0)]
    return np.where(src >= first, out, values[last - first])  # no day that far back: the last value


def _profile(values: np.ndarray, first: int, hours: np.ndarray) -> np.ndarray:
    """Mean of each of `hours` and its PROFILE_DAYS − 1 predecessors a period apart (those in the data)."""
    back = hours[:, None] - PERIOD_H * np.arange(PROFILE_DAYS)[None, :]
    seen = back >= first
    total = np.where(seen, values[np.maximum(back - first, 0)], 0.0).sum(axis=1)
    count = seen.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), np.nan)


def _blend(values: np.ndarray, first: int, last: int, hours: np.ndarray) -> np.ndarray:
    profile = _profile(values, first, _lagged(hours, last))
    own = _profile(values, first, np.array([last - PERIOD_H]))[0]  # the current hour's 7-day mean, itself excluded
    anomaly = 0.0 if np.isnan(own) else values[last - first] - own
    out = profile + anomaly * np.exp(-(hours - last) / BLEND_TAU_H)
    out = np.where(hours <= last, values[np.clip(hours - first, 0, len(values) - 1)], out)
    return np.where(np.isnan(out), values[last - first], out)


def _oracle(values: np.ndarray, first: int, last: int, hours: np.ndarray) -> np.ndarray:
    return values[np.clip(hours - first, 0, len(values) - 1)]


FORECASTERS = {"persistence": _persistence, "blend": _blend, "oracle": _oracle}


def forecast(series: HourlySeries, decision_hour: int, horizon: int, method: str = "blend") -> np.ndarray | None:
    """gCO2e/kWh forecast at `decision_hour` for it and the next horizon − 1 hours (epoch hours, UTC)."""
    fn = FORECASTERS.get(method)
    if fn is None:
        raise ValueError(f"forecaster {method!r}: use one of {', '.join(FORECASTERS)}")
    first, values = series.first_hour, series.values
    last = min(int(decision_hour), first + len(values) - 1)
    if last < first:
        return None
    hours = np.arange(int(decision_hour), int(decision_hour) + horizon, dtype=np.int64)
    return fn(values, first, last, hours)
