"""`--spot-prices DIR` on simulate and compare, as a user runs them."""

import csv
import json

import pytest
from test_cli import altostrat

EXAMPLE = ("--cluster", "examples/economics/cluster.yaml", "--workload", "examples/economics/workload.yaml",
           "--policy", "edf+cheapest+backfill", "--json")


def spot_node_seconds(events) -> float:
    """Up time of the example's aws-spot nodes (indexes 6-9, after 2 reserved and 4 burst nodes; elastic,
    so down at 0) over the window [0, the last event]."""
    with open(events, newline="") as f:
        rows = list(csv.DictReader(f))
    end = max(float(r["time_s"]) for r in rows)
    since, total = {}, 0.0
    for r in rows:
        node, t = int(r["node"]), float(r["time_s"])
        if 6 <= node <= 9 and r["event"] == "node_up":
            since[node] = t
        elif 6 <= node <= 9 and r["event"] == "node_down":
            total += t - since.pop(node)
    return total + sum(end - t for t in since.values())


def test_the_shared_history_bills_the_example_spot_pool(shared_data, tmp_path):
    history = str(shared_data / "prices" / "spot-history-2020")
    flat = json.loads(altostrat("simulate", *EXAMPLE, "--events", str(tmp_path / "events.csv")).stdout)
    replayed = json.loads(altostrat("simulate", *EXAMPLE, "--spot-prices", history).stdout)
    assert "spot_prices" not in flat
    # p3.8xlarge in us-east-1: every zone priced from 2019-12-22T18:13:32Z, the last record 2020-03-23T09:20:06Z
    assert replayed["spot_prices"] == {
        "data": history, "start": "2019-12-22T18:13:32Z", "history_end": "2020-03-23T09:20:06Z",
        "series": [{"cloud": "aws", "instance_type": "p3.8xlarge", "region": "us-east-1", "nodes": 4}],
        "missing_pools": []}
    # policies decide on the catalog's prices, so the schedule is the same; only the bill differs:
    # that series is 3.672 USD/h throughout, against the catalog's 1.7535
    same = ("makespan_s", "avg_jct_s", "spot_revocations", "energy_kwh")
    assert {k: replayed["metrics"][k] for k in same} == {k: flat["metrics"][k] for k in same}
    extra = spot_node_seconds(tmp_path / "events.csv") * (3.672 - 1.7535) / 3600
    assert extra > 0 and replayed["metrics"]["cost_usd"] - flat["metrics"]["cost_usd"] == pytest.approx(extra)


@pytest.mark.parametrize("command", [("simulate",), ("compare", "--policies", "fcfs", "--out", "OUT")])
def test_a_bad_folder_is_a_one_line_error(tmp_path, command):
    command = tuple(str(tmp_path / "out") if a == "OUT" else a for a in command)
    out = altostrat(*command, "--workload", "synthetic:jobs=10", "--spot-prices", str(tmp_path / "none"), check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert " ".join(out.stderr.split()) == f"error: --spot-prices: {tmp_path / 'none'}: no such folder"
    (tmp_path / "aws" / "us-east-1").mkdir(parents=True)
    (tmp_path / "aws" / "us-east-1" / "p3.8xlarge.json").write_text("{}")
    out = altostrat(*command, "--workload", "synthetic:jobs=10", "--spot-prices", str(tmp_path), check=False)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    assert "--spot-prices:" in out.stderr and "field 'SpotPriceHistory': missing" in " ".join(out.stderr.split())
