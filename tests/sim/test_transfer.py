"""Data transfer in a run: start overhead, JCT and the egress metrics, checked by hand.

Two one-V100 nodes, n0 in us-east-1 and n1 in eu-west-1 (AWS, $0.02/GB between them in the
embedded table); transfers at the default 10 Gbit/s, 0.8 s per GB.
"""

import json
import subprocess
import sys

import pytest
from helpers import job, jobs

from altostrat.catalog.network import NetworkModel
from altostrat.cluster.state import ClusterState, Node
from altostrat.engine import PolicyContext
from altostrat.metrics.compute import compute_metrics
from altostrat.policy.registry import parse_policy
from altostrat.sim.simulator import simulate


def two_regions() -> ClusterState:
    return ClusterState([Node(i, f"n{i}", "p", "V100", 1, 8000, 61 * 1024, region=r, cloud="aws")
                         for i, r in enumerate(("us-east-1", "eu-west-1"))])


def run(work, policy="fcfs+first-fit", network=None):
    network = network or NetworkModel()
    context = PolicyContext(transfer_s=network.seconds_for, egress_usd=network.egress_usd)
    result = simulate(jobs(*work), two_regions(), parse_policy(policy), context=context)
    return result, compute_metrics(result, network=network)


def test_a_job_away_from_its_data_waits_for_it_and_pays_egress():
    # a (100 GB at home in us-east-1) takes n0; b (50 GB in us-east-1) gets n1 and waits 40 s for its data
    result, m = run([job("a", 0, 1000, dataset_gb=100, data_region="us-east-1", tenant="x"),
                     job("b", 0, 1000, dataset_gb=50, data_region="us-east-1", tenant="y")])
    finish = {result.jobs[j].id: t for t, k, j in zip(result.log.time, result.log.kind, result.log.job) if k == 2}
    assert finish == {"a": 1000.0, "b": 1040.0}
    assert m["avg_jct_s"] == 1020.0 and m["makespan_s"] == 1040.0
    assert m["egress_gb"] == 50.0 and m["egress_usd"] == pytest.approx(1.0)
    assert [(m["per_tenant"][t]["egress_gb"], m["per_tenant"][t]["egress_usd"]) for t in "xy"] == [
        (0.0, 0.0), (50.0, pytest.approx(1.0))]


def test_each_attempt_moves_the_data_again():
    # one node, in eu-west-1: every start of `low` (10 GB in us-east-1) moves its data, 8 s and $0.20
    state = ClusterState([Node(0, "n0", "p", "V100", 1, 8000, 61 * 1024, region="eu-west-1", cloud="aws")])
    network = NetworkModel()
    context = PolicyContext(transfer_s=network.seconds_for, egress_usd=network.egress_usd)
    work = jobs(job("low", 0, 1000, dataset_gb=10, data_region="us-east-1"), job("high", 100, 200, priority=10))
    result = simulate(work, state, parse_policy("priority+preempt[restart_s=5]"), context=context)
    m = compute_metrics(result, network=network)
    # low: data until 8, work 8..100 (92 s done); high 100..300; low again: 5 s restart + 8 s data + 908 s work
    finish = {result.jobs[j].id: t for t, k, j in zip(result.log.time, result.log.kind, result.log.job) if k == 2}
    assert finish == {"high": 300.0, "low": pytest.approx(300 + 5 + 8 + 908)}
    assert m["preemptions"] == 1
    assert m["egress_gb"] == 20.0 and m["egress_usd"] == pytest.approx(0.4)


def test_compressed_and_without_datasets():
    # b compressed 4x at 2 CPU s/GB: 12.5 GB over the wire ($0.25), 10 s + 100 s before its work
    result, m = run([job("a", 0, 1000), job("b", 0, 1000, dataset_gb=50, data_region="us-east-1")],
                    network=NetworkModel(ratio=4, cpu_s_per_gb=2))
    assert m["makespan_s"] == pytest.approx(1110.0)
    assert m["egress_gb"] == 12.5 and m["egress_usd"] == pytest.approx(0.25)
    _, none = run([job("a", 0, 1000), job("b", 0, 1000)])
    assert none["egress_gb"] == 0.0 and none["egress_usd"] == 0.0 and none["makespan_s"] == 1000.0


CLUSTER = """apiVersion: altostrat/v1
kind: Cluster
metadata: {name: two-regions}
spec:
  pools:
    - {name: east, nodes: 1, gpu: {model: V100, count: 1}, cpu: 8, memoryGib: 61, region: us-east-1}
    - {name: gcp, nodes: 1, gpu: {model: V100, count: 1}, cpu: 8, memoryGib: 61, region: us-central1}
"""
WORKLOAD = """apiVersion: altostrat/v1
kind: Workload
metadata: {name: data}
spec:
  jobs:
    - {name: a, durationS: 1000, dataset: {sizeGb: 100, region: us-east-1}}
    - {name: b, durationS: 1000, dataset: {sizeGb: 100, region: us-east-1}}
"""


def cli(tmp_path, *args, workload=WORKLOAD):
    (tmp_path / "c.yaml").write_text(CLUSTER)
    (tmp_path / "w.yaml").write_text(workload)
    return subprocess.run([sys.executable, "-m", "altostrat.cli", "simulate", "--workload", str(tmp_path / "w.yaml"),
                           "--cluster", str(tmp_path / "c.yaml"), "--policy", "fcfs+first-fit", "--json", *args],
                          capture_output=True, text=True, timeout=120)


def test_cli_reports_egress_and_echoes_the_network(tmp_path, shared_data):
    # b runs on the GCP node: AWS internet egress $0.09/GB; at 5 Gbit/s 100 GB take 160 s
    out = cli(tmp_path, "--network-data", str(shared_data / "network"), "--bandwidth-gbps", "5")
    result = json.loads(out.stdout)
    m = result["metrics"]
    assert m["egress_gb"] == 100.0 and m["egress_usd"] == pytest.approx(9.0) and m["makespan_s"] == 1160.0
    assert result["network"] == {"data": str(shared_data / "network"), "bandwidth_gbps": 5.0, "compression": None,
                                 "time_value_usd_per_h": 0.0}
    packed = json.loads(cli(tmp_path, "--compression", "4:1").stdout)["metrics"]  # 25 GB, 20 s + 100 s
    assert packed["egress_gb"] == 25.0 and packed["egress_usd"] == pytest.approx(2.25)
    assert packed["makespan_s"] == pytest.approx(1120.0)


@pytest.mark.parametrize("args, message", [
    (("--compression", "3"), "--compression '3': give RATIO:CPU_S_PER_GB"),
    (("--compression", "0.5:1"), "--compression ratio 0.5"),
    (("--network-data", "/nonexistent/net"), "--network-data /nonexistent/net: no such directory"),
    (("--bandwidth-gbps", "-2"), "--bandwidth-gbps -2.0"),
])
def test_cli_refuses_bad_network_options(tmp_path, args, message):
    out = cli(tmp_path, *args)
    assert out.returncode == 2 and out.stdout == "" and message in " ".join(out.stderr.split())


def test_cli_refuses_an_unknown_data_region(tmp_path):
    out = cli(tmp_path, workload=WORKLOAD.replace("region: us-east-1}}\n    - {name: b", "region: atlantis}}\n    - {name: b"))
    assert out.returncode == 2 and "job 'a': dataset region 'atlantis'" in " ".join(out.stderr.split())


def test_compare_refuses_a_bad_compression_before_running(tmp_path):
    out = subprocess.run([sys.executable, "-m", "altostrat.cli", "compare", "--policies", "fcfs", "--out",
                          str(tmp_path / "o"), "--workload", "synthetic:jobs=5", "--compression", "fast"],
                         capture_output=True, text=True, timeout=120)
    assert out.returncode == 2 and "--compression 'fast'" in out.stderr and not (tmp_path / "o").exists()
