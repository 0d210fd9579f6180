"""Elastic pools: the autoscaler boots nodes for jobs that fit nowhere and releases them idle."""

import pytest
from helpers import job, jobs
from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.cluster.build import load_cluster
from altostrat.cluster.state import ClusterState, Node
from altostrat.engine import BOOT, Engine
from altostrat.metrics.compute import compute_metrics
from altostrat.policy.registry import parse_policy
from altostrat.resources import MILLI
from altostrat.sim.eventlog import FINISH, NODE_DOWN, NODE_UP, PREEMPT, START
from altostrat.sim.simulator import simulate
from altostrat.spec.load import SpecError


def node(idx, elastic=False, price_hr=3.6, **kw):
    return Node(idx, f"n{idx}", "burst" if elastic else "base", "V100", 1, 8 * MILLI, 64 * 1024, price_per_s=price_hr / 3600,
                elastic=elastic, up=not elastic, boot_s=100.0 if elastic else 0.0, idle_s=50.0 if elastic else 0.0, **kw)


def events(result, *kinds):
    return [(t, k, j, nd) for t, k, j, nd in zip(result.log.time, result.log.kind, result.log.job, result.log.node)
            if k in kinds]


def test_boot_for_a_job_that_fits_nowhere_then_release_it_idle():
    state = ClusterState([node(0), node(1, elastic=True), node(2, elastic=True)])
    result = simulate(jobs(job("a", 0, 1000), job("b", 0, 500)), state, parse_policy("fcfs+first-fit"))
    assert events(result, NODE_UP, NODE_DOWN, START, FINISH) == [
        (0.0, START, 0, 0),
        (0.0, NODE_UP, -1, 1),  # one node booted for b; the second elastic node stays down
        (100.0, START, 1, 1),  # usable after boot_s
        (600.0, FINISH, 1, -1),
        (650.0, NODE_DOWN, -1, 1),  # empty for idle_s
        (1000.0, FINISH, 0, -1),
    ]
    m = compute_metrics(result)
    assert m["cost_usd"] == pytest.approx(1000 * 0.001 + 650 * 0.001)  # base 1000 s, burst node 650 s billed


def test_a_node_booted_for_a_job_that_started_elsewhere_is_released():
    state = ClusterState([node(0), node(1, elastic=True)])
    # b fits nowhere at 0, so n1 boots; a ends at 10 and b starts on n0 before n1 is up
    result = simulate(jobs(job("a", 0, 10), job("b", 0, 500)), state, parse_policy("fcfs+first-fit"))
    assert events(result, NODE_UP, NODE_DOWN) == [(0.0, NODE_UP, -1, 1), (150.0, NODE_DOWN, -1, 1)]
    assert [(t, j, nd) for t, _, j, nd in events(result, START)] == [(0.0, 0, 0), (10.0, 1, 0)]


def test_pool_spec_floor_and_errors(tmp_path):
    spec = tmp_path / "c.yaml"
    spec.write_text("""apiVersion: altostrat/v1
kind: Cluster
metadata: {name: c}
spec:
  pools:
    - {name: burst, nodes: 3, instanceType: p3.8xlarge, region: us-east-1, autoscale: {minNodes: 1, bootS: 60}}
""")
    _, state = load_cluster(str(spec))
    assert [(n.up, n.elastic, n.boot_s, n.idle_s) for n in state.nodes] == [
        (True, False, 0.0, 0.0), (False, True, 60.0, 600.0), (False, True, 60.0, 600.0)]
    assert state.models["V100"].free_whole == 4  # only the floor node is in service
    spec.write_text(spec.read_text().replace("minNodes: 1", "minNodes: 4"))
    with pytest.raises(SpecError, match="autoscale.minNodes 4 exceeds nodes 3"):
        load_cluster(str(spec))


@settings(max_examples=40, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 5000), st.integers(10, 4000), st.integers(1, 2), st.booleans()),
                min_size=1, max_size=25), st.integers(0, 2))
def test_elastic_runs_conserve_jobs_and_never_use_a_node_that_is_down(specs, seed):
    work = jobs(*(job(f"j{i}", s, d, gpus=g, spot=sp) for i, (s, d, g, sp) in enumerate(specs)))
    nodes = [Node(i, f"n{i}", "p", "V100", 2, 8 * MILLI, 64 * 1024, price_per_s=0.001, elastic=i > 0, up=i == 0,
                  boot_s=60.0 if i else 0.0, idle_s=30.0 if i else 0.0, spot=i == 3,
                  revocations_per_hour=2.0 if i == 3 else 0.0, notice_s=30.0, mean_down_s=300.0) for i in range(4)]
    result = simulate(work, ClusterState(nodes), parse_policy("fcfs+best-fit+backfill"), seed=seed)
    up = {0: True}
    first_node: dict[int, int] = {}  # running job -> the first node of its start
    for t, k, j, nd in zip(result.log.time, result.log.kind, result.log.job, result.log.node):
        if k == NODE_UP:
            up[nd] = True
        elif k == NODE_DOWN:
            if not nodes[nd].spot:  # a scale-down, which never stops a job (a revocation may)
                assert nd not in first_node.values(), f"node {nd} released at {t} under a running job"
            up[nd] = False
        elif k == START:
            assert up.get(nd), f"job {j} started on node {nd}, which is not billed as up"
            first_node[j] = nd
        elif k in (FINISH, PREEMPT):
            first_node.pop(j, None)
    finished = [j for j, k in zip(result.log.job, result.log.kind) if k == FINISH]
    assert sorted(finished) == sorted(set(finished)) == list(range(len(work)))


def test_a_node_under_revocation_notice_is_not_booted():
    """The notice takes the node out of service; the autoscaler must not count it as spare
    (a boot of it would be lost with the revocation)."""
    nodes = [node(0, elastic=True, spot=True), node(1, elastic=True, spot=True)]
    nodes[0].up = True  # booted earlier, idle now
    state = ClusterState(nodes)
    engine = Engine(state, parse_policy("fcfs+first-fit"))
    engine.cordon(nodes[0])
    (boot,) = engine.submit(jobs(job("a", 0, 100, spot=True))[0], 0.0)
    assert (boot.kind, boot.node.idx) == (BOOT, 1)


def test_jobs_the_pass_could_not_start_get_capacity_although_they_fit_somewhere():
    """Under EASY backfill a job that fits now may still be held for the blocked head; the
    autoscaler boots for it too, rather than leave it waiting behind the head."""
    nodes = [Node(0, "n0", "base", "V100", 2, 8 * MILLI, 64 * 1024, price_per_s=0.001), node(1, elastic=True)]
    engine = Engine(ClusterState(nodes), parse_policy("fcfs+first-fit+backfill"))
    a, b, c = jobs(job("a", 0, 1000), job("b", 1, 500, gpus=2), job("c", 2, 5000))
    engine.submit(a, 0.0)  # a takes one of n0's two GPUs
    assert engine.submit(b, 1.0) == []  # b needs both of n0's; n1 (one GPU) cannot hold it: nothing to boot
    # c fits n0's free GPU but would still run when b may start (a ends at 1000): held, and n1 boots for it
    (boot,) = engine.submit(c, 2.0)
    assert (boot.kind, boot.node.idx, boot.job.id) == (BOOT, 1, "c")


def test_a_gang_whose_first_node_is_up_boots_no_extra_node():
    """Nodes boot at different speeds: while the rest of a gang's nodes boot, the first one
    is up and empty, and counts in the dry run instead of booting another."""
    nodes = [node(i, elastic=True) for i in range(3)]
    nodes[1].boot_s = 300.0  # the gang's second node is slower to boot
    result = simulate(jobs(job("g", 0, 1000, gpus=2)), ClusterState(nodes), parse_policy("fcfs+first-fit"))
    assert [(t, nd) for t, _, _, nd in events(result, NODE_UP)] == [(0.0, 0), (0.0, 1)]  # node 2 never boots
    assert [(t, nd) for t, _, _, nd in events(result, START)] == [(300.0, 0)]


def test_a_node_kept_while_others_boot_is_released_once_they_are_up():
    nodes = [node(0), node(1, elastic=True), node(2, elastic=True)]
    nodes[2].gpu_model, nodes[2].boot_s = "K80", 400.0  # b needs the K80 node, slow to boot
    work = jobs(job("a", 0, 1000), job("a2", 0, 50), job("b", 1, 2000, gpu_models=("K80",)))
    result = simulate(work, ClusterState(nodes), parse_policy("fcfs+first-fit"))
    # n1 boots for a2 (up at 100, empty at 150); its idle timer (50 s) finds n2 booting until 401,
    # so it is looked at again every 50 s and released at 450
    assert [(t, k, nd) for t, k, _, nd in events(result, NODE_UP, NODE_DOWN)] == [
        (0.0, NODE_UP, 1), (1.0, NODE_UP, 2), (450.0, NODE_DOWN, 1)]
    assert [(t, j, nd) for t, _, j, nd in events(result, START)] == [(0.0, 0, 0), (100.0, 1, 1), (401.0, 2, 2)]
