"""The CLI as a user runs it: real subprocesses, real files."""

import json
import subprocess
import sys

import pytest

from altostrat.metrics.compute import METRIC_KEYS

ALTOSTRAT = [sys.executable, "-m", "altostrat.cli"]


def altostrat(*args, check=True):
    return subprocess.run([*ALTOSTRAT, *args], capture_output=True, text=True, check=check, timeout=300)


def test_simulate_json_prints_one_object_with_every_key():
    out = altostrat("simulate", "--workload", "synthetic:jobs=300,load=0.9,tenants=3,deadlines=0.5", "--seed", "3", "--json")
    result = json.loads(out.stdout)
    assert set(result) >= {"workload", "cluster", "policy", "seed", "version", "inputs_sha256", "metrics", "run"}
    assert tuple(result["metrics"]) == METRIC_KEYS
    assert set(result["run"]) == {"events", "wall_s", "jobs_per_s"}
    m = result["metrics"]
    assert m["jobs_submitted"] == 300 and m["jobs_completed"] == 300
    assert 0 < m["gpu_utilization"] <= 1 and m["jain_fairness"] is not None
    assert m["deadline_violation_rate"] is not None and result["seed"] == 3
    assert m["spot_revocations"] == 0  # philly-like has no spot pool
    assert m["egress_gb"] == 0.0 and m["egress_usd"] == 0.0  # synthetic jobs read no dataset
    assert m["budget_overruns"] is None and set(m["per_tenant"]) == {"tenant-0", "tenant-1", "tenant-2"}
    # philly-like: 64 nodes of n1-highmem-64+8xP100 at 15.46568 USD/h, up from the first submit to the last event
    assert m["cost_usd"] == pytest.approx(64 * 15.46568 / 3600 * m["makespan_s"], rel=1e-9)
    # each node in us-central1 (PUE 1.11) draws 1.11 x (8 x 25 + 64 x 0.74) W idle, 1.11 x (8 x 250 + 64 x 3.5) W full;
    # GPUs are allocated gpu_utilization of the time
    hours = m["makespan_s"] / 3600
    idle_kwh, gpu_kwh = 64 * 1.11 * (200 + 47.36) / 1000 * hours, 64 * 1.11 * 8 * 225 / 1000 * hours
    assert (idle_kwh + gpu_kwh * m["gpu_utilization"]) * (1 - 1e-9) <= m["energy_kwh"] <= 64 * 1.11 * (2000 + 224) / 1000 * hours
    # no --carbon-data: us-central1's static 394 gCO2e/kWh
    assert m["carbon_kgco2e"] == pytest.approx(m["energy_kwh"] * 0.394, rel=1e-9)


def test_simulate_refuses_a_bad_start_and_a_missing_carbon_folder(tmp_path):
    bad = altostrat("simulate", "--workload", "synthetic:jobs=5", "--start", "yesterday", "--json", check=False)
    assert bad.returncode == 2 and "--start 'yesterday'" in bad.stderr and "ISO 8601" in bad.stderr
    gone = altostrat("simulate", "--workload", "synthetic:jobs=5", "--carbon-data", str(tmp_path / "nope"), check=False)
    assert gone.returncode == 2 and "no such directory" in " ".join(gone.stderr.split())


def test_simulate_is_deterministic_for_a_seed(tmp_path):
    a = json.loads(altostrat("simulate", "--workload", "synthetic:jobs=200", "--seed", "7", "--json").stdout)
    b = json.loads(altostrat("simulate", "--workload", "synthetic:jobs=200", "--seed", "7", "--json").stdout)
    c = json.loads(altostrat("simulate", "--workload", "synthetic:jobs=200", "--seed", "8", "--json").stdout)
    assert a["inputs_sha256"] == b["inputs_sha256"] != c["inputs_sha256"]
    timing = ("decision_p50_us", "decision_p99_us")
    strip = lambda r: {k: v for k, v in r["metrics"].items() if k not in timing}  # noqa: E731
    assert strip(a) == strip(b)


def test_simulate_writes_the_event_log(tmp_path):
    path = tmp_path / "events.csv"
    altostrat("simulate", "--workload", "synthetic:jobs=50", "--events", str(path), "--json")
    lines = path.read_text().splitlines()
    assert lines[0].replace('"', "") == "time_s,event,job,gpu_milli,cpu_milli,node"
    assert sum(1 for line in lines if '"submit"' in line or ",submit," in line) == 50


def test_unknown_policy_is_a_clear_error():
    out = altostrat("simulate", "--policy", "fifo", "--json", check=False)
    assert out.returncode == 2
    assert "unknown order policy 'fifo'" in out.stderr and "fcfs" in out.stderr
    assert out.stdout == ""


def test_compare_writes_results_and_a_self_contained_report(tmp_path):
    out = altostrat(
        "compare", "--workload", "synthetic:jobs=200,tenants=2", "--policies", "fcfs+best-fit,sjf+first-fit",
        "--out", str(tmp_path),
    )
    results = json.loads((tmp_path / "results.json").read_text())
    assert [r["policy"] for r in results] == ["fcfs+best-fit", "sjf+first-fit"]
    assert results[0]["inputs_sha256"] == results[1]["inputs_sha256"]
    html = (tmp_path / "report.html").read_text()
    assert "JCT CDF" in html and "Queue length" in html and "<script src=\"http" not in html
    assert "sjf+first-fit" in out.stdout


def test_compare_with_seeds_reports_mean_and_spread(tmp_path):
    altostrat("compare", "--workload", "synthetic:jobs=100", "--policies", "fcfs", "--seeds", "3", "--out", str(tmp_path))
    [result] = json.loads((tmp_path / "results.json").read_text())
    assert result["seeds"] == [1, 2, 3] and len(result["runs"]) == 3
    jcts = [r["metrics"]["avg_jct_s"] for r in result["runs"]]
    assert abs(result["metrics"]["avg_jct_s"] - sum(jcts) / 3) < 1e-6
    assert result["metrics_std"]["avg_jct_s"] > 0


def test_catalog_list_prints_the_embedded_catalog_and_filters_it():
    table = altostrat("catalog", "list", "--gpu", "v100").stdout
    assert "p3.8xlarge" in table and "12.2400" in table and "1.7535" in table and "a2-highgpu-1g" not in table
    data = json.loads(altostrat("catalog", "list", "--cloud", "azure", "--gpu", "K80", "--json").stdout)
    [k80] = data["instance_types"]
    assert (k80["name"], k80["region"], k80["gpu_count"], k80["price_hr"], k80["spot_price_hr"]) == (
        "Standard_NC24", "westus2", 4, 3.6, 0.396)


def test_catalog_list_reads_a_vms_csv_and_reports_its_corrections(shared_data):
    out = altostrat("catalog", "list", "--catalog", str(shared_data / "catalog" / "vms.csv"), "--gpu", "P100",
                    "--region", "us-central1").stdout
    assert "n1-highmem-32+4xP100" in out and "7.7328" in out and "3 of 3,049 types" in out
    assert "left out: TPU slices" in out and "812 rows" in out


def test_catalog_list_names_the_fix_for_an_unknown_model():
    out = altostrat("catalog", "list", "--gpu", "V10", check=False)
    assert out.returncode == 2 and "did you mean V100" in out.stderr


def test_hourly_carbon_data_is_echoed_and_changes_the_carbon_figure(shared_data):
    hourly = str(shared_data / "carbon" / "hourly")
    args = ("simulate", "--workload", "synthetic:jobs=100", "--cluster", "gavel-108", "--json")
    static = json.loads(altostrat(*args).stdout)
    hourly_run = json.loads(altostrat(*args, "--carbon-data", hourly, "--start", "2023-06-01T00:00Z").stdout)
    assert "carbon" not in static
    assert hourly_run["carbon"] == {"data": hourly, "start": "2023-06-01T00:00Z"}
    # same schedule and energy; only the grid intensity behind the V100 pool (us-east-1 -> PJM) differs
    assert hourly_run["metrics"]["energy_kwh"] == static["metrics"]["energy_kwh"]
    assert hourly_run["metrics"]["carbon_kgco2e"] != static["metrics"]["carbon_kgco2e"]


def test_the_table_names_policies_with_their_parameters():
    out = altostrat("simulate", "--workload", "synthetic:jobs=20", "--policy", "las[queues=3]+best-fit")
    assert "las[queues=3]+best-fit" in out.stdout  # brackets are text, not console markup
