"""Spot nodes billed by a price history (--spot-prices), checked by hand.

The hand-made history prices p3.8xlarge in us-east-1 from T: zone a 1.0 USD/h, 3.0 from T + 1800;
zone b 2.0 from T - 600. The region's price is its cheapest zone's, from when both are priced:
1.0 on [T, T + 1800), then 2.0 on (the last price holds after the history ends). The catalog's
flat spot price of p3.8xlarge is 1.7535 USD/h (4 x V100).
"""

import json
import math
from datetime import datetime, timezone

import pytest
from helpers import job, jobs
from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.budgets import TenantBudget
from altostrat.catalog.spot_history import PriceClock, PriceSeries, load_spot_history, spot_billing
from altostrat.cluster.build import load_cluster
from altostrat.metrics.compute import compute_metrics
from altostrat.policy.registry import parse_policy
from altostrat.sim.eventlog import NODE_DOWN, NODE_UP
from altostrat.sim.run import RunRequest, run
from altostrat.sim.simulator import simulate

T = datetime(2020, 3, 1, tzinfo=timezone.utc).timestamp()
HEAD = "apiVersion: altostrat/v1\nkind: Cluster\nmetadata: {name: spot}\nspec:\n  pools:\n"
SPOT = "{name: s, nodes: 1, instanceType: p3.8xlarge, lifecycle: spot, revocationsPerHour: 0}"


def aws_history(root, records: list[tuple[str, float, float]], instance="p3.8xlarge", region="us-east-1"):
    """records: (zone letter, seconds after T, USD/h), as `aws ec2 describe-spot-price-history` prints them."""
    folder = root / "history" / "aws" / region
    folder.mkdir(parents=True, exist_ok=True)
    history = [{"AvailabilityZone": region + zone, "InstanceType": instance, "ProductDescription": "Linux/UNIX",
                "SpotPrice": f"{price:.6f}", "Timestamp": datetime.fromtimestamp(T + dt, timezone.utc).isoformat()}
               for zone, dt, price in records]
    (folder / f"{instance}.json").write_text(json.dumps({"SpotPriceHistory": history}))
    return root / "history"


def two_steps(root):
    return aws_history(root, [("a", 0, 1.0), ("a", 1800, 3.0), ("b", -600, 2.0)])


def cluster(tmp_path, *pools):
    path = tmp_path / "cluster.yaml"
    path.write_text(HEAD + "".join(f"    - {p}\n" for p in pools))
    return path


def simulated(tmp_path, work, *pools, **kw):
    _, state = load_cluster(str(cluster(tmp_path, *pools)))
    history = load_spot_history(two_steps(tmp_path))
    billing = spot_billing("history", history, state.nodes)
    return simulate(jobs(*work), state, parse_policy("fcfs+first-fit"), **kw), billing


def test_a_spot_node_pays_the_history_over_two_steps_and_tenants_alike(tmp_path):
    # x holds 2 of 4 GPUs (share 1/2) for [0, 3600]; y holds the other 2 for [1200, 2400]
    work = (job("x", 0, 3600, gpus=2, spot=True, tenant="x"), job("y", 1200, 1200, gpus=2, spot=True, tenant="y"))
    result, billing = simulated(tmp_path, work, SPOT)
    assert billing.anchor == T and billing.missing == ()
    m = compute_metrics(result, spot=billing)
    assert m["cost_usd"] == pytest.approx(1.0 * 0.5 + 2.0 * 0.5, rel=1e-12)  # 1.5, flat would be 1.7535
    assert m["per_tenant"]["x"]["cost_usd"] == pytest.approx(0.5 * 1.5, rel=1e-12)
    assert m["per_tenant"]["y"]["cost_usd"] == pytest.approx(0.5 * (1.0 * 600 + 2.0 * 600) / 3600, rel=1e-12)
    assert compute_metrics(result)["cost_usd"] == pytest.approx(1.7535)


def test_past_the_history_its_last_price_holds(tmp_path):
    # the history ends at T + 1800; a run of 2 h pays 1.0 for half an hour, then 2.0
    result, billing = simulated(tmp_path, (job("x", 0, 7200, gpus=4, spot=True),), SPOT)
    assert billing.end == T + 1800
    assert compute_metrics(result, spot=billing)["cost_usd"] == pytest.approx(0.5 + 2.0 * 1.5, rel=1e-12)


def test_budget_overruns_count_what_the_history_charged(tmp_path):
    # a day's budget of 1.6 USD: the history charges 1.5 (no overrun), the flat price 1.7535 (one)
    result, billing = simulated(tmp_path, (job("x", 0, 3600, gpus=4, spot=True, tenant="x"),), SPOT)
    budgets = {"x": TenantBudget("x", usd=1.6, period_s=86400)}
    assert compute_metrics(result, budgets=budgets, spot=billing)["budget_overruns"] == 0
    assert compute_metrics(result, budgets=budgets)["budget_overruns"] == 1
    budgets = {"x": TenantBudget("x", usd=1.4, period_s=86400)}
    assert compute_metrics(result, budgets=budgets, spot=billing)["budget_overruns"] == 1


def test_a_spot_pool_without_a_series_keeps_its_catalog_price_and_is_listed(tmp_path):
    # p3.2xlarge (1 x V100, spot 0.5197 USD/h in the catalog) has no series; the on-demand pool
    # is not spot, so it is not listed
    small = "{name: small, nodes: 1, instanceType: p3.2xlarge, lifecycle: spot, revocationsPerHour: 0}"
    od = "{name: od, nodes: 1, instanceType: p3.8xlarge}"
    result, billing = simulated(tmp_path, (job("x", 0, 3600, spot=True),), SPOT, small, od)
    assert billing.missing == ({"pool": "small", "cloud": "aws", "instance_type": "p3.2xlarge", "region": "us-east-1"},)
    assert compute_metrics(result, spot=billing)["cost_usd"] == pytest.approx(1.5 + 0.5197 + 12.24, rel=1e-12)


def test_run_echoes_the_calendar_and_the_missing_pools(tmp_path):
    history = two_steps(tmp_path)
    workload = tmp_path / "work.yaml"
    workload.write_text("apiVersion: altostrat/v1\nkind: Workload\nmetadata: {name: w}\nspec:\n  jobs:\n"
                        "    - {name: x, durationS: 3600, spot: true, tasks: 4, resources: {gpu: 1}}\n")
    a1 = "{name: a1, nodes: 1, instanceType: Standard_NC24ads_A100_v4, lifecycle: spot, revocationsPerHour: 0}"
    req = RunRequest(str(workload), str(cluster(tmp_path, SPOT, a1)), "fcfs+first-fit", spot_prices=str(history))
    out, _ = run(req)
    assert out["spot_prices"] == {
        "data": str(history), "start": "2020-03-01T00:00:00Z", "history_end": "2020-03-01T00:30:00Z",
        "series": [{"cloud": "aws", "instance_type": "p3.8xlarge", "region": "us-east-1", "nodes": 1}],
        "missing_pools": [{"pool": "a1", "cloud": "azure", "instance_type": "Standard_NC24ads_A100_v4",
                           "region": "eastus"}]}
    a1_usd = 0.444433  # the A100 node's catalog spot price, an hour of it
    assert out["metrics"]["cost_usd"] == pytest.approx(1.5 + a1_usd, rel=1e-12)
    req.spot_prices = None
    assert "spot_prices" not in run(req)[0]


def test_trace_time_zero_is_the_latest_start_of_the_billed_series(tmp_path):
    aws_history(tmp_path, [("a", 0, 1.0), ("a", 3600, 4.0)])
    aws_history(tmp_path, [("a", 1800, 2.0), ("a", 5400, 5.0)], instance="p3.2xlarge")
    history = load_spot_history(tmp_path / "history")
    small = "{name: small, nodes: 1, instanceType: p3.2xlarge, lifecycle: spot, revocationsPerHour: 0}"
    _, state = load_cluster(str(cluster(tmp_path, SPOT, small)))
    billing = spot_billing("h", history, state.nodes)
    assert billing.anchor == T + 1800 and billing.end == T + 3600
    (key_small, p3_2, _), (key_big, p3_8, _) = billing.groups
    assert (key_small[1], key_big[1]) == ("p3.2xlarge", "p3.8xlarge")
    # trace [0, 3600] is T + [1800, 5400]: p3.8xlarge pays 1.0 then 4.0, p3.2xlarge 2.0 then 5.0
    assert p3_8(3600.0) - p3_8(0.0) == pytest.approx((1.0 * 1800 + 4.0 * 1800) / 3600, rel=1e-12)
    assert p3_2(3600.0) - p3_2(0.0) == pytest.approx(2.0, rel=1e-12)
    assert p3_2(7200.0) - p3_2(3600.0) == pytest.approx(5.0, rel=1e-12)
    # a cluster that bills only p3.8xlarge replays that series from its own start
    assert spot_billing("h", history, state.nodes[:1]).anchor == T


steps = st.lists(st.tuples(st.integers(1, 20_000), st.integers(1, 400)), min_size=1, max_size=8)


@settings(max_examples=40, deadline=None)
@given(steps=steps, start=st.integers(0, 30_000), a=st.integers(0, 60_000), b=st.integers(0, 60_000))
def test_the_clock_integrates_the_step_function_exactly(steps, start, a, b):
    times, t = [T], T
    for gap, _ in steps[1:]:
        t += gap
        times.append(t)
    prices = tuple(cents / 100 for _, cents in steps)
    series = PriceSeries(tuple(times), prices, len(prices), times[-1])
    clock = PriceClock.replay(series, T + start)
    lo, hi = sorted((a, b))
    assert clock(float(hi)) - clock(float(lo)) == pytest.approx(series.mean_over(T + start + lo, T + start + hi)
                                                                * (hi - lo) / 3600, rel=1e-9, abs=1e-12)


@settings(max_examples=15, deadline=None)
@given(rate=st.floats(0.5, 4.0), seed=st.integers(1, 10_000))
def test_revoked_nodes_pay_the_history_only_while_up(tmp_path_factory, rate, seed):
    """The cost equals Σ over each node's up intervals (from the log) of the series' mean × length."""
    tmp_path = tmp_path_factory.mktemp("spot")
    pool = f"{{name: s, nodes: 3, instanceType: p3.8xlarge, lifecycle: spot, revocationsPerHour: {rate}}}"
    work = tuple(job(f"j{i}", 600 * i, 3000, gpus=4, spot=True) for i in range(6))
    result, billing = simulated(tmp_path, work, pool, seed=seed)
    series = load_spot_history(tmp_path / "history")[("aws", "p3.8xlarge", "us-east-1")]
    t1 = max(result.log.time)
    up_since = dict.fromkeys(range(3), 0.0)
    expected = 0.0
    for time, kind, node in zip(result.log.time, result.log.kind, result.log.node):
        if kind == NODE_DOWN:
            expected += series.mean_over(T + up_since[node], T + time) * (time - up_since[node]) / 3600
            up_since[node] = math.nan
        elif kind == NODE_UP:
            up_since[node] = time
    for since in up_since.values():
        if not math.isnan(since):
            expected += series.mean_over(T + since, T + t1) * (t1 - since) / 3600
    assert compute_metrics(result, spot=billing)["cost_usd"] == pytest.approx(expected, rel=1e-9)
