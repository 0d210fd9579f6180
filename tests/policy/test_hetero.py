"""Hand-checked `hetero` placements: directly and through the simulator (run time = duration / speed)."""

import pytest
from helpers import check_state, cluster, job, jobs

from altostrat.cluster.build import load_cluster
from altostrat.policy.registry import PolicyError, build_piece, parse_policy
from altostrat.sim.eventlog import FINISH, START
from altostrat.sim.simulator import simulate

# Gavel's measured speeds relative to a V100 (simulation_throughputs.json, as in the synthetic generator)
RESNET18 = {"V100": 1.0, "P100": 0.926, "K80": 0.293}
RESNET50 = {"V100": 1.0, "P100": 0.596, "K80": 0.141}
RECOMMENDATION = {"V100": 1.0, "P100": 2.222, "K80": 1.398}


def place(name, state, j):
    return build_piece("placement", name).place(j, state)


def spans(result):
    """job id -> (start, finish) from the event log."""
    out = {}
    for t, kind, j in zip(result.log.time, result.log.kind, result.log.job):
        if kind in (START, FINISH):
            out.setdefault(result.jobs[j].id, [None, None])[kind == FINISH] = t
    return {k: tuple(v) for k, v in out.items()}


@pytest.fixture
def k80_v100():
    # node0 K80 (3 of 4 free), node1 V100 (4 free), node2 V100 (3 of 4 free)
    s = cluster(("K80", 4, 1), ("V100", 4, 2))
    s.allocate(job("x", 0, 1), [(0, 1)])
    s.allocate(job("y", 0, 1), [(2, 1)])
    return s


def test_fastest_model_then_tightest_node(k80_v100):
    j = job("a", 0, 1, gpus=2, speeds={"V100": 1.0, "K80": 0.25})
    # best-fit sees equal leftovers (1 GPU) on node0 and node2 and keeps the first model, K80
    assert place("best-fit", k80_v100, j) == [(0, 2)]
    assert place("hetero", k80_v100, j) == [(2, 2)]
    # a gang bigger than one V100 node: tightest V100 node first
    assert place("hetero", k80_v100, job("b", 0, 1, gpus=5, speeds={"V100": 1.0, "K80": 0.25})) == [(2, 3), (1, 2)]


def test_speeds_are_per_job_not_per_model(k80_v100):
    # Gavel's recommendation model runs faster on a K80 than on a V100
    assert place("hetero", k80_v100, job("a", 0, 1, gpus=2, speeds=RECOMMENDATION)) == [(0, 2)]


def test_model_indifferent_jobs_place_like_best_fit(k80_v100):
    for gpus in (1, 2, 3, 7):
        j = job("a", 0, 1, gpus=gpus)
        assert place("hetero", k80_v100, j) == place("best-fit", k80_v100, j)
    cpu_only = job("c", 0, 1, tasks=1, gpu_milli=0, cpu_milli=1000)
    assert place("hetero", k80_v100, cpu_only) == place("best-fit", k80_v100, cpu_only)


def test_falls_back_to_a_slow_model_or_waits(k80_v100):
    k80_v100.allocate(job("z", 0, 1, gpus=4), [(1, 4)])
    k80_v100.allocate(job("w", 0, 1, gpus=3), [(2, 3)])  # both V100 nodes full
    j = job("a", 0, 1, gpus=2, speeds={"V100": 1.0, "K80": 0.25})
    assert place("hetero", k80_v100, j) == [(0, 2)]
    assert place("hetero[wait_below=0.25]", k80_v100, j) == [(0, 2)]  # 0.25 is not below 0.25
    assert place("hetero[wait_below=0.5]", k80_v100, j) is None


def test_min_speedup_leaves_fast_gpus_to_jobs_that_gain_most():
    # one 4-GPU node each of V100, P100, K80: a gavel-108 in miniature
    s = cluster(("V100", 4, 1), ("P100", 4, 1), ("K80", 4, 1))
    r18, r50 = job("r18", 0, 1, gpus=1, speeds=RESNET18), job("r50", 0, 1, gpus=1, speeds=RESNET50)
    assert place("hetero", s, r18) == [(0, 1)]
    # within 1.2x of V100 (>= 0.833): ResNet-18's P100 (0.926) qualifies, ResNet-50's (0.596) does not
    assert place("hetero[min_speedup=1.2]", s, r18) == [(1, 1)]
    assert place("hetero[min_speedup=1.2]", s, r50) == [(0, 1)]
    # within 4x (>= 0.25): ResNet-18 steps down to the K80 (0.293), ResNet-50 to the P100 only
    assert place("hetero[min_speedup=4]", s, r18) == [(2, 1)]
    assert place("hetero[min_speedup=4]", s, r50) == [(1, 1)]
    # the waiting floor wins over stepping down
    assert place("hetero[min_speedup=4,wait_below=0.5]", s, r18) == [(1, 1)]


def test_gang_stays_on_one_model_and_respects_allowed_models():
    s = cluster(("V100", 2, 1), ("K80", 2, 1))
    assert place("hetero", s, job("a", 0, 1, gpus=3, speeds={"V100": 1.0, "K80": 0.5})) is None
    assert place("hetero", s, job("b", 0, 1, gpus=2, gpu_models=("K80",), speeds={"V100": 1.0, "K80": 0.5})) == [(1, 2)]
    # waiting is judged against the allowed models only: K80 is this job's best
    k80_only = job("c", 0, 1, gpus=1, gpu_models=("K80",), speeds={"V100": 1.0, "K80": 0.5})
    assert place("hetero[wait_below=1]", s, k80_only) == [(1, 1)]


def test_gpu_share_goes_to_the_fastest_model():
    s = cluster(("T4", 1, 1), ("A10", 1, 1))
    j = job("a", 0, 1, tasks=1, gpu_milli=300, speeds={"T4": 0.5, "A10": 1.0})
    assert place("hetero", s, j) == [(1, 1)]


@pytest.mark.parametrize("param", ["min_speedup=0.5", "wait_below=1.5", "wait_below=-0.1", "min_speedup=x"])
def test_bad_parameters_are_refused(param):
    with pytest.raises(PolicyError, match=param.split("=")[0]):
        build_piece("placement", f"hetero[{param}]")


def two_jobs():
    # a gains 2x from the V100, b 4x
    return jobs(
        job("a", 0, 100, speeds={"V100": 1.0, "K80": 0.5}),
        job("b", 10, 100, speeds={"V100": 1.0, "K80": 0.25}),
    )


@pytest.mark.parametrize(
    "policy, expected",
    [
        # best-fit: equal leftovers, cluster order -> a on the K80 (100/0.5 = 200 s); b on the V100
        ("fcfs+best-fit", {"a": (0, 200), "b": (10, 110)}),
        # fastest free model: a takes the V100 (100 s), b is left the K80 (100/0.25 = 400 s)
        ("fcfs+hetero", {"a": (0, 100), "b": (10, 410)}),
        # b will not run at a quarter speed: it waits for the V100 a frees at 100
        ("fcfs+hetero[wait_below=0.5]", {"a": (0, 100), "b": (100, 200)}),
        # a is within 2x on the K80 so it leaves the V100; b's K80 (0.25 < 1/2) is not acceptable
        ("fcfs+hetero[min_speedup=2]", {"a": (0, 200), "b": (10, 110)}),
    ],
)
def test_simulated_finish_times(policy, expected):
    state = cluster(("K80", 1, 1), ("V100", 1, 1))
    result = simulate(two_jobs(), state, parse_policy(policy))
    assert spans(result) == expected
    check_state(state)
    assert state.gpu_allocated_milli == 0


def test_simulated_on_gavel_108():
    # Three 36-GPU gangs at t=0 fill one model each: the first job takes its fastest model.
    name, state = load_cluster("gavel-108")
    w = jobs(
        job("cyclegan", 0, 1000, gpus=36, speeds={"V100": 1.0, "P100": 0.543, "K80": 0.114}),
        job("cyclegan2", 0, 543, gpus=36, speeds={"V100": 1.0, "P100": 0.543, "K80": 0.114}),
        job("recsys", 0, 1398, gpus=36, speeds=RECOMMENDATION),
    )
    result = simulate(w, state, parse_policy("fcfs+hetero"))
    # cyclegan: V100, 1000 s. cyclegan2: P100 (V100 taken), 543/0.543 = 1000 s.
    # recsys: its best free model is the K80, 1398/1.398 = 1000 s.
    got = spans(result)
    assert {k: v[0] for k, v in got.items()} == {"cyclegan": 0, "cyclegan2": 0, "recsys": 0}
    assert {k: v[1] for k, v in got.items()} == pytest.approx({"cyclegan": 1000, "cyclegan2": 1000, "recsys": 1000})
    log = result.log
    models = {result.jobs[j].id: state.nodes[n].gpu_model for j, n, k in zip(log.job, log.node, log.kind) if k == START}
    assert models == {"cyclegan": "V100", "cyclegan2": "P100", "recsys": "K80"}
