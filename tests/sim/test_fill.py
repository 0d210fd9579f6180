"""`--arrivals fill:F`: top-up, pruning, the fill driver's exact curve, and the real trace."""

import pytest
from helpers import cluster, job

from altostrat.cluster.state import NEVER_FITS
from altostrat.metrics.compute import compute_metrics
from altostrat.policy.registry import parse_policy
from altostrat.sim.eventlog import REJECT, START, SUBMIT
from altostrat.sim.fill import FITS_NOWHERE, fill_workload, parse_arrivals, simulate_fill
from altostrat.sim.run import RunRequest, run
from altostrat.spec.load import SpecError


def pod(name, milli, **kw):
    return job(name, 0, 1, tasks=1, gpu_milli=milli, **kw)


def test_parse_arrivals():
    assert parse_arrivals("fill:1.3") == 1.3
    for bad in ("fill", "fill:0", "fill:-1", "fill:x", "poisson:1", "fill:inf", "fill:nan"):
        with pytest.raises(SpecError, match="fill:F"):
            parse_arrivals(bad)


def test_top_up_draws_copies_until_the_target_is_reached():
    pods = [pod("a", 1000), pod("b", 300), pod("c", 0, cpu_milli=1000)]
    out = fill_workload(pods, capacity_milli=10_000, factor=1.3, seed=5)
    asked = sum(p.gpu_milli_total for p in out)
    assert 13_000 <= asked < 13_000 + 1000  # stops at the first copy that reaches the target
    assert len({p.id for p in out}) == len(out)
    assert {p.id.split("~")[0] for p in out} == {"a", "b", "c"}
    assert all(p.gpu_milli == {"a": 1000, "b": 300, "c": 0}[p.id.split("~")[0]] for p in out)
    assert [p.idx for p in out] == list(range(len(out))) and [p.submit for p in out] == list(range(len(out)))
    assert [p.id for p in fill_workload(pods, 10_000, 1.3, seed=5)] == [p.id for p in out]  # seeded
    assert [p.id for p in fill_workload(pods, 10_000, 1.3, seed=6)] != [p.id for p in out]


def test_pruning_removes_pods_until_at_or_below_the_target():
    pods = [pod(f"p{i}", 500) for i in range(10)]  # asks 5,000
    out = fill_workload(pods, capacity_milli=2_000, factor=1.2, seed=1)
    assert sum(p.gpu_milli_total for p in out) == 2_000  # 500-milli steps: 2,400 is over, 2,000 is not
    assert len(out) == 4 and len({p.id for p in out}) == 4 and not any("~" in p.id for p in out)


def test_fill_driver_curve_and_event_log_on_a_toy_cluster():
    # Two 1-GPU nodes (capacity 2,000 milli), pods in this order under first-fit:
    #   300 share -> n0 (n0 has 700 left)   arrived 0.15  allocated 0.15
    #   800 share -> n1 (n0 too small)      arrived 0.55  allocated 0.55
    #   1 whole GPU -> fits nowhere, failed  arrived 1.05  allocated 0.55
    #   400 share -> n0                      arrived 1.25  allocated 0.75
    #   3 whole GPUs -> never fits the cluster (its own reason); last pod: arrived 2.75
    pods = [pod("a", 300), pod("b", 800), pod("c", 1000), pod("d", 400), pod("e", 3000)]
    for k, p in enumerate(pods):
        p.idx, p.submit = k, float(k)
    state = cluster(("T4", 1, 2))
    result, curve = simulate_fill(pods, state, parse_policy("fcfs+first-fit"))
    assert [p["arrived_fraction"] for p in curve] == pytest.approx([0.15, 0.55, 1.05, 1.25, 2.75])
    assert [p["allocated_gpu_fraction"] for p in curve] == pytest.approx([0.15, 0.55, 0.55, 0.75, 0.75])
    assert [p["unallocated_gpu_fraction"] for p in curve] == pytest.approx([0.85, 0.45, 0.45, 0.25, 0.25])
    assert [n.gpu_free for n in state.nodes] == [[300], [200]]
    log = result.log
    assert list(zip(log.time, log.kind, log.job)) == [
        (0, SUBMIT, 0), (0, START, 0), (1, SUBMIT, 1), (1, START, 1), (2, SUBMIT, 2), (2, REJECT, 2),
        (3, SUBMIT, 3), (3, START, 3), (4, SUBMIT, 4), (4, REJECT, 4),
    ]
    assert result.reject_reasons == {2: FITS_NOWHERE, 4: NEVER_FITS}
    m = compute_metrics(result)
    assert (m["jobs_submitted"], m["jobs_unschedulable"], m["jobs_unfinished"], m["jobs_completed"]) == (5, 2, 3, 0)


def test_one_curve_point_per_step_reached():
    # 20 pods of 100 milli on one GPU: each pod is one step of 0.1; the 0.05 steps in between
    # are crossed by the same pod, so there is one point per pod, and the 11th pod onward fail.
    pods = [pod(f"p{k}", 100) for k in range(20)]
    for k, p in enumerate(pods):
        p.idx, p.submit = k, float(k)
    _, curve = simulate_fill(pods, cluster(("T4", 1, 1)), parse_policy("fcfs+best-fit"))
    assert [p["arrived_fraction"] for p in curve] == pytest.approx([0.1 * k for k in range(1, 21)])
    assert [p["allocated_gpu_fraction"] for p in curve] == pytest.approx([min(0.1 * k, 1.0) for k in range(1, 21)])


def invariants(curve):
    arrived = [p["arrived_fraction"] for p in curve]
    assert arrived == sorted(arrived) and len(set(arrived)) == len(arrived)
    for prev, cur in zip(curve, curve[1:]):
        assert cur["allocated_gpu_fraction"] >= prev["allocated_gpu_fraction"]  # nothing ever leaves
    for p in curve:
        assert 0 <= p["allocated_gpu_fraction"] <= min(p["arrived_fraction"], 1.0) + 1e-12
        assert p["unallocated_gpu_fraction"] == pytest.approx(1 - p["allocated_gpu_fraction"])
    steps = [int(a * 20 + 1e-9) for a in arrived]  # every 0.05 step below the last is sampled
    assert steps[:-1] == sorted(set(steps[:-1]))


def test_alibaba_fill_fgd_leaves_less_unallocated_than_best_fit(shared_data):
    trace = shared_data / "traces" / "alibaba-gpu-v2023"
    runs = {}
    for name in ("fcfs+best-fit", "fcfs+fgd"):
        out, _ = run(RunRequest(f"alibaba-v2023:{trace}", f"alibaba-v2023:{trace}", name, arrivals="fill:1.3"))
        invariants(out["fill_curve"])
        assert out["fill_curve"][-1]["arrived_fraction"] >= 1.3
        assert out["metrics"]["jobs_submitted"] == out["metrics"]["jobs_unschedulable"] + out["metrics"]["jobs_unfinished"]
        runs[name] = out
    assert runs["fcfs+best-fit"]["inputs_sha256"] == runs["fcfs+fgd"]["inputs_sha256"]  # same pods, same order
    at_full = {name: next(p for p in out["fill_curve"] if p["arrived_fraction"] >= 1.0) for name, out in runs.items()}
    assert at_full["fcfs+fgd"]["unallocated_gpu_fraction"] < at_full["fcfs+best-fit"]["unallocated_gpu_fraction"]


def test_fill_refuses_until_and_warmup():
    with pytest.raises(SpecError, match="--until"):
        run(RunRequest("synthetic:jobs=10", "philly-like", "fcfs", until=100.0, arrivals="fill:1"))
