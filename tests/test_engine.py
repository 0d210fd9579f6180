"""Hand-computed schedules through the engine and simulator."""

from helpers import cluster, job, jobs

from altostrat.policy.registry import parse_policy
from altostrat.sim.eventlog import FINISH, PREEMPT, START
from altostrat.sim.simulator import simulate


def timeline(result, kind):
    return {result.jobs[j].id: t for t, k, j in zip(result.log.time, result.log.kind, result.log.job) if k == kind}


def test_fcfs_blocks_behind_the_head_without_backfill():
    # 4 GPUs. a(3 GPUs, 0-10). b(2 GPUs) waits for a; c(1 GPU) waits behind b.
    w = jobs(job("a", 0, 10, gpus=3), job("b", 1, 5, gpus=2), job("c", 2, 1, gpus=1))
    r = simulate(w, cluster(("V100", 4, 1)), parse_policy("fcfs+first-fit"))
    assert timeline(r, START) == {"a": 0, "b": 10, "c": 10}
    assert timeline(r, FINISH) == {"a": 10, "b": 15, "c": 11}


def test_easy_backfill_runs_short_jobs_that_do_not_delay_the_head():
    # 4 GPUs. b (all 4) is blocked behind a until 10, with nothing spare then.
    # c ends (3) before b's reservation: it backfills. d (20 s) would delay b: it waits.
    w = jobs(job("a", 0, 10, gpus=3), job("b", 1, 5, gpus=4), job("c", 2, 1, gpus=1), job("d", 2, 20, gpus=1))
    r = simulate(w, cluster(("V100", 4, 1)), parse_policy("fcfs+first-fit+backfill"))
    assert timeline(r, START) == {"a": 0, "c": 2, "b": 10, "d": 15}


def test_easy_backfill_lets_long_jobs_use_gpus_spare_at_the_reservation():
    # b needs 2 of the 4 GPUs free at 10, so 2 are spare: d may run past 10 on one of them.
    w = jobs(job("a", 0, 10, gpus=3), job("b", 1, 5, gpus=2), job("c", 2, 1, gpus=1), job("d", 2, 20, gpus=1))
    r = simulate(w, cluster(("V100", 4, 1)), parse_policy("fcfs+first-fit+backfill"))
    assert timeline(r, START) == {"a": 0, "c": 2, "d": 3, "b": 10}


def test_speed_scales_run_time_per_gpu_model():
    w = jobs(job("a", 0, 100, gpus=1, gpu_models=("K80",), speeds={"K80": 0.25}))
    r = simulate(w, cluster(("K80", 1, 1)), parse_policy("fcfs"))
    assert timeline(r, FINISH)["a"] == 400


def test_unschedulable_job_is_rejected_and_does_not_block():
    w = jobs(job("big", 0, 10, gpus=16), job("a", 1, 5, gpus=1))
    r = simulate(w, cluster(("V100", 4, 2)), parse_policy("fcfs"))
    assert timeline(r, START) == {"a": 1}
    assert r.reject_reasons == {0: "does not fit the cluster even when it is empty"}


def test_preemption_restarts_the_victim_with_its_overhead_and_remaining_work():
    # priority order: high (priority 5) arrives at 4 and preempts low, which did 4 s of work.
    w = jobs(job("low", 0, 10, gpus=2, priority=0), job("high", 4, 3, gpus=2, priority=5))
    r = simulate(w, cluster(("V100", 2, 1)), parse_policy("priority+preempt[restart_s=2]"))
    assert timeline(r, PREEMPT) == {"low": 4}
    assert timeline(r, FINISH) == {"high": 7, "low": 7 + 2 + 6}
