"""Hand-checked placements on tiny clusters."""

import pytest
from helpers import cluster, job

from altostrat.policy.registry import build_piece


def place(name, state, j):
    return build_piece("placement", name).place(j, state)


@pytest.fixture
def state():
    # free GPUs after set-up: node0 2, node1 4, node2 1, node3 4
    s = cluster(("V100", 4, 4))
    s.allocate(job("x", 0, 1, gpus=2), [(0, 2)])
    s.allocate(job("y", 0, 1, gpus=3), [(2, 3)])
    return s


def test_first_fit_fills_nodes_in_index_order(state):
    assert place("first-fit", state, job("a", 0, 1, gpus=1)) == [(0, 1)]
    assert place("first-fit", state, job("b", 0, 1, gpus=5)) == [(0, 2), (1, 3)]


def test_best_fit_takes_the_tightest_nodes(state):
    assert place("best-fit", state, job("a", 0, 1, gpus=1)) == [(2, 1)]
    assert place("best-fit", state, job("b", 0, 1, gpus=3)) == [(2, 1), (0, 2)]


def test_spread_puts_one_task_per_emptiest_node(state):
    assert place("spread", state, job("a", 0, 1, gpus=3)) == [(1, 1), (3, 1), (0, 1)]


def test_consolidate_prefers_one_node_then_fewest(state):
    assert place("consolidate", state, job("a", 0, 1, gpus=2)) == [(0, 2)]
    assert place("consolidate", state, job("b", 0, 1, gpus=4)) == [(1, 4)]
    assert place("consolidate", state, job("c", 0, 1, gpus=6)) == [(1, 4), (3, 2)]


@pytest.mark.parametrize("name", ["first-fit", "best-fit", "spread", "consolidate"])
def test_no_plan_when_the_gang_does_not_fit(state, name):
    assert place(name, state, job("a", 0, 1, gpus=12)) is None


@pytest.mark.parametrize("name", ["first-fit", "best-fit", "spread", "consolidate"])
def test_gang_stays_on_one_gpu_model(name):
    s = cluster(("V100", 2, 1), ("K80", 2, 1))
    assert place(name, s, job("a", 0, 1, gpus=3)) is None
    plan = place(name, s, job("b", 0, 1, gpus=2, gpu_models=("K80",)))
    assert plan == [(1, 2)]


def test_best_fit_for_a_gpu_share_picks_the_tightest_gpu():
    s = cluster(("T4", 1, 3))
    s.allocate(job("x", 0, 1, tasks=1, gpu_milli=700), [(1, 1)])
    s.allocate(job("y", 0, 1, tasks=1, gpu_milli=500), [(2, 1)])
    assert place("best-fit", s, job("a", 0, 1, tasks=1, gpu_milli=300)) == [(1, 1)]
    assert place("best-fit", s, job("b", 0, 1, tasks=1, gpu_milli=400)) == [(2, 1)]
    assert place("first-fit", s, job("c", 0, 1, tasks=1, gpu_milli=400)) == [(0, 1)]


def test_cpu_only_job_goes_where_cpu_is_free():
    s = cluster((None, 0, 2), cpu=4)
    s.allocate(job("x", 0, 1, tasks=1, gpu_milli=0, cpu_milli=3000), [(0, 1)])
    assert place("best-fit", s, job("a", 0, 1, tasks=1, gpu_milli=0, cpu_milli=1000)) == [(0, 1)]
    assert place("best-fit", s, job("b", 0, 1, tasks=1, gpu_milli=0, cpu_milli=2000)) == [(1, 1)]
