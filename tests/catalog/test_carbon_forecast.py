"""Carbon-intensity forecasts, checked by hand on tiny series; none may read the future."""

import math

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.catalog.carbon import HourlySeries
from altostrat.catalog.carbon_forecast import BLEND_TAU_H, forecast

FIRST = 1000  # epoch hour of the first value


def series(values) -> HourlySeries:
    return HourlySeries(FIRST, np.asarray(values, dtype=np.float64), "test")


def test_persistence_repeats_yesterday():
    s = series(100 + np.arange(48))  # hour FIRST + k holds 100 + k
    f = forecast(s, FIRST + 30, 30, "persistence")
    # the decision hour is known (130); the next 24 hours are yesterday's 107..130; then the day before's again
    assert f.tolist() == [130, *range(107, 131), *range(107, 112)]


def test_persistence_without_a_day_of_history_repeats_the_last_value():
    s = series([5, 6, 7])
    assert forecast(s, FIRST + 2, 3, "persistence").tolist() == [7, 7, 7]


def test_blend_is_the_weekly_profile_plus_the_fading_anomaly():
    day = 100 + 10 * np.arange(24)  # the same daily profile for 8 days
    values = np.tile(day, 8).astype(float)
    d = FIRST + 7 * 24 + 5  # hour of day 5, 7 days in
    values[d - FIRST] += 40  # today runs 40 above the profile at the decision hour
    f = forecast(series(values), d, 4, "blend")
    assert f[0] == day[5] + 40  # observed
    for k in range(1, 4):
        assert f[k] == pytest.approx(day[5 + k] + 40 * math.exp(-k / BLEND_TAU_H))


def test_blend_profile_averages_the_last_seven_days():
    # day j holds the constant j (0..7); at the end of day 7 the next day is forecast as the
    # mean of days 1..7 = 4, plus the anomaly 7 - mean(days 0..6 at that hour) = 7 - 3 = 4, fading
    values = np.repeat(np.arange(8.0), 24)
    d = FIRST + 8 * 24 - 1
    f = forecast(series(values), d, 3, "blend")
    assert f.tolist() == pytest.approx([7.0, 4 + 4 * math.exp(-1 / BLEND_TAU_H), 4 + 4 * math.exp(-2 / BLEND_TAU_H)])


def test_oracle_is_the_truth_and_no_data_no_forecast():
    s = series([1, 2, 3, 4])
    assert forecast(s, FIRST + 1, 3, "oracle").tolist() == [2, 3, 4]
    assert forecast(s, FIRST - 1, 3, "persistence") is None
    with pytest.raises(ValueError, match="use one of persistence, blend, oracle"):
        forecast(s, FIRST, 3, "prophet")


def test_after_the_data_ends_the_last_day_repeats():
    s = series(np.arange(24.0))
    assert forecast(s, FIRST + 30, 2, "persistence").tolist() == [6.0, 7.0]


@settings(max_examples=60, deadline=None)
@given(
    values=st.lists(st.floats(0, 1000), min_size=2, max_size=24 * 9),
    at=st.integers(0, 24 * 9),
    horizon=st.integers(1, 60),
    noise=st.floats(-500, 500),
    method=st.sampled_from(["persistence", "blend"]),
)
def test_no_future_value_changes_a_forecast(values, at, horizon, noise, method):
    s = series(values)
    before = forecast(s, FIRST + at, horizon, method)
    changed = np.array(values, dtype=float)
    changed[at + 1:] += noise  # everything after the decision hour
    after = forecast(series(changed), FIRST + at, horizon, method)
    assert np.array_equal(before, after)
    assert len(before) == horizon and np.isfinite(before).all()
