"""Pools named by instance type, and what their nodes cost over the metrics window.

Prices (embedded catalog, from vms.csv line 1097): p3.8xlarge, 4 x V100, 32 vCPUs, 244 GiB,
12.24 USD/h on-demand, 1.7535 USD/h spot.
"""

import pytest
from helpers import job, jobs

from altostrat.catalog import DEFAULT_RESERVED_DISCOUNT
from altostrat.cluster.build import load_cluster
from altostrat.metrics.compute import compute_metrics
from altostrat.policy.registry import parse_policy
from altostrat.sim.simulator import simulate
from altostrat.spec.load import SpecError

HEAD = "apiVersion: altostrat/v1\nkind: Cluster\nmetadata: {name: priced}\nspec:\n  pools:\n"


def cluster_file(tmp_path, *pools: str):
    path = tmp_path / "cluster.yaml"
    path.write_text(HEAD + "".join(f"    - {p}\n" for p in pools))
    return str(path)


def cost(tmp_path, *pools: str, work=((0, 3600),), spot=False, **kw):
    _, state = load_cluster(cluster_file(tmp_path, *pools))
    w = jobs(*(job(f"j{i}", s, d, spot=spot) for i, (s, d) in enumerate(work)))
    return compute_metrics(simulate(w, state, parse_policy("fcfs+first-fit"), **kw))["cost_usd"]


def test_a_pool_takes_its_shape_region_and_price_from_the_catalog(tmp_path):
    _, state = load_cluster(cluster_file(tmp_path, "{name: v, nodes: 2, instanceType: p3.8xlarge}"))
    node = state.nodes[0]
    assert (node.gpu_model, node.gpus, node.cpu_milli, node.mem_mib, node.region) == ("V100", 4, 32_000, 244 * 1024,
                                                                                     "us-east-1")
    assert node.price_per_s == pytest.approx(12.24 / 3600)
    assert state.price_per_s == pytest.approx(2 * 12.24 / 3600)


def test_on_demand_cost_is_price_times_nodes_times_window(tmp_path):
    # one 1-GPU job of an hour: the window is [0, 3600] s and both nodes are up all of it
    assert cost(tmp_path, "{name: v, nodes: 2, instanceType: p3.8xlarge}") == pytest.approx(2 * 12.24)
    # window [0, 5400]: the second job ends at 1800 + 3600
    assert cost(tmp_path, "{name: v, nodes: 1, instanceType: p3.8xlarge}", work=((0, 600), (1800, 3600))) == \
        pytest.approx(12.24 * 1.5)


def test_spot_and_reserved_prices(tmp_path):
    # only a job that allows spot runs on a spot pool
    assert cost(tmp_path, "{name: v, nodes: 1, instanceType: p3.8xlarge, lifecycle: spot}", spot=True) == \
        pytest.approx(1.7535)
    assert cost(tmp_path, "{name: v, nodes: 1, instanceType: p3.8xlarge, lifecycle: reserved, reservedDiscount: 0.25}") \
        == pytest.approx(9.18)
    assert cost(tmp_path, "{name: v, nodes: 1, instanceType: p3.8xlarge, lifecycle: reserved}") == \
        pytest.approx(12.24 * (1 - DEFAULT_RESERVED_DISCOUNT))


def test_until_and_warmup_bound_the_window(tmp_path):
    pool = "{name: v, nodes: 1, instanceType: p3.8xlarge}"
    assert cost(tmp_path, pool, until=1800.0) == pytest.approx(12.24 / 2)
    assert cost(tmp_path, pool, work=((0, 3600), (900, 60)), warmup=900.0) == pytest.approx(12.24 * 0.75)


def test_unpriced_pools_cost_nothing_and_a_cluster_without_prices_reports_none(tmp_path):
    cpu_pool = "{name: c, nodes: 3, cpu: 8, memoryGib: 32}"
    assert cost(tmp_path, "{name: v, nodes: 1, instanceType: p3.8xlarge}", cpu_pool) == pytest.approx(12.24)
    assert cost(tmp_path, "{name: v, nodes: 1, gpu: {model: V100, count: 4}, cpu: 32, memoryGib: 244}") is None


def test_explicit_values_must_agree_with_the_instance_type(tmp_path):
    same = "{name: v, nodes: 1, instanceType: p3.8xlarge, gpu: {model: V100, count: 4}, cpu: 32, memoryGib: 244}"
    _, state = load_cluster(cluster_file(tmp_path, same))
    assert state.nodes[0].cpu_milli == 32_000


@pytest.mark.parametrize(("pool", "message"), [
    ("{name: v, nodes: 1, instanceType: p3.8xlarge, cpu: 64}",
     r"spec.pools\[0\]: Value error, cpu 64 does not match instance type p3.8xlarge \(32\)"),
    ("{name: v, nodes: 1, instanceType: p3.8xlarge, gpu: {model: A100, count: 4}}",
     r"gpu 4 x A100 does not match instance type p3.8xlarge \(4 x V100\)"),
    ("{name: v, nodes: 1, instanceType: m6i.2xlarge, gpu: {model: V100, count: 1}}",
     r"gpu 1 x V100 does not match instance type m6i.2xlarge \(none\)"),
    ("{name: v, nodes: 1, instanceType: p3.8xlarge, memoryGib: 256}", r"memoryGib 256 does not match .* \(244\)"),
    ("{name: v, nodes: 1, instanceType: p3.8xlage}", r"'p3.8xlage' is not in the catalog.*did you mean p3.8xlarge"),
    ("{name: v, nodes: 1, instanceType: p3.8xlarge, region: eu-west-1}", r"not offered in region 'eu-west-1'"),
    ("{name: v, nodes: 1, instanceType: p3.8xlarge, cloud: gcp}", r"not offered on gcp; it is on: aws"),
    ("{name: v, nodes: 1, instanceType: p3.8xlarge, lifecycle: preemptible}",
     r"spec.pools\[0\].lifecycle: Input should be 'on-demand', 'spot' or 'reserved'"),
    ("{name: v, nodes: 1, instanceType: p3.8xlarge, lifecycle: reserved, reservedDiscount: 1}",
     r"spec.pools\[0\].reservedDiscount: Input should be less than 1"),
    ("{name: v, nodes: 1, instanceType: p3.8xlarge, reservedDiscount: 0.3}",
     r"reservedDiscount applies to lifecycle reserved only \(this pool is on-demand\)"),
    ("{name: v, nodes: 1, cpu: 8, memoryGib: 32, lifecycle: spot}", r"cloud and lifecycle need an instanceType"),
    ("{name: v, nodes: 1, cpu: 8}", r"spec.pools\[0\]: Value error, give memoryGib, or an instanceType"),
])
def test_a_bad_pool_is_a_field_error(tmp_path, pool, message):
    with pytest.raises(SpecError, match=message):
        load_cluster(cluster_file(tmp_path, pool))


def test_built_in_clusters_have_instance_types_and_prices():
    _, philly = load_cluster("philly-like")
    node = philly.nodes[0]
    assert (len(philly.nodes), node.gpu_model, node.gpus, node.cpu_milli, node.mem_mib, node.region) == (
        64, "P100", 8, 64_000, 416 * 1024, "us-central1")
    assert philly.price_per_s == pytest.approx(64 * 15.46568 / 3600)
    _, gavel = load_cluster("gavel-108")
    shapes = {(n.gpu_model, n.gpus, n.cpu_milli // 1000, n.mem_mib // 1024, n.region) for n in gavel.nodes}
    assert shapes == {("V100", 4, 32, 244, "us-east-1"), ("P100", 4, 32, 208, "us-central1"),
                      ("K80", 4, 24, 224, "westus2")}
    assert gavel.gpu_capacity_milli == 108_000
    assert gavel.price_per_s == pytest.approx(9 * (12.24 + 7.73284 + 3.6) / 3600)
