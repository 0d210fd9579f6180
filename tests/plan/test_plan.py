"""`altostrat plan` on a tiny catalog: exact figures, the choice under each objective, budgets,
residency, deadlines, start windows and the explanations of infeasible input."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.catalog import CatalogError, default_catalog
from altostrat.catalog.carbon import CarbonModel
from altostrat.catalog.load import parse_yaml_catalog
from altostrat.catalog.network import NetworkModel
from altostrat.catalog.spot import REVOCATIONS_PER_HOUR
from altostrat.plan import PlanError, make_plan
from altostrat.plan.options import RESTART_S, CatalogTable, expected_run_s, job_options
from altostrat.plan.prune import pareto, prune
from altostrat.spec.schema import JobSpec

CATALOG = """
sources: {test: hand-made for the tests}
instanceTypes:
  - {cloud: aws, name: v1, region: us-east-1, vcpus: 8, memoryGib: 64, gpu: V100, gpuCount: 1, priceHr: 2.0, spotPriceHr: 0.5, source: test}
  - {cloud: gcp, name: v1g, region: us-west2, vcpus: 8, memoryGib: 64, gpu: V100, gpuCount: 1, priceHr: 3.0, source: test}
  - {cloud: aws, name: a1, region: us-east-1, vcpus: 8, memoryGib: 64, gpu: A100, gpuCount: 1, priceHr: 5.0, source: test}
"""
# Facility watts of a full node: PUE x (GPU TDP + 8 vCPUs x 3.5 W) (catalog/power.py); us-east-1 PUE 1.135,
# us-west2 the default 1.185. Static intensity gCO2e/kWh: us-east-1 367.8, us-west2 190 (catalog/carbon.py).
W_V1, W_V1G, W_A1 = 1.135 * (300 + 28), 1.185 * (300 + 28), 1.135 * (400 + 28)
I_EAST, I_WEST2 = 367.8, 190.0


@pytest.fixture(scope="module")
def table():
    return CatalogTable(parse_yaml_catalog(CATALOG, "test"), CarbonModel(), bandwidth_gbps=1.0)


@pytest.fixture(scope="module")
def embedded():
    return CatalogTable(default_catalog(), CarbonModel())


def spec(name="j", **kw) -> JobSpec:
    kw.setdefault("duration_s", 3600)
    kw.setdefault("gpu_models", ["V100", "A100"])
    kw.setdefault("speeds", {"V100": 1.0, "A100": 2.0})
    return JobSpec(name=name, **kw)


def chosen(plan) -> list[tuple[str, str]]:
    return [(a["instance_type"], a["lifecycle"]) for a in plan.assignments()]


def test_each_option_has_the_hand_computed_cost_time_and_carbon(table):
    opts = job_options(spec(tasks=2), table).all()
    got = {table.types[i].name: (n, c, t, g) for i, n, c, t, g in
           zip(opts.type_idx, opts.nodes, opts.cost_usd, opts.time_s, opts.carbon_kg)}
    assert got["v1"] == pytest.approx((2, 2 * 2.0, 3600, 2 * W_V1 / 1000 * I_EAST / 1000))
    assert got["v1g"] == pytest.approx((2, 2 * 3.0, 3600, 2 * W_V1G / 1000 * I_WEST2 / 1000))
    assert got["a1"] == pytest.approx((2, 2 * 5.0 / 2, 1800, 2 * W_A1 / 1000 / 2 * I_EAST / 1000))
    assert list(opts.risk) == [0, 0, 0]


@pytest.mark.parametrize("objective, want", [("cost", "v1"), ("time", "a1"), ("carbon", "v1g")])
def test_the_objective_picks_the_option(table, objective, want):
    plan = make_plan([spec()], objective, table=table)
    assert chosen(plan) == [(want, "on-demand")]
    t = plan.totals()
    a = plan.assignments()[0]
    assert t["cost_usd"] == a["cost_usd"] and t["carbon_kgco2e"] == a["carbon_kgco2e"]


def test_a_budget_forces_the_slower_cheaper_choice_where_it_saves_least(table):
    # a1 costs 2.5 / 5.0 and saves 1800 / 3600 s on the short / long job; v1 costs 2.0 / 4.0.
    jobs = [spec("short"), spec("long", duration_s=7200)]
    assert chosen(make_plan(jobs, "time", table=table)) == [("a1", "on-demand")] * 2
    plan = make_plan(jobs, "time", budget=7.0, table=table)
    assert chosen(plan) == [("v1", "on-demand"), ("a1", "on-demand")]
    assert plan.totals() == pytest.approx({"cost_usd": 7.0, "time_s": 3600 + 3600, "carbon_kgco2e":
                                           (W_V1 * 1 + W_A1 * 1) / 1e6 * I_EAST})
    assert chosen(make_plan(jobs, "time", budget=6.5, table=table)) == [("a1", "on-demand"), ("v1", "on-demand")]


def test_residency_and_deadline_prune_options(table):
    west = spec(allowed_regions=["us-west2"])
    assert chosen(make_plan([west], "cost", table=table)) == [("v1g", "on-demand")]
    us = spec(jurisdictions=["US"])
    assert len(prune(us, job_options(us, table), None)) == 3  # v1, v1g, a1: none dominates another
    rushed = spec(submit_s=100, deadline_s=100 + 1800)
    assert chosen(make_plan([rushed], "cost", table=table)) == [("a1", "on-demand")]


def test_spot_is_offered_only_to_jobs_that_allow_it_with_its_expected_rework(table):
    job = spec(gpu_models=["V100"], spot=True, checkpoint_s=600)
    plan = make_plan([job], "cost", table=table)
    assert chosen(plan) == [("v1", "spot")]
    lam = REVOCATIONS_PER_HOUR["aws"] / 3600  # the table's types are on aws: its calibrated rate
    wall = 3600 / 600 * (1 / lam + RESTART_S) * math.expm1(lam * 600)
    assert plan.assignments()[0]["cost_usd"] == pytest.approx(0.5 * wall / 3600)
    assert plan.options[0].risk.max() == 0.2  # spot's weight in compliance.RISK_WEIGHTS
    assert chosen(make_plan([job], "cost", max_risk=0.1, table=table)) == [("v1", "on-demand")]
    assert "spot" not in {a["lifecycle"] for a in make_plan([spec()], "cost", table=table).assignments()}


def test_expected_run_time_under_revocations():
    run = np.array([3600.0, 3600.0, 7200.0])
    rate = np.array([0.0, 1 / 3600, 1 / 3600])
    got = expected_run_s(run, rate, 600.0)
    assert got[0] == 3600.0
    assert got[1] == pytest.approx(6 * (3600 + RESTART_S) * math.expm1(600 / 3600))
    assert got[2] == pytest.approx(2 * got[1])
    # no checkpoints: the whole run is one segment
    assert expected_run_s(run[1:2], rate[1:2], None)[0] == pytest.approx((3600 + RESTART_S) * math.expm1(1.0))


def cost_and_time(table, data_region):
    opts = job_options(spec(gpu_models=["V100"], dataset={"sizeGb": 100, "region": data_region}), table).all()
    return {table.types[i].name: (c, t) for i, c, t in zip(opts.type_idx, opts.cost_usd, opts.time_s)}


def test_data_transfer_adds_egress_and_time(table):
    # the network model's embedded prices (docs/economics.md, "Data transfer"); 100 GB = 800 Gbit at 1 Gbit/s
    by = cost_and_time(table, "us-east-1")
    assert by["v1"] == pytest.approx((2.0, 3600))
    # us-east-1 (AWS) to us-west2 (GCP): AWS's internet egress, 0.09 USD/GB
    assert by["v1g"] == pytest.approx((3.0 + 100 * 0.09, 800 + 3600))
    # us-west2 (GCP) to us-east-1 (AWS): GCP's, 0.12 USD per GiB = 0.12 / 1.073741824 per GB
    assert cost_and_time(table, "us-west2")["v1"] == pytest.approx((2.0 + 100 * 0.12 / 1.073741824, 800 + 3600))
    # europe-west4 to us-west2, both GCP: from Europe to another continent, 0.05
    assert cost_and_time(table, "europe-west4")["v1g"] == pytest.approx((3.0 + 100 * 0.05, 800 + 3600))


def test_data_moves_at_the_simulators_default_bandwidth():
    # 100 GB = 800 Gbit: 80 s at simulate's default 10 Gbit/s
    t = CatalogTable(parse_yaml_catalog(CATALOG, "test"), CarbonModel())
    assert cost_and_time(t, "us-east-1")["v1g"][1] == pytest.approx(80 + 3600)


def test_network_data_prices_moves_and_routes_through_a_cheaper_region(tmp_path):
    (tmp_path / "gcp_transmission_cost_matrix.csv").write_text(",europe-west4,us-west2\neurope-west4,0,0.08\n"
                                                               "us-west2,0.08,0\n")
    # us-east-2 to us-east-1 costs 0.05 direct, 0.01 + 0.01 through us-west-1: a relay, moving the data twice
    (tmp_path / "aws_transmission_cost_matrix.csv").write_text(
        ",us-east-1,us-east-2,us-west-1\nus-east-1,0,0.05,0.05\nus-east-2,0.05,0,0.01\nus-west-1,0.01,0.05,0\n")
    t = CatalogTable(parse_yaml_catalog(CATALOG, "test"), CarbonModel(), str(tmp_path), bandwidth_gbps=1.0)
    assert cost_and_time(t, "europe-west4")["v1g"] == pytest.approx((3.0 + 100 * 0.08, 800 + 3600))
    assert cost_and_time(t, "us-east-2")["v1"] == pytest.approx((2.0 + 100 * 0.02, 2 * 800 + 3600))
    with pytest.raises(CatalogError, match=r"job 'j': dataset region 'nowhere' is not a region of aws, gcp, azure"):
        cost_and_time(t, "nowhere")


@settings(max_examples=25, deadline=None)
@given(src=st.sampled_from(["us-east-1", "us-west-2", "us-central1", "europe-west4", "eastus", "westeurope",
                            "asia-east1", "sa-east-1"]), gb=st.floats(1, 5000))
def test_every_option_pays_the_network_models_price_for_its_place(embedded, src, gb):
    """Over the embedded catalog: the per-place table gives each option gb x the model's price
    from the data's region to the option's cloud and region (direct: no relay undercuts it)."""
    t = embedded
    job = dict(gpu_models=None, speeds=None, tasks=2)
    bare, moved = (job_options(spec(**job, **extra), t).all() for extra in ({}, {"dataset": {"sizeGb": gb, "region": src}}))
    network = NetworkModel()
    want = [gb * network.egress_usd_per_gb(None, src, t.types[i].cloud, t.types[i].region) for i in moved.type_idx]
    assert np.array_equal(bare.type_idx, moved.type_idx)
    assert moved.cost_usd - bare.cost_usd == pytest.approx(np.array(want), rel=1e-9, abs=1e-9)


def test_start_windows_follow_hourly_carbon(tmp_path):
    rows = ["Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (direct)"]
    values = [300, 200, 100, 400] + [500] * 44
    rows += [f"2023-01-01 {h:02d}:00:00,US-CAL-CISO,{v}" if h < 24 else
             f"2023-01-02 {h - 24:02d}:00:00,US-CAL-CISO,{v}" for h, v in enumerate(values)]
    (tmp_path / "US-CAL-CISO_2023_hourly.csv").write_text("\n".join(rows) + "\n")
    t = CatalogTable(parse_yaml_catalog(CATALOG, "test"), CarbonModel(hourly_dir=str(tmp_path)))
    job = spec(gpu_models=["V100"], allowed_regions=["us-west2"], deadline_s=5 * 3600)
    green = make_plan([job], "carbon", table=t).assignments()[0]
    assert green["start_s"] == 7200 and green["carbon_kgco2e"] == pytest.approx(W_V1G / 1000 * 100 / 1000)
    assert make_plan([job], "cost", table=t).assignments()[0]["start_s"] == 0
    # a window of half an hour in each of two hours averages them
    half = spec(gpu_models=["V100"], allowed_regions=["us-west2"], submit_s=1800, deadline_s=1800 + 3600)
    assert make_plan([half], "carbon", table=t).assignments()[0]["carbon_kgco2e"] == pytest.approx(
        W_V1G / 1000 * 250 / 1000)


def test_infeasible_input_names_the_binding_constraint(table):
    with pytest.raises(PlanError, match=r"job late: no option meets its deadline \(1000 s\) — the fastest, 1 x a1 "
                                        r"in us-east-1 started at once, takes 1,800 s"):
        make_plan([spec("late", deadline_s=1000)], "cost", table=table)
    with pytest.raises(PlanError, match=r"--budget 1: the cheapest plan costs 4.00 USD > 1.00 USD"):
        make_plan([spec("a"), spec("b")], "cost", budget=1.0, table=table)
    with pytest.raises(PlanError, match=r"job x: residency: .* us-central1; they are us-east-1, us-west2"):
        make_plan([spec("x", allowed_regions=["us-central1"])], "cost", table=table)
    with pytest.raises(PlanError, match=r"job h: no instance type in test carries GPU model H100"):
        make_plan([spec("h", gpu_models=["H100"])], "cost", table=table)
    away = spec("eu", dataset={"sizeGb": 1, "region": "europe-west4"})
    with pytest.raises(PlanError, match=r"job eu: no option's risk is within --max-risk 0.4 — .* scores 0.5 "
                                        r"\(data_leaves_jurisdiction\)"):
        make_plan([away], "cost", max_risk=0.4, table=table)
    with pytest.raises(PlanError, match="tenant research's budget 1: the cheapest plan costs 2.00 USD"):
        make_plan([spec("r", tenant="research"), spec("o")], "cost", tenant_budgets={"research": 1.0}, table=table)


def test_pareto_keeps_exactly_the_undominated_rows():
    pts = np.array([[1, 5, 1, 0], [2, 4, 1, 0], [2, 5, 1, 0], [1, 5, 1, 0], [3, 3, 3, 0.2], [0.5, 9, 9, 0.5]])
    assert sorted(pareto(pts)) == [0, 1, 4, 5]  # row 2 dominated by 1; row 3 equals row 0


jobs_st = st.lists(st.builds(
    dict,
    duration_s=st.sampled_from([600, 3600, 7200]),
    tasks=st.integers(1, 3),
    deadline=st.sampled_from([None, 1800, 3600, 10_000]),
    place=st.sampled_from([None, ["us-east-1"], ["us-west2"]]),
    spot=st.booleans(),
    tenant=st.sampled_from(["a", "b"]),
), min_size=1, max_size=5)


@settings(max_examples=40, deadline=None)
@given(jobs=jobs_st, objective=st.sampled_from(["cost", "time", "carbon"]), slack=st.floats(0, 1.5))
def test_plans_keep_every_limit_and_beat_simple_alternatives(table, jobs, objective, slack):
    specs = [spec(f"j{i}", duration_s=j["duration_s"], tasks=j["tasks"], allowed_regions=j["place"], spot=j["spot"],
                  checkpoint_s=600, tenant=j["tenant"], deadline_s=j["deadline"]) for i, j in enumerate(jobs)]
    try:
        free = make_plan(specs, objective, table=table)
    except PlanError as exc:  # only a deadline nothing meets, or residency plus deadline
        assert "deadline" in str(exc)
        return
    cheapest = sum(o.cost_usd.min() for o in free.options)
    budget = cheapest + slack * (free.totals()["cost_usd"] - cheapest)
    plan = make_plan(specs, objective, budget=budget, table=table)
    key = {"cost": "cost_usd", "time": "time_s", "carbon": "carbon_kgco2e"}[objective]
    assert plan.totals()["cost_usd"] <= budget * (1 + 1e-9)
    for job, a, opts, k in zip(specs, plan.assignments(), plan.options, plan.chosen):
        assert job.allowed_regions is None or a["region"] in job.allowed_regions
        assert job.deadline_s is None or job.submit_s + opts.time_s[k] <= job.deadline_s
        assert job.spot or a["lifecycle"] == "on-demand"
    # never worse than the all-cheapest plan (feasible under any budget here), nor than the unbudgeted one
    all_cheapest = sum(getattr(o, {"cost_usd": "cost_usd", "time_s": "time_s", "carbon_kgco2e": "carbon_kg"}[key])
                       [np.argmin(o.cost_usd)] for o in plan.options)
    assert plan.totals()[key] <= all_cheapest * (1 + 1e-6) + 1e-9
    assert plan.totals()[key] >= free.totals()[key] * (1 - 1e-6) - 1e-9


def test_cli_json_has_exactly_the_documented_keys(tmp_path):
    (tmp_path / "cat.yaml").write_text(CATALOG)
    (tmp_path / "w.yaml").write_text(
        "apiVersion: altostrat/v1\nkind: Workload\nmetadata: {name: w}\nspec:\n  jobs:\n"
        "    - {name: a, durationS: 3600, gpuModels: [V100]}\n    - {name: b, durationS: 600, tasks: 2}\n")
    out = subprocess.run([sys.executable, "-m", "altostrat.cli", "plan", str(tmp_path / "w.yaml"), "--catalog",
                          str(tmp_path / "cat.yaml"), "--json", "--objective", "time"],
                         capture_output=True, text=True, check=True, timeout=120)
    result = json.loads(out.stdout)
    assert set(result) == {"objective", "totals", "assignments", "solve_s"}
    assert set(result["totals"]) == {"cost_usd", "time_s", "carbon_kgco2e"}
    assert [set(a) for a in result["assignments"]] == [{"job", "cloud", "region", "instance_type", "nodes", "lifecycle",
                                                        "start_s", "cost_usd", "carbon_kgco2e"}] * 2
    # b names no speeds, so every GPU runs it at 1.0: a tie on time that cost breaks for v1
    assert result["objective"] == "time" and result["assignments"][1]["instance_type"] == "v1"
    bad = subprocess.run([sys.executable, "-m", "altostrat.cli", "plan", str(tmp_path / "w.yaml"), "--catalog",
                          str(tmp_path / "cat.yaml"), "--budget", "0.5"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "cheapest plan costs" in bad.stderr and "Traceback" not in bad.stderr


def test_cli_network_data_prices_the_moves(tmp_path):
    (tmp_path / "cat.yaml").write_text(CATALOG)
    (tmp_path / "w.yaml").write_text(
        "apiVersion: altostrat/v1\nkind: Workload\nmetadata: {name: w}\nspec:\n  jobs:\n"
        "    - {name: a, durationS: 3600, gpuModels: [V100], allowedRegions: [us-west2],"
        " dataset: {sizeGb: 100, region: europe-west4}}\n")
    (tmp_path / "net").mkdir()
    (tmp_path / "net" / "gcp_transmission_cost_matrix.csv").write_text(",us-west2\neurope-west4,0.08\n")

    def plan(*extra):
        return subprocess.run([sys.executable, "-m", "altostrat.cli", "plan", str(tmp_path / "w.yaml"), "--catalog",
                               str(tmp_path / "cat.yaml"), "--json", *extra], capture_output=True, text=True, timeout=120)

    # v1g: 3.0 USD for the hour, plus 100 GB at the embedded 0.05 (GCP, Europe to another continent) or the matrix's 0.08
    assert json.loads(plan().stdout)["totals"]["cost_usd"] == pytest.approx(3.0 + 5.0)
    assert json.loads(plan("--network-data", str(tmp_path / "net")).stdout)["totals"]["cost_usd"] == pytest.approx(11.0)
    bad = plan("--network-data", str(tmp_path / "none"))
    assert bad.returncode == 2 and "Traceback" not in bad.stderr
    assert f"--network-data {tmp_path / 'none'}: no such directory" in " ".join(bad.stderr.split())
