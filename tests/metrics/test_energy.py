"""Energy accounting on tiny clusters, checked by hand.

p3.8xlarge: 4 x V100 (idle 30 W, max 300 W), 32 vCPUs (0.74 / 3.5 W), us-east-1 (PUE 1.135):
static 1.135 x (4 x 30 + 32 x 0.74) = 163.0768 W; one busy V100 adds 1.135 x 270 = 306.45 W.
Standard_NC24s_v3: 4 x V100, 24 vCPUs, eastus (PUE 1.185): static 1.185 x 137.76 = 163.2456 W.
"""

import json

import pytest
from helpers import cluster, job, jobs

from altostrat.catalog import default_catalog
from altostrat.catalog.power import CPU_IDLE_W, CPU_MAX_W, DEFAULT_PUE, GPU_WATTS, node_power
from altostrat.cluster.build import load_cluster
from altostrat.metrics.compute import compute_metrics
from altostrat.policy.registry import parse_policy
from altostrat.sim.simulator import simulate

HEAD = "apiVersion: altostrat/v1\nkind: Cluster\nmetadata: {name: powered}\nspec:\n  pools:\n"
P3 = "{name: a, nodes: 1, instanceType: p3.8xlarge}"
NC = "{name: b, nodes: 1, instanceType: Standard_NC24s_v3}"


def kwh(state, work, policy="fcfs+first-fit", **kw):
    return compute_metrics(simulate(jobs(*work), state, parse_policy(policy), **kw))["energy_kwh"]


def priced(tmp_path, *pools):
    path = tmp_path / "cluster.yaml"
    path.write_text(HEAD + "".join(f"    - {p}\n" for p in pools))
    return load_cluster(str(path))[1]


def test_one_node_one_gpu_for_an_hour(tmp_path):
    state = priced(tmp_path, P3)
    assert kwh(state, [job("j", 0, 3600)]) == pytest.approx((163.0768 + 306.45) / 1000)


def test_allocated_vcpus_and_gpu_shares_draw_linearly(tmp_path):
    # half a GPU and 4 vCPUs for an hour: 0.5 x 306.45 + 4 x 2.76 x 1.135 = 153.225 + 12.5304 W
    state = priced(tmp_path, P3)
    work = [job("j", 0, 3600, tasks=1, gpu_milli=500, cpu_milli=4000)]
    assert kwh(state, work) == pytest.approx((163.0768 + 153.225 + 12.5304) / 1000)


def test_each_job_draws_at_its_own_nodes_pue(tmp_path):
    # a: 4 GPUs on the us-east-1 node for 1 h; b: 4 GPUs on the eastus node for 0.5 h; window 1 h
    state = priced(tmp_path, P3, NC)
    work = [job("a", 0, 3600, gpus=4), job("b", 0, 1800, gpus=4)]
    wh = 163.0768 + 163.2456 + 4 * 270 * 1.135 + 4 * 270 * 1.185 * 0.5
    assert kwh(state, work) == pytest.approx(wh / 1000)
    # --until 1800: half an hour of everything
    half = (163.0768 + 163.2456) / 2 + 4 * 270 * 1.135 / 2 + 4 * 270 * 1.185 / 2
    assert kwh(state, work, until=1800.0) == pytest.approx(half / 1000)


def test_warmup_counts_jobs_started_before_it(tmp_path):
    # window [900, 3600]: the job started at 0 draws through all of it
    state = priced(tmp_path, P3)
    assert kwh(state, [job("j", 0, 3600), job("k", 900, 60, tasks=1, gpu_milli=0, cpu_milli=1000)], warmup=900.0) \
        == pytest.approx((163.0768 + 306.45) * 0.75 / 1000 + 2.76 * 1.135 * 60 / 3.6e6)


def test_preempted_job_stops_drawing_and_resumes():
    # one node, 2 V100, 64 vCPUs, no region (PUE 1.185): low [0, 4] + high [4, 7] + low [9 - 2 restart, 15]
    # keep 2 GPUs allocated all 15 s
    w = [job("low", 0, 10, gpus=2, priority=0), job("high", 4, 3, gpus=2, priority=5)]
    joules = 1.185 * (2 * 30 + 64 * 0.74) * 15 + 2 * 270 * 1.185 * 15
    assert kwh(cluster(("V100", 2, 1)), w, "priority+preempt[restart_s=2]") == pytest.approx(joules / 3.6e6)


def test_null_without_a_power_model_and_cpu_only_nodes_have_one():
    assert kwh(cluster(("X9", 4, 1)), [job("j", 0, 10)]) is None
    # a CPU-only node of 64 vCPUs running a 2-vCPU job for an hour, default PUE
    w = [job("c", 0, 3600, tasks=1, gpu_milli=0, cpu_milli=2000)]
    assert kwh(cluster((None, 0, 1)), w) == pytest.approx(DEFAULT_PUE * (64 * 0.74 + 2 * 2.76) / 1000)
    # an unmodelled node adds nothing, nor does the job first-fit puts on it; the CPU node idles
    mixed = cluster(("X9", 4, 1), (None, 0, 1))
    assert kwh(mixed, w) == pytest.approx(DEFAULT_PUE * 64 * 0.74 / 1000)


def test_node_power_model():
    p = node_power("V100", 4, 32_000, "us-east-1")
    assert p.static_w == pytest.approx(163.0768)
    assert p.gpu_w_per_milli * 1000 == pytest.approx(306.45)
    assert p.cpu_w_per_milli * 1000 == pytest.approx(1.135 * (CPU_MAX_W - CPU_IDLE_W))
    assert node_power("V100", 1, 8000, "mars-1").static_w == pytest.approx(DEFAULT_PUE * (30 + 8 * 0.74))
    assert node_power("B300", 8, 1000, None) is None


def test_every_catalog_gpu_has_watts():
    models = {it.gpu_model for it in default_catalog() if it.gpu_model}
    assert models <= set(GPU_WATTS)
    for idle, peak, source in GPU_WATTS.values():
        assert 0 < idle < peak and source


def test_measured_profiles_give_h100_and_h200(shared_data):
    for model, name in (("H100", "h100-80gb-hbm3.json"), ("H200", "h200.json")):
        info = json.loads((shared_data / "gpu-profiles" / name).read_text())["info"]
        assert GPU_WATTS[model][:2] == (info["idle_power_w"], info["power_limit_w"])
        assert name in GPU_WATTS[model][2]
