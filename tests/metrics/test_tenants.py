"""Per-tenant metrics on one p3.8xlarge, checked by hand.

p3.8xlarge (embedded catalog): 4 x V100, 32 vCPUs, 244 GiB, 12.24 USD/h, us-east-1 (PUE 1.135,
static 367.8 gCO2e/kWh). Static draw 163.0768 W; one busy V100 adds 306.45 W, one busy vCPU
1.135 x 2.76 = 3.1326 W (tests/metrics/test_energy.py).
"""

import pytest
from helpers import job, jobs

from altostrat.budgets import TenantBudget
from altostrat.cluster.build import load_cluster
from altostrat.metrics.compute import compute_metrics
from altostrat.policy.registry import parse_policy
from altostrat.sim.simulator import simulate

HEAD = "apiVersion: altostrat/v1\nkind: Cluster\nmetadata: {name: one}\nspec:\n  pools:\n    - {name: a, nodes: 1, instanceType: p3.8xlarge}\n"


def run(tmp_path, **kw):
    path = tmp_path / "cluster.yaml"
    path.write_text(HEAD)
    state = load_cluster(str(path))[1]
    # x: one GPU for an hour, share 1/4. y: two tasks of a GPU and 8 vCPUs for half an hour,
    # each 1/4 of the node (GPU and CPU alike): 1/2 in all.
    work = jobs(job("x", 0, 3600, tenant="x"), job("y", 0, 1800, gpus=2, cpu_milli=8000, tenant="y"))
    return simulate(work, state, parse_policy("fcfs+first-fit"), **kw)


def test_cost_energy_and_carbon_per_tenant(tmp_path):
    m = compute_metrics(run(tmp_path))
    x, y = m["per_tenant"]["x"], m["per_tenant"]["y"]
    assert x["cost_usd"] == pytest.approx(12.24 * 0.25)
    assert y["cost_usd"] == pytest.approx(12.24 * 0.5 * 0.5)
    # x: 306.45 W + 1/4 of 163.0768 W for 1 h; y: 2 x 306.45 + 16 x 3.1326 + 1/2 x 163.0768 W for 1/2 h
    x_wh, y_wh = 306.45 + 40.7692, (612.9 + 50.1216 + 81.5384) / 2
    assert x["energy_kwh"] == pytest.approx(x_wh / 1000)
    assert y["energy_kwh"] == pytest.approx(y_wh / 1000)
    assert x["carbon_kgco2e"] == pytest.approx(x_wh / 1000 * 0.3678)
    assert y["carbon_kgco2e"] == pytest.approx(y_wh / 1000 * 0.3678)
    # what no tenant holds is in the totals only: 163.0768 W for 1 h less the tenants' shares
    # of it (40.7692 W for 1 h, 81.5384 W for 1/2 h); likewise 12.24 USD less 3.06 and 3.06
    assert m["energy_kwh"] - x["energy_kwh"] - y["energy_kwh"] == pytest.approx((163.0768 - 40.7692 - 40.7692) / 1000)
    assert m["cost_usd"] - x["cost_usd"] - y["cost_usd"] == pytest.approx(12.24 - 3.06 - 3.06)
    assert (x["spot_revocations"], x["egress_gb"], x["egress_usd"], x["budget_overruns"]) == (0, 0.0, 0.0, None)
    assert m["budget_overruns"] is None


def test_the_window_bounds_per_tenant_cost(tmp_path):
    m = compute_metrics(run(tmp_path, until=900.0))
    assert m["per_tenant"]["x"]["cost_usd"] == pytest.approx(12.24 * 0.25 / 4)
    assert m["per_tenant"]["y"]["cost_usd"] == pytest.approx(12.24 * 0.5 / 4)


def test_budget_overruns_count_periods_over_either_limit(tmp_path):
    # 1800 s periods. x: 0.5 GPU-hours in each, over its 0.4: 2. y: 3.06 USD in the first,
    # over its 2 (its 1 GPU-hour there is exactly its limit, not over): 1. w has no jobs.
    budgets = {"x": TenantBudget("x", gpu_hours=0.4, period_s=1800),
               "y": TenantBudget("y", usd=2.0, gpu_hours=1.0, period_s=1800),
               "w": TenantBudget("w", usd=0.0)}
    m = compute_metrics(run(tmp_path), budgets=budgets)
    assert (m["per_tenant"]["x"]["budget_overruns"], m["per_tenant"]["y"]["budget_overruns"]) == (2, 1)
    assert m["budget_overruns"] == 3
    budgets["y"] = TenantBudget("y", usd=3.06, period_s=1800)
    assert compute_metrics(run(tmp_path), budgets=budgets)["per_tenant"]["y"]["budget_overruns"] == 0


def test_spot_revocations_are_summed_per_tenant(tmp_path):
    result = run(tmp_path)
    result.revocations = {0: 2, 1: 1}  # the simulator's count per job (engine.revocations)
    m = compute_metrics(result)
    assert (m["per_tenant"]["x"]["spot_revocations"], m["per_tenant"]["y"]["spot_revocations"]) == (2, 1)
