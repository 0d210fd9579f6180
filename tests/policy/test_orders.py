"""Hand-computed schedules for every order piece, run through the simulator.

Each comment walks the schedule event by event; the asserted times follow from it.
"""

import pytest
from helpers import check_state, cluster, job, jobs

from altostrat.engine import Engine
from altostrat.policy.registry import PolicyError, build_piece, parse_policy
from altostrat.sim.eventlog import KIND_NAMES
from altostrat.sim.simulator import simulate


def trace(result):
    """(time, event, job id) for every start, preemption and finish, in log order."""
    return [
        (t, KIND_NAMES[k], result.jobs[j].id)
        for t, k, j in zip(result.log.time, result.log.kind, result.log.job)
        if KIND_NAMES[k] in ("start", "preempt", "finish")
    ]


def starts(result):
    return {job_id: t for t, kind, job_id in trace(result) if kind == "start"}


def run(policy, workload, state):
    result = simulate(workload, state, parse_policy(policy))
    check_state(state)
    return result


# -- orders whose key is fixed at submission ---------------------------------------------


def static_workload():
    # One GPU. a runs 0-10 alone; b, c and d queue behind it and are ordered at 10.
    return jobs(
        job("a", 0, 10),
        job("b", 1, 8, priority=1, deadline=20.0),
        job("c", 2, 3),  # no priority, no deadline
        job("d", 3, 5, priority=5, deadline=30.0),
    )


@pytest.mark.parametrize(
    "policy, expected",
    [
        # arrival order: b (10-18), c (18-21), d (21-26)
        ("fcfs", {"a": 0, "b": 10, "c": 18, "d": 21}),
        # shortest first by true duration: c 3 s (10-13), d 5 s (13-18), b 8 s (18-26)
        ("sjf", {"a": 0, "c": 10, "d": 13, "b": 18}),
        # highest priority first: d 5 (10-15), b 1 (15-23), c 0 (23-26)
        ("priority", {"a": 0, "d": 10, "b": 15, "c": 23}),
        # earliest deadline first: b at 20 (10-18), d at 30 (18-23), c has none: last (23-26)
        ("edf", {"a": 0, "b": 10, "d": 18, "c": 23}),
    ],
)
def test_static_orders_pick_the_next_job_by_their_key(policy, expected):
    r = run(policy, static_workload(), cluster(("V100", 1, 1)))
    assert starts(r) == expected
    assert max(t for t, kind, _ in trace(r) if kind == "finish") == 26


def test_static_orders_break_ties_by_arrival():
    # b and c tie on duration, priority and deadline; the earlier arrival (b) goes first.
    w = jobs(job("a", 0, 10), job("b", 1, 4, deadline=50.0), job("c", 2, 4, deadline=50.0))
    for policy in ("fcfs", "sjf", "priority", "edf"):
        assert starts(run(policy, w, cluster(("V100", 1, 1)))) == {"a": 0, "b": 10, "c": 14}, policy


# -- las: Tiresias discretized 2D-LAS ----------------------------------------------------


def test_las_demotes_a_job_at_its_threshold_and_preempts_it():
    # One GPU, one threshold at 10 GPU-s. a starts at 0; b arrives at 5 but a (5 GPU-s,
    # queue 0, earlier submit) stays ahead. At exactly 10 a reaches 10 GPU-s, drops to
    # queue 1 (the wake-up is computed, not polled) and b preempts it: b runs 10-20.
    # a resumes at 20 with 20 s of work left and ends at 40.
    w = jobs(job("a", 0, 30), job("b", 5, 10))
    r = run("las[queues=2,threshold_s=10]", w, cluster(("V100", 1, 1)))
    assert trace(r) == [
        (0, "start", "a"),
        (10, "preempt", "a"),
        (10, "start", "b"),
        (20, "finish", "b"),
        (20, "start", "a"),
        (40, "finish", "a"),
    ]


def test_las_resumed_job_pays_the_restart_overhead():
    # As above, but the resumed a first spends restart_s=3: it ends at 20 + 3 + 20 = 43.
    w = jobs(job("a", 0, 30), job("b", 5, 10))
    r = run("las[queues=2,threshold_s=10]+preempt[restart_s=3]", w, cluster(("V100", 1, 1)))
    assert trace(r)[-1] == (43, "finish", "a")


def test_las_counts_service_in_gpu_seconds_and_preempts_whole_gangs():
    # Two GPUs. a holds both from 0, so it gains 2 GPU-s per second: at 1 it has 2 (b waits
    # behind it in queue 0), and it reaches the 10 GPU-s threshold at 1 + 8/2 = 5, not 10.
    # b (1 GPU) then preempts the whole 2-GPU gang and runs 5-9; a needs both GPUs, so it
    # waits until 9 and runs its remaining 20 - 5 = 15 s: 9-24.
    w = jobs(job("a", 0, 20, gpus=2), job("b", 1, 4, gpus=1))
    r = run("las[queues=2,threshold_s=10]", w, cluster(("V100", 2, 1)))
    assert trace(r) == [
        (0, "start", "a"),
        (5, "preempt", "a"),
        (5, "start", "b"),
        (9, "finish", "b"),
        (9, "start", "a"),
        (24, "finish", "a"),
    ]


def test_las_later_thresholds_grow_by_the_factor():
    # thresholds 4 and 4*3 = 12 GPU-s. a is demoted to queue 1 at 4 by b, which itself
    # drops to queue 1 at 4 + 4 = 8; then a (queue 1, earlier) preempts b at 8. a reaches
    # 12 GPU-s (queue 2) at 8 + 8 = 16 and yields to b (queue 1): b runs 16-18 (2 s left
    # of 6), then a finishes its last 20 - 12 = 8 s: 18-26.
    w = jobs(job("a", 0, 20), job("b", 1, 6))
    r = run("las[queues=3,threshold_s=4,factor=3]", w, cluster(("V100", 1, 1)))
    assert trace(r) == [
        (0, "start", "a"),
        (4, "preempt", "a"),
        (4, "start", "b"),
        (8, "preempt", "b"),
        (8, "start", "a"),
        (16, "preempt", "a"),
        (16, "start", "b"),
        (18, "finish", "b"),
        (18, "start", "a"),
        (26, "finish", "a"),
    ]


def starving_workload():
    # One GPU, threshold 10 GPU-s. a is demoted and preempted by b at 10 (a ran 10 s);
    # b (9 s) ends at 19 and c (arrived 14, queue 0) would start ahead of a.
    return jobs(job("a", 0, 20), job("b", 5, 9), job("c", 14, 9))


def test_las_without_promotion_lets_queue_0_jobs_overtake_a_demoted_one():
    # c runs 19-28 and a only resumes at 28, ending at 28 + 10 = 38.
    r = run("las[queues=2,threshold_s=10]", starving_workload(), cluster(("V100", 1, 1)))
    assert trace(r)[3:] == [(19, "finish", "b"), (19, "start", "c"), (28, "finish", "c"), (28, "start", "a"), (38, "finish", "a")]


def test_las_promotes_a_starving_job_after_starve_factor_times_its_last_run():
    # starve_factor=1: a, preempted at 10 after a 10 s run, is promoted to queue 0 at
    # 10 + 1*10 = 20 with its service counted afresh; as the older queue-0 job it preempts
    # c (which started at 19) and runs its 10 s left: 20-30. c resumes with 8 s left: 30-38.
    policy = parse_policy("las[queues=2,threshold_s=10,starve_factor=1]")
    expected = [
        (0, "start", "a"),
        (10, "preempt", "a"),
        (10, "start", "b"),
        (19, "finish", "b"),
        (19, "start", "c"),
        (20, "preempt", "c"),
        (20, "start", "a"),
        (30, "finish", "a"),
        (30, "start", "c"),
        (38, "finish", "c"),
    ]
    assert trace(simulate(starving_workload(), cluster(("V100", 1, 1)), policy)) == expected
    # The same policy object in a second run starts from a clean slate (no stale promotions).
    assert trace(simulate(starving_workload(), cluster(("V100", 1, 1)), policy)) == expected


def test_las_restart_overhead_earns_no_service():
    # One GPU, thresholds 10 and 20, restart 4 s. a is demoted at 10 and preempted by b
    # (10-13); it resumes at 13 but restores until 17, so at 15 it still has 10 GPU-s, at
    # 19 it has 12, and it would cross 20 GPU-s at 17 + 10 = 27 (not 23).
    w = jobs(job("a", 0, 40), job("b", 5, 3))
    engine = Engine(cluster(("V100", 1, 1)), parse_policy("las[queues=3,threshold_s=10]+preempt[restart_s=4]"))
    engine.submit(w[0], 0.0)
    engine.submit(w[1], 5.0)
    assert [(d.kind, d.job.id) for d in engine.wakeup(10.0)] == [("preempt", "a"), ("start", "b")]
    assert [(d.kind, d.job.id) for d in engine.finish(w[1], 13.0)] == [("start", "a")]
    assert engine.attained_service(w[0], 15.0) == 10.0
    assert engine.attained_service(w[0], 19.0) == 12.0
    assert engine.order.wakeup(engine, 13.0) == 27.0


def test_las_promotion_cycles_make_progress_even_when_restarts_cost_more_than_a_turn():
    # Two 8-GPU jobs on 8 GPUs, threshold 5 GPU-s (0.625 s on 8 GPUs), starve_factor 1,
    # restart 2 s: every turn is mostly restart. a runs 0-1 (1 s of work, 8 GPU-s: queue 1)
    # and b preempts it at its arrival. b reaches 5 GPU-s at 1.625 and the older a takes
    # over (restoring until 3.625). b, having waited as long as its last run (0.625 s), is
    # promoted at 2.25 and takes over; a, likewise, is promoted at 2.875 and takes over.
    # From then on each turn is 2 s of restart plus 0.625 s of work (up to the threshold),
    # the two alternating every 2.625 s: 5.5, 8.125, ... At 8.125 a has 9 - 0.625 = 8.375 s
    # left, i.e. 13 turns + 0.25 s: its last turn starts at 8.125 + 13 * 5.25 = 76.375 and
    # ends at 76.375 + 2 + 0.25 = 78.625; b, with 0.625 s left, ends at 78.625 + 2.625.
    # (Were restart time counted as service, no turn would ever do work: a livelock.)
    w = jobs(job("a", 0, 10, gpus=8), job("b", 1, 10, gpus=8))
    r = run("las[queues=2,threshold_s=5,starve_factor=1]+preempt[restart_s=2]", w, cluster(("V100", 8, 1)))
    events = trace(r)
    assert events[:11] == [
        (0, "start", "a"),
        (1, "preempt", "a"),
        (1, "start", "b"),
        (1.625, "preempt", "b"),
        (1.625, "start", "a"),
        (2.25, "preempt", "a"),
        (2.25, "start", "b"),
        (2.875, "preempt", "b"),
        (2.875, "start", "a"),
        (5.5, "preempt", "a"),
        (5.5, "start", "b"),
    ]
    assert events[-4:] == [(76.375, "start", "a"), (78.625, "finish", "a"), (78.625, "start", "b"), (81.25, "finish", "b")]


def test_las_wakeup_is_the_exact_threshold_crossing():
    # Four GPUs. a (2 GPUs) has 6 GPU-s at 3 when b (all 4 GPUs, queue 0) arrives behind
    # it: a crosses 10 GPU-s at 3 + (10 - 6)/2 = 5, and there b preempts it. b then
    # gains 4 GPU-s per second and would fall behind the older a (queue 1) at
    # 5 + 10/4 = 7.5; after a preempts b back, both sit in the last queue and nothing
    # can reorder them: no wake-up.
    w = jobs(job("a", 0, 100, gpus=2), job("b", 3, 50, gpus=4))
    engine = Engine(cluster(("V100", 4, 1)), parse_policy("las[queues=2,threshold_s=10]"))
    engine.submit(w[0], 0.0)
    assert engine.submit(w[1], 3.0) == []
    assert engine.next_wakeup(3.0) == 5.0
    assert [(d.kind, d.job.id) for d in engine.wakeup(5.0)] == [("preempt", "a"), ("start", "b")]
    assert engine.next_wakeup(5.0) == 7.5
    assert [(d.kind, d.job.id) for d in engine.wakeup(7.5)] == [("preempt", "b"), ("start", "a")]
    assert engine.next_wakeup(7.5) is None


# -- drf: dominant resource fairness ---------------------------------------------------


def test_drf_fills_progressively_from_the_poorest_tenant():
    # Four GPUs. z (tenant C, 2 GPUs) runs all along; a1 (A, 2 GPUs) ends at 10. Then
    # A and B both hold nothing: the tie goes to A's oldest job a2 (submitted 1); A now
    # holds 1/4, so B (0) gets the other GPU for b1. At 20 a2 ends first (A back to 0 < B
    # 1/4): a3 starts; then b1 ends and b2 starts. fcfs would run a2 and a3 at 10.
    w = jobs(
        job("z", 0, 100, gpus=2, tenant="C"),
        job("a1", 0, 10, gpus=2, tenant="A"),
        job("a2", 1, 10, tenant="A"),
        job("a3", 2, 10, tenant="A"),
        job("b1", 3, 10, tenant="B"),
        job("b2", 4, 10, tenant="B"),
    )
    r = run("drf", w, cluster(("V100", 4, 1)))
    assert starts(r) == {"z": 0, "a1": 0, "a2": 10, "b1": 10, "a3": 20, "b2": 20}
    assert starts(run("fcfs", w, cluster(("V100", 4, 1)))) == {"z": 0, "a1": 0, "a2": 10, "a3": 10, "b1": 20, "b2": 20}


def test_drf_compares_tenants_on_their_dominant_resource():
    # 4 GPUs and 8 CPUs. B's z holds 1 GPU (1/4) but 6 CPUs (3/4): B's dominant share is
    # 0.75. A's y holds 2 GPUs: 0.5. When x frees a GPU at 10, A goes first although B
    # holds fewer GPUs and submitted earlier: a1 runs 10-15, then b1 15-20.
    w = jobs(
        job("z", 0, 100, tenant="B", cpu_milli=6000),
        job("y", 0, 100, gpus=2, tenant="A"),
        job("x", 0, 10, tenant="C"),
        job("b1", 1, 5, tenant="B", cpu_milli=1000),
        job("a1", 2, 5, tenant="A"),
    )
    r = run("drf", w, cluster(("V100", 4, 1), cpu=8))
    assert starts(r) == {"z": 0, "y": 0, "x": 0, "a1": 10, "b1": 15}


# -- ftf: finish-time fairness --------------------------------------------------------


def test_ftf_runs_the_job_treated_least_fairly_first():
    # One tenant, one GPU: T_isolated is the job's duration. At 10 (a ends)
    # rho(b) = (9 waited + 100 left) / 100 = 1.09 and rho(c) = (8 + 5) / 5 = 2.6: c first.
    w = jobs(job("a", 0, 10), job("b", 1, 100), job("c", 2, 5))
    r = run("ftf", w, cluster(("V100", 1, 1)))
    assert starts(r) == {"a": 0, "c": 10, "b": 15}


def test_ftf_isolated_time_uses_the_tenants_fair_share_of_the_cluster():
    # Two GPUs, two tenants in the system at 10, so each fair share is 1 GPU. b (x) needs 2
    # GPUs: in isolation it would time-share its 1 GPU, T_isolated = 10 * 2 = 20 and
    # rho(b) = (9 + 10) / 20 = 0.95; c (y, 1 GPU): rho(c) = (8 + 10) / 10 = 1.8. c first
    # (10-20), and b, needing both GPUs, waits for it: 20-30. (With a single tenant b
    # would get rho 1.9 and go first.)
    w = jobs(job("a", 0, 10, gpus=2, tenant="x"), job("b", 1, 10, gpus=2, tenant="x"), job("c", 2, 10, tenant="y"))
    r = run("ftf", w, cluster(("V100", 2, 1)))
    assert starts(r) == {"a": 0, "c": 10, "b": 20}


def test_ftf_rho_of_a_running_job_uses_its_speed_and_stays_constant():
    # Only K80s (speed 0.5): v_iso = 0.5, T_isolated = 10 / 0.5 = 20. At 4 the job has
    # done 2 s of reference work; 8 left take 16 s: rho = (4 + 16) / 20 = 1, as at 0.
    state = cluster(("K80", 1, 1))
    engine = Engine(state, parse_policy("ftf"))
    j = jobs(job("a", 0, 10, speeds={"K80": 0.5, "V100": 1.0}))[0]
    engine.submit(j, 0.0)
    ftf = engine.order
    assert ftf.rho(j, engine, 0.0) == pytest.approx(1.0)
    assert ftf.rho(j, engine, 4.0) == pytest.approx(1.0)


# -- parameters and names ---------------------------------------------------------------


def test_las_parameters_parse_and_default():
    las = build_piece("order", "las")
    assert (las.queues, las.threshold_s, las.factor, las.starve_factor) == (3, 3600.0, 2.0, 0.0)
    p = parse_policy("las[queues=4,threshold_s=100,factor=10,starve_factor=2]+consolidate+backfill")
    assert (p.order.queues, p.order.threshold_s, p.order.factor, p.order.starve_factor) == (4, 100.0, 10.0, 2.0)
    assert p.placement.name == "consolidate" and p.backfill is not None
    assert p.preemption is not None and p.preemption.restart_s == 0  # las preempts by itself


@pytest.mark.parametrize(
    "name, message",
    [
        ("las[queues=1]", "las: queues=1 must be >= 2"),
        ("las[queues=two]", "las: parameter queues='two' must be a"),
        ("las[threshold_s=0]", "las: threshold_s=0.0 must be > 0"),
        ("las[factor=1]", "las: factor=1.0 must be > 1"),
        ("las[starve_factor=-1]", "las: starve_factor=-1.0 must be >= 0"),
        ("las[threshold=10]", "las: unknown parameter 'threshold'; its parameters are: queues, threshold_s, factor, starve_factor"),
        ("las[queues]", "parameter 'queues' needs a value"),
        ("drf[weights=2]", "drf: unknown parameter 'weights'; its parameters are: none"),
        ("ftf[n=2]", "ftf: unknown parameter 'n'; its parameters are: none"),
        ("sjf[predicted=true]", "sjf: unknown parameter 'predicted'; its parameters are: none"),
        ("lass", "unknown order policy 'lass'; registered: "),
    ],
)
def test_bad_order_names_say_what_to_fix(name, message):
    with pytest.raises(PolicyError) as err:
        parse_policy(name)
    assert message in str(err.value)
