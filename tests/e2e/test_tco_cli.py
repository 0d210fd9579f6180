"""`altostrat tco` as a user runs it."""

import json
import subprocess
import sys

import pytest

ALTOSTRAT = [sys.executable, "-m", "altostrat.cli", "tco"]
KEYS = {"name", "tco_usd", "monthly_usd", "energy_mwh", "carbon_tco2e", "perf_per_watt"}


def tco(*args):
    return subprocess.run([*ALTOSTRAT, *args], capture_output=True, text=True, timeout=300)


def test_json_has_the_issue_keys_for_every_scenario():
    out = tco("--workload", "synthetic:jobs=200,load=0.7", "--seed", "2", "--years", "3", "--json")
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert set(result) == {"years", "scenarios"} and result["years"] == 3
    names = [s["name"] for s in result["scenarios"]]
    assert names == ["static-on-demand", "reserved-mix", "dynamic-on-demand", "dynamic-spot"]
    for s in result["scenarios"]:
        assert set(s) >= KEYS
        assert s["tco_usd"] > 0 and s["energy_mwh"] > 0 and s["carbon_tco2e"] > 0 and s["perf_per_watt"] > 0
        assert s["monthly_usd"] == pytest.approx(s["tco_usd"] / 36)


def test_table_output():
    out = tco("--workload", "synthetic:jobs=100", "--cluster", "gavel-108")
    assert out.returncode == 0, out.stderr
    assert "dynamic-spot" in out.stdout and "TCO vs static" in out.stdout


@pytest.mark.parametrize(("args", "message"), [
    (["--years", "-1"], "--years -1.0: give a number of years > 0"),
    (["--policy", "fifo"], "unknown order policy 'fifo'"),
    (["--cluster", "examples/cluster.yaml"], "pool 'a100' names no instance type"),
])
def test_bad_options_are_one_line_errors(args, message):
    out = tco("--workload", "synthetic:jobs=20", *args, "--json")
    assert out.returncode == 2 and out.stdout == ""
    assert message in " ".join(out.stderr.split()) and "Traceback" not in out.stderr
