"""Metrics on a schedule small enough to compute by hand.

One node, 2 GPUs, 8 cores, fcfs (no backfill):
  a: 1 GPU, submit 0, 10 s, tenant x         -> runs 0-10
  b: 2 GPUs, submit 0, 5 s, tenant y         -> waits for a, runs 10-15
  c: 1 GPU, submit 1, 2 s, tenant x, due 2   -> waits behind b, runs 15-17 (late)
"""

import pytest
from helpers import cluster, job, jobs

from altostrat.metrics.compute import compute_metrics, jain
from altostrat.policy.registry import parse_policy
from altostrat.sim.simulator import simulate


def run(**kw):
    w = jobs(
        job("a", 0, 10, gpus=1, cpu_milli=1000, tenant="x"),
        job("b", 0, 5, gpus=2, cpu_milli=1000, tenant="y"),
        job("c", 1, 2, gpus=1, cpu_milli=1000, tenant="x", deadline=2.0),
    )
    return compute_metrics(simulate(w, cluster(("V100", 2, 1), cpu=8), parse_policy("fcfs+first-fit"), **kw))


def test_hand_computed_metrics():
    m = run()
    assert (m["jobs_submitted"], m["jobs_completed"], m["jobs_unschedulable"], m["jobs_unfinished"]) == (3, 3, 0, 0)
    assert m["avg_jct_s"] == pytest.approx((10 + 15 + 16) / 3)
    assert m["p50_jct_s"] == 15
    assert m["p99_jct_s"] == pytest.approx(15.98)
    assert m["avg_wait_s"] == pytest.approx((0 + 10 + 14) / 3)
    assert m["makespan_s"] == 17
    # GPU-seconds: 1x10 + 2x5 + 1x2 = 22 of 2 GPUs x 17 s
    assert m["gpu_utilization"] == pytest.approx(22 / 34)
    assert m["cpu_utilization"] == pytest.approx(22 / (8 * 17))
    # one GPU idle during 0-10 while b waits; none idle while c waits (10-15)
    assert m["unallocated_gpu_fraction"] == pytest.approx(10 / 34)
    assert m["deadline_violation_rate"] == 1.0
    assert m["preemptions"] == 0
    # service ratio per tenant: x = mean(10/10, 2/16), y = 5/15
    x, y = (1 + 2 / 16) / 2, 5 / 15
    assert m["jain_fairness"] == pytest.approx((x + y) ** 2 / (2 * (x * x + y * y)))
    assert m["decision_p50_us"] > 0


def test_until_stops_the_clock_and_counts_unfinished_jobs():
    m = run(until=12.0)
    assert (m["jobs_completed"], m["jobs_unfinished"]) == (1, 2)
    assert m["gpu_utilization"] == pytest.approx((10 + 2 * 2) / (2 * 12))
    assert m["deadline_violation_rate"] == 1.0  # c is unfinished and past its deadline


def test_warmup_leaves_early_jobs_out_of_job_metrics():
    m = run(warmup=0.5)
    assert m["jobs_submitted"] == 1 and m["avg_jct_s"] == 16
    assert m["jain_fairness"] is None  # one tenant left


def test_jain_index_bounds():
    assert jain([1, 1, 1]) == pytest.approx(1.0)
    assert jain([1, 0, 0, 0]) == pytest.approx(0.25)
    assert jain([5]) is None
