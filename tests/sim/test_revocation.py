"""Spot revocation: notice, lost work since the last checkpoint, recovery strategies, and
what the log and the metrics show."""

import dataclasses

import pytest
from helpers import check_state, job, jobs
from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.cluster.state import ClusterState, Node
from altostrat.engine import PREEMPT, REVOKED, START, Engine
from altostrat.metrics.compute import compute_metrics
from altostrat.policy.registry import PolicyError, parse_policy
from altostrat.resources import MILLI
from altostrat.sim.eventlog import FINISH, NODE_DOWN, NODE_UP, NOTICE
from altostrat.sim.simulator import simulate


def node(idx, pool, region="us-east-1", spot=False, gpus=1, price_hr=None, **kw):
    return Node(idx, f"{pool}-{idx}", pool, "V100", gpus, 8 * MILLI, 64 * 1024, region=region, spot=spot,
                price_per_s=None if price_hr is None else price_hr / 3600, **kw)


def two_regions():
    """n0 spot in us-east-1, n1 on-demand in us-east-1, n2 spot in us-west-2."""
    return ClusterState([node(0, "east-spot", spot=True), node(1, "east-od"), node(2, "west-spot", "us-west-2", spot=True)])


def started_on(decisions, engine, name):
    (d,) = [d for d in decisions if d.kind == START and d.job.id == name]
    return engine.running[d.job.idx].alloc[0][0]


def test_spot_is_opt_in_and_residency_is_hard():
    state = two_regions()
    engine = Engine(state, parse_policy("fcfs+first-fit"))
    a, b, c = jobs(job("a", 0, 100), job("b", 0, 100, spot=True, allowed_regions=frozenset({"us-west-2"})),
                   job("c", 0, 100, spot=True, allowed_regions=frozenset({"EU"})))
    assert started_on(engine.submit(a, 0), engine, "a") == 1  # not on the spot node n0, though it comes first
    assert started_on(engine.submit(b, 0), engine, "b") == 2
    (reject,) = engine.submit(c, 0)
    assert reject.reason == "no node in its allowed regions (EU)"


@pytest.mark.parametrize("checkpoint_s, left", [(None, 1000.0), (300.0, 1000.0 - 600.0), (1000.0, 1000.0)])
def test_a_revocation_keeps_work_up_to_the_last_checkpoint(checkpoint_s, left):
    state = ClusterState([node(0, "spot", spot=True)])
    engine = Engine(state, parse_policy("fcfs+first-fit+recover[restart_s=30]"))
    (a,) = jobs(job("a", 0, 1000, spot=True, checkpoint_s=checkpoint_s))
    engine.submit(a, 0)
    engine.cordon(state.nodes[0])  # the notice: nothing new goes there, a runs on
    decisions = engine.revoke(state.nodes[0], 700.0)  # ran 700 s: checkpoints at 300 and 600
    assert [(d.kind, d.reason) for d in decisions] == [(PREEMPT, REVOKED)]
    assert engine.work_left[a.idx] == left and engine.revocations == {a.idx: 1}
    assert a.idx in engine.pending and not state.nodes[0].up
    check_state(state, engine)
    (d,) = engine.node_back(state.nodes[0], 900.0)
    run = engine.running[a.idx]
    assert (d.kind, run.start, run.overhead, run.end) == (START, 900.0, 30.0, 900.0 + 30.0 + left)
    check_state(state, engine)


@pytest.mark.parametrize("strategy, where", [("anywhere", 1), ("same-pool", None), ("next-region", 2),
                                             ("fallback-on-demand", 1)])
def test_recovery_strategies(strategy, where):
    state = two_regions()
    engine = Engine(state, parse_policy(f"fcfs+first-fit+recover[strategy={strategy}]"))
    (a,) = jobs(job("a", 0, 1000, spot=True, checkpoint_s=60.0))
    assert started_on(engine.submit(a, 0), engine, "a") == 0
    decisions = engine.revoke(state.nodes[0], 100.0)
    if where is None:  # same-pool waits for its pool to come back
        assert a.idx in engine.pending
        assert started_on(engine.node_back(state.nodes[0], 500.0), engine, "a") == 0
    else:
        assert started_on(decisions, engine, "a") == where
    assert not state.restrict  # the rule lasts until the job starts again


def test_a_strategy_with_nowhere_to_go_falls_back_to_anywhere():
    state = ClusterState([node(0, "spot", spot=True), node(1, "spot2", spot=True)])
    engine = Engine(state, parse_policy("fcfs+first-fit+recover[strategy=fallback-on-demand]"))
    (a,) = jobs(job("a", 0, 1000, spot=True))
    engine.submit(a, 0)
    assert started_on(engine.revoke(state.nodes[0], 10.0), engine, "a") == 1


@pytest.mark.parametrize("deadline, back_on_spot", [(None, True), (100.0 + 60 + 2 * 940, True),
                                                    (100.0 + 60 + 2 * 940 - 1, False)])
def test_deadline_aware_recovery_keeps_spot_while_the_deadline_affords_it(deadline, back_on_spot):
    """Revoked at 100 after 100 s of running (checkpoints every 60 s: 940 s of work left, 60 s
    restart): back to spot if the deadline leaves room for the rest of the run twice over."""
    state = ClusterState([node(0, "spot", spot=True), node(1, "od")])
    engine = Engine(state, parse_policy("fcfs+first-fit+recover[strategy=deadline-aware]"))
    b, a = jobs(job("b", 0, 10_000), job("a", 0, 1000, spot=True, checkpoint_s=60.0, deadline=deadline))
    engine.submit(b, 0)  # holds the on-demand node
    engine.submit(a, 0)
    assert engine.revoke(state.nodes[0], 100.0)[0].reason == REVOKED and engine.work_left[a.idx] == 940.0
    again = engine.node_back(state.nodes[0], 200.0)
    assert [d.job.id for d in again] == (["a"] if back_on_spot else [])


def test_recover_errors_name_the_choices():
    with pytest.raises(PolicyError, match="use one of anywhere, same-pool, next-region, fallback-on-demand, deadline-aware"):
        parse_policy("fcfs+recover[strategy=elsewhere]")


def hazard_cluster(rate: float, down_s: float):
    return ClusterState([node(i, "spot", spot=True, price_hr=1.0, revocations_per_hour=rate, notice_s=120.0,
                              mean_down_s=down_s) for i in range(3)] + [node(3, "od", price_hr=3.0)])


def test_simulated_revocations_show_in_the_log_and_the_metrics():
    work = jobs(*(job(f"j{i}", i * 600.0, 7200.0, spot=True, checkpoint_s=900.0) for i in range(12)))
    result = simulate(work, hazard_cluster(rate=0.5, down_s=1800.0), parse_policy("fcfs+first-fit"), seed=7)
    log = result.log
    events = list(zip(log.time, log.kind, log.job, log.node))
    downs = [(t, nd) for t, k, _, nd in events if k == NODE_DOWN]
    assert downs, "at 0.5 revocations per node-hour over hours of work some node is revoked"
    for t, nd in downs:  # each revocation was announced 120 s before (or at once, if sooner)
        notices = [tn for tn, k, _, n2 in events if k == NOTICE and n2 == nd and tn <= t]
        assert notices and t - max(notices) <= 120.0 + 1e-9
    # no start lands on a node between its notice and its return
    closed: dict[int, bool] = {}
    for t, k, j, nd in events:
        if k == NOTICE:
            closed[nd] = True
        elif k == NODE_UP:
            closed[nd] = False
        elif k == START:
            assert not closed.get(nd, False), f"start of job {j} on node {nd} while it was revoked"
    finishes = [j for _, k, j, _ in events if k == FINISH]
    assert sorted(finishes) == list(range(12))  # every job ends exactly once
    m = compute_metrics(result)
    assert m["spot_revocations"] == sum(result.revocations.values()) > 0
    assert m["jobs_completed"] == 12
    # cost: every node's price over the window less each spot node's revoked time
    t0, t1 = 0.0, max(log.time)
    down_time = 0.0
    for t, nd in downs:
        ups = [tu for tu, k, _, n2 in events if k == NODE_UP and n2 == nd and tu >= t]
        down_time += (min(ups) if ups else t1) - t
    assert m["cost_usd"] == pytest.approx((3 * 1.0 + 3.0) / 3600 * (t1 - t0) - 1.0 / 3600 * down_time)


def test_same_seed_same_run_other_seed_other_run():
    work = jobs(*(job(f"j{i}", i * 600.0, 7200.0, spot=True) for i in range(8)))
    runs = [simulate([dataclasses.replace(j) for j in work], hazard_cluster(0.5, 600.0), parse_policy("fcfs"), seed=s)
            for s in (1, 1, 2)]
    assert runs[0].log.time == runs[1].log.time
    assert runs[0].log.time != runs[2].log.time


@settings(max_examples=40, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 20_000), st.integers(60, 20_000), st.integers(1, 2), st.booleans(),
                       st.sampled_from([None, 600.0])), min_size=1, max_size=25),
    st.sampled_from(["anywhere", "same-pool", "next-region", "fallback-on-demand"]),
    st.integers(0, 3),
)
def test_jobs_are_conserved_under_revocations(specs, strategy, seed):
    work = jobs(*(job(f"j{i}", s, d, gpus=g, spot=sp, checkpoint_s=cp) for i, (s, d, g, sp, cp) in enumerate(specs)))
    state = ClusterState([node(i, f"p{i % 2}", "us-east-1" if i < 2 else "us-west-2", spot=i != 3, gpus=2,
                               revocations_per_hour=0.0 if i == 3 else 1.0, notice_s=30.0, mean_down_s=900.0)
                          for i in range(4)])
    result = simulate(work, state, parse_policy(f"fcfs+best-fit+backfill+recover[strategy={strategy}]"), seed=seed)
    kinds = list(zip(result.log.kind, result.log.job, result.log.node))
    finished = [j for k, j, _ in kinds if k == FINISH]
    assert sorted(finished) == sorted(set(finished)) == list(range(len(work)))  # once each, none lost
    for k, j, nd in kinds:  # residency: nobody without spot ever ran on a spot node
        if k == START and not work[j].spot:
            assert not state.nodes[nd].spot
    announced = {nd for k, _, nd in kinds if k in (NOTICE, NODE_DOWN)}
    assert all(n.up or n.idx in announced for n in state.nodes)  # a node leaves service only by its notice
    assert sum(result.revocations.values()) == sum(1 for k, _, nd in kinds if k == 3 and nd >= 0)
