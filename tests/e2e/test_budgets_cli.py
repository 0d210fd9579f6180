"""--budgets on the command line: simulate, compare over seeds, and a bad file."""

import json
import subprocess
import sys

import pytest

ALTOSTRAT = [sys.executable, "-m", "altostrat.cli"]
WORKLOAD = "synthetic:jobs=120,load=0.9,tenants=2"
KEYS = {"cost_usd", "energy_kwh", "carbon_kgco2e", "spot_revocations", "egress_gb", "egress_usd", "budget_overruns"}


def altostrat(*args, check=True):
    return subprocess.run([*ALTOSTRAT, *args], capture_output=True, text=True, check=check, timeout=300)


def budgets_file(tmp_path, usd):
    path = tmp_path / "budgets.yaml"
    path.write_text("apiVersion: altostrat/v1\nkind: Tenants\nmetadata: {name: b}\nspec:\n  tenants:\n"
                    f"    - {{name: tenant-0, budgetUsd: {usd}, periodS: 86400}}\n")
    return str(path)


def test_simulate_enforces_budgets_and_reports_per_tenant(tmp_path):
    path = budgets_file(tmp_path, 300)
    free = json.loads(altostrat("simulate", "-w", WORKLOAD, "--seed", "1", "--budgets", path, "--json").stdout)
    gated = json.loads(altostrat("simulate", "-w", WORKLOAD, "--seed", "1", "--budgets", path, "--json",
                                 "--policy", "cost-fair+budget").stdout)
    assert free["metrics"]["budget_overruns"] > 0, "the budget must bind for this test to mean anything"
    assert gated["metrics"]["budget_overruns"] == 0 and gated["budgets"] == path
    per = gated["metrics"]["per_tenant"]
    assert set(per) == {"tenant-0", "tenant-1"} and all(set(v) == KEYS for v in per.values())
    assert per["tenant-1"]["budget_overruns"] is None


def test_compare_over_seeds_averages_per_tenant(tmp_path):
    altostrat("compare", "-w", WORKLOAD, "--policies", "fcfs,fcfs+budget", "--seeds", "2", "--budgets",
              budgets_file(tmp_path, 300), "--out", str(tmp_path / "out"))
    results = json.loads((tmp_path / "out" / "results.json").read_text())
    gated = results[1]
    assert gated["metrics"]["budget_overruns"] == 0
    runs = [r["metrics"]["per_tenant"]["tenant-1"]["cost_usd"] for r in gated["runs"]]
    assert gated["metrics"]["per_tenant"]["tenant-1"]["cost_usd"] == pytest.approx(sum(runs) / 2)
    assert gated["metrics_std"]["per_tenant"]["tenant-1"]["cost_usd"] == pytest.approx(abs(runs[0] - runs[1]) / 2)


def test_a_bad_budgets_file_is_one_line(tmp_path):
    path = budgets_file(tmp_path, -5)
    out = altostrat("simulate", "--budgets", path, "--policy", "fcfs+budget", check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "spec.tenants[0].budgetUsd: Input should be greater than or equal to 0" in out.stderr
