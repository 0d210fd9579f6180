"""Queues: cohorts and borrowing limits (the quota gate), fair share by queue weight, and queue
budgets, on small engines built by hand as the reconciler builds them (docs/service.md, "Queues")."""

from __future__ import annotations

import math

import pytest
from fastapi.testclient import TestClient
from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.cluster.state import ClusterState
from altostrat.engine import REJECT, START, Engine
from altostrat.policy.order.ftf import FinishTimeFairness
from altostrat.policy.registry import parse_policy
from altostrat.resources import MILLI
from altostrat.service.api import create_app
from altostrat.service.describe import snapshot
from altostrat.service.objects import ObjectError, parse_object
from altostrat.service.quota import QueueQuotaGate, book_past_runs, queue_context, queue_policy
from altostrat.service.store import SUCCEEDED
from altostrat.service.twin import pool_nodes
from altostrat.sim import eventlog
from altostrat.sim.simulator import simulate
from altostrat.workload.job import Job, number_jobs
from helpers import check_state, cluster


def queue_job(name: str, queue: str, submit: float = 0.0, duration: float = 10.0, gpus: int = 1, **kw) -> Job:
    """A gang of `gpus` one-GPU tasks whose engine tenant is its queue, as the reconciler's."""
    return Job(id=name, submit=submit, duration=duration, tasks=gpus, gpu_milli=MILLI, tenant=queue, **kw)


class Queues:
    """An engine over `state` with the service's queue gates and context for `queues` (specs)."""

    def __init__(self, queues: dict[str, dict], state: ClusterState, policy: str = "fcfs+first-fit",
                 wall0: float = 0.0) -> None:
        self.gate = QueueQuotaGate(queues)
        self.engine = Engine(state, queue_policy(parse_policy(policy), self.gate, queues), queue_context(queues, wall0))
        self.jobs: dict[str, Job] = {}

    def submit(self, name: str, queue: str, now: float, **kw) -> list[tuple[str, str]]:
        job = queue_job(name, queue, now, **kw)
        job.idx = len(self.jobs)
        self.jobs[name] = job
        self.gate.queue_of[job.idx] = queue
        return [(d.kind, d.job.id) for d in self.engine.submit(job, now)]

    def finish(self, name: str, now: float) -> list[tuple[str, str]]:
        return [(d.kind, d.job.id) for d in self.engine.finish(self.jobs[name], now)]

    def why(self, name: str, now: float) -> str | None:
        return self.gate.blocked(self.jobs[name], self.engine, now)


COHORT = {"a": {"quota": {"gpu": 2}, "cohort": "c", "borrowingLimit": {"gpu": 1}},
          "b": {"quota": {"gpu": 2}, "cohort": "c"}}


def test_a_queue_borrows_within_its_limit_and_the_lender_gets_its_quota_back():
    q = Queues(COHORT, cluster(("T4", 8, 1)))  # 8 GPUs: only the queues bound the jobs
    starts = [q.submit(f"a{i}", "a", 0) for i in range(1, 5)]
    assert starts == [[(START, "a1")], [(START, "a2")], [(START, "a3")], []]  # a3 borrows 1 of b's 2; a4 is beyond
    assert q.why("a4", 0) == ("queue a uses 3/2 GPUs and the job asks 1 more: its borrowing limit is 1 beyond its "
                              "quota (cohort c)")
    assert q.submit("b1", "b", 1) == [(START, "b1")]
    assert q.submit("b2", "b", 1) == []  # within b's own quota, but a holds what b lent it
    assert q.why("b2", 1) == ("queue b uses 1/2 GPUs; cohort c has 0 GPUs to lend (4/4 in use: queue a borrows 1) "
                              "and the job asks 1 more; it waits for the borrowed work to end (the policy does not preempt: "
                              "no reclaim)")
    assert q.gate.used == {"a": [3000, 0, 0], "b": [1000, 0, 0]} and q.gate.cohort_used == {"c": [4000, 0, 0]}
    # a1 ends: a4 comes first in FCFS order and would fit (a 3/3, cohort 4/4) but would borrow
    # again while b2 waits within b's own quota: the lender starts first
    assert q.finish("a1", 2) == [(START, "b2")]
    assert q.why("a4", 2) == "queue a uses 2/2 GPUs; cohort c has 0 GPUs to lend (4/4 in use) and the job asks 1 more"
    assert q.finish("b1", 3) == [(START, "a4")]  # b's idle GPU is lent again
    assert q.gate.used == {"a": [3000, 0, 0], "b": [1000, 0, 0]}
    check_state(q.engine.state, q.engine)


def test_a_zero_borrowing_limit_lends_nothing_and_no_cohort_means_the_quota():
    q = Queues({"a": {"quota": {"gpu": 1}, "cohort": "c", "borrowingLimit": {"gpu": 0}}, "b": {"quota": {"gpu": 3}, "cohort": "c"},
                "solo": {"quota": {"gpu": 1}}}, cluster(("T4", 8, 1)))
    assert q.submit("a1", "a", 0) == [(START, "a1")]
    assert q.submit("a2", "a", 0) == []
    assert q.why("a2", 0) == "queue a uses 1/1 GPUs and the job asks 1 more: its borrowing limit is 0 beyond its quota (cohort c)"
    assert q.submit("s1", "solo", 0) == [(START, "s1")]
    assert q.submit("s2", "solo", 0) == []
    assert q.why("s2", 0) == "queue solo uses 1/1 GPUs and the job asks 1 more (no cohort to borrow from)"


def test_what_a_queue_can_never_hold_is_rejected():
    q = Queues({**COHORT, "open": {"quota": {"gpu": 1}, "cohort": "d"}, "d2": {"quota": {"gpu": 2}, "cohort": "d"}},
               cluster(("T4", 8, 1)))
    [(kind, _)] = q.submit("wide", "a", 0, gpus=4)  # 2 quota + 1 borrowing limit = 3
    assert kind == REJECT
    assert q.engine.state.never_fits(q.jobs["wide"]) is None
    assert q.gate.refuse(q.jobs["wide"], q.engine) == ("asks for more than queue a may ever hold with what it borrows "
                                                         "from cohort c (gpu 4 > 3)")
    assert q.submit("whole", "open", 0, gpus=3) == [(START, "whole")]  # no limit: the cohort's 1 + 2
    assert q.submit("more", "open", 0, gpus=4)[0][0] == REJECT


# -- the invariant: no queue past its quota (+ borrowing limit in a cohort), no cohort past its total --

queue_specs = st.fixed_dictionaries({
    "quota": st.fixed_dictionaries({"gpu": st.integers(0, 4)}),
    "cohort": st.sampled_from([None, "c1", "c2"]),
    "borrow": st.one_of(st.none(), st.integers(0, 3)),
})


@settings(max_examples=60, deadline=None)
@given(specs=st.lists(queue_specs, min_size=1, max_size=4),
       work=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3), st.integers(0, 8), st.integers(1, 5)),
                     min_size=1, max_size=14),
       policy=st.sampled_from(["fcfs+first-fit", "drf+first-fit", "fcfs+first-fit+backfill", "sjf+best-fit"]))
def test_no_queue_exceeds_its_bound_and_no_cohort_its_total(specs, work, policy):
    queues = {}
    for i, s in enumerate(specs):
        spec = {"quota": s["quota"], "cohort": s["cohort"]}
        if s["cohort"] is not None and s["borrow"] is not None:
            spec["borrowingLimit"] = {"gpu": s["borrow"]}
        queues[f"q{i}"] = spec
    names = list(queues)
    jobs = number_jobs([queue_job(f"j{n}", names[qi % len(names)], submit, duration, gpus)
                        for n, (qi, gpus, submit, duration) in enumerate(work)])
    gate = QueueQuotaGate(queues)
    gate.queue_of = {j.idx: j.tenant for j in jobs}
    result = simulate(jobs, cluster(("T4", 4, 2)), queue_policy(parse_policy(policy), gate, queues),
                      context=queue_context(queues, 0.0))

    bound = {q: gpu_bound(spec) for q, spec in queues.items()}
    cohort_total = {c: sum(s["quota"]["gpu"] for s in queues.values() if s["cohort"] == c) for c in ("c1", "c2")}
    used = dict.fromkeys(queues, 0)
    ended, rejected = set(), set()
    for kind, idx in zip(result.log.kind, result.log.job):
        job = jobs[idx] if idx >= 0 else None
        if kind == eventlog.START:
            used[job.tenant] += job.gpus
        elif kind in (eventlog.FINISH, eventlog.PREEMPT):
            used[job.tenant] -= job.gpus
            if kind == eventlog.FINISH:
                ended.add(idx)
        elif kind == eventlog.REJECT:
            rejected.add(idx)
        assert_within_bounds(queues, used)
    # every job ends or is rejected, and only what its queue could never hold is rejected
    assert ended | rejected == {j.idx for j in jobs} and not ended & rejected
    for j in jobs:
        q = j.tenant
        cap = bound[q] if queues[q]["cohort"] is None else min(bound[q], cohort_total[queues[q]["cohort"]])
        assert (j.idx in rejected) == (j.gpus > cap or j.gpus > 8), (j, cap)


# -- fair share by queue weight ----------------------------------------------------------------

@pytest.mark.parametrize("weights, expected", [((2, 1), (4, 2)), ((1, 1), (3, 3))])
def test_drf_gives_a_queue_of_weight_2_twice_the_share_of_weight_1(weights, expected):
    # 6 GPUs held by a blocker while a and b queue 8 one-GPU jobs each; when it ends, one pass
    # fills by progressive filling on dominant share / weight (ties: the older job, a's):
    # a 0 = b 0 → a; a (1/6)/2 = 1/12 > b 0 → b; a 1/12 < b 1/6 → a; a 2/12 = b 1/6 → a;
    # a 3/12 > b 1/6 → b; a 3/12 < b 2/6 → a. So a holds 4 GPUs and b 2: twice the share.
    # Unweighted it is 3 and 3 (the simulator's DRF as before).
    queues = {"a": {"weight": weights[0]}, "b": {"weight": weights[1]}, "x": {}}
    q = Queues(queues, cluster(("T4", 6, 1)), "drf+first-fit")
    assert q.submit("blocker", "x", 0, gpus=6) == [(START, "blocker")]
    for i in range(8):
        q.submit(f"a{i}", "a", 0)
        q.submit(f"b{i}", "b", 0)

    def held() -> tuple[int, int]:
        running = [r.job.tenant for r in q.engine.running.values()]
        return running.count("a"), running.count("b")

    q.finish("blocker", 1)
    assert held() == expected
    # under contention the ratio stays: each GPU freed goes to the queue of least weighted share
    for t, name in enumerate(["a0", "b0", "a1", "b1"], start=2):
        q.finish(name, t)
        assert held() == expected


def test_ftf_gives_a_heavier_queue_a_larger_fair_share_of_the_cluster():
    # 6 GPUs, queues a (weight 2) and b (weight 1) with jobs: a's fair share is 6 × 2/3 = 4 GPUs,
    # so its 6-GPU job of 10 s runs 10 × 6/4 = 15 s in isolation: rho at its submission is
    # 10/15; unweighted (share 3) it is 10/20.
    for weights, rho in (((2, 1), 10 / 15), ((1, 1), 10 / 20)):
        q = Queues({"a": {"weight": weights[0]}, "b": {"weight": weights[1]}}, cluster(("T4", 6, 1)), "ftf+first-fit")
        q.submit("b0", "b", 0)
        q.submit("big", "a", 0, gpus=6)
        order = q.engine.order
        assert isinstance(order, FinishTimeFairness)
        assert order.rho(q.jobs["big"], q.engine, 0.0) == pytest.approx(rho)


# -- budgets -----------------------------------------------------------------------------------

def test_a_gpu_hour_budget_holds_a_job_until_its_period_renews_aligned_to_unix_time():
    # 1 GPU-hour per hour; three 1-GPU jobs of 30 min: two fit this hour, the third waits for the
    # next one. Engine time 0 is Unix time 1000, so periods begin at engine times -1000, 2600, …
    queues = {"q": {"budget": {"gpuHours": 1, "periodS": 3600}}}
    jobs = number_jobs([queue_job(f"j{i}", "q", 0.0, 1800.0) for i in range(3)])
    for wall0, third in ((0.0, 3600.0), (1000.0, 2600.0)):
        gate = QueueQuotaGate(queues)
        gate.queue_of = {j.idx: "q" for j in jobs}
        result = simulate(jobs, cluster(("T4", 4, 1)), queue_policy(parse_policy("fcfs+first-fit"), gate, queues),
                          context=queue_context(queues, wall0))
        starts = sorted(t for t, k in zip(result.log.time, result.log.kind) if k == eventlog.START)
        assert starts == [0.0, 0.0, third]


def test_a_usd_budget_prices_nodes_by_pool_and_describe_names_the_hold():
    # $8 per node-hour for 8 GPUs and 8 vCPUs: a 1-GPU, 1-vCPU task holds 1/8 of the node, $1/h.
    # $1 per hour: two 30-minute jobs commit $1, the third waits for the next period.
    pools = {"p": {"nodes": 1, "gpu": {"model": "T4", "count": 8}, "cpu": 8, "memoryGib": 64, "pricePerHour": 8}}
    q = Queues({"q": {"budget": {"usd": 1, "periodS": 3600}}}, ClusterState(pool_nodes(pools)))
    for name in ("j1", "j2", "j3"):
        q.submit(name, "q", 0, duration=1800)
    assert [r.job.id for r in q.engine.running.values()] == ["j1", "j2"]
    snap = snapshot(q.engine, q.jobs["j3"], 10.0, 1010.0, q.gate, "fcfs+first-fit")
    assert (snap.reason, snap.message) == ("budget", "queue q's budget this period: 1.00 of 1.00 USD committed, "
                                                     "the job may cost 0.50 more; the period renews in 3590 s")


def test_a_rebuilt_engine_books_what_ended_runs_spent_this_period(store):
    for doc in ({"kind": "Tenant", "metadata": {"name": "t"}},
                {"kind": "Queue", "metadata": {"name": "q"}, "spec": {"tenant": "t", "budget": {"gpuHours": 2, "periodS": 3600}}},
                {"kind": "Pool", "metadata": {"name": "p"}, "spec": {"gpu": {"model": "T4", "count": 4}, "cpu": 8, "memoryGib": 8}},
                {"kind": "Job", "metadata": {"name": "done"}, "spec": {"queue": "q", "command": ["true"], "tasks": 2,
                                                                        "resources": {"gpu": 1}}}):
        with store.tx() as conn:
            store.apply(conn, parse_object({"apiVersion": "altostrat/v1", **doc}))
    with store.tx() as conn:
        queues, pools = store.specs(conn, "Queue"), store.specs(conn, "Pool")
        [job] = store.jobs(conn, (("PENDING"),))
        # two tasks of one GPU ran from Unix time 3000 to 4500: 600 s of each in the hour before 3600, 900 s after
        rows = [dict(job_id=job["id"], attempt=1, task=i, state="EXITED", node="p/0", devices=str(i), log_path="x",
                     started_at=3000.0, ended_at=4500.0, exit_code=0) for i in range(2)]
        store.add_tasks(conn, rows)
        store.update_job(conn, job["id"], SUCCEEDED, attempts=1)
    gate = QueueQuotaGate(queues)
    engine = Engine(ClusterState(pool_nodes(pools)), queue_policy(parse_policy("fcfs"), gate, queues),
                    queue_context(queues, 4000.0))
    with store.tx() as conn:
        book_past_runs(engine, conn, 4000.0, 5000.0)
    [budget] = [g for g in engine.gates if g is not gate]
    # engine time 0 is Unix 4000, so the current period [3600, 7200) is index 0 and [0, 3600) is -1
    assert budget.committed("q") == {-1: (0.0, pytest.approx(2 * 600 / 3600)), 0: (0.0, pytest.approx(2 * 900 / 3600))}


# -- validation ---------------------------------------------------------------------------------

@pytest.mark.parametrize("spec, field, message", [
    ({"cohort": "c", "borrowingLimit": {"gpu": -1}}, "spec.borrowingLimit.gpu", "greater than or equal to 0"),
    ({"borrowingLimit": {"gpu": 1}}, "spec.borrowingLimit", "a queue borrows only from a cohort"),
    ({"cohort": "c", "borrowingLimit": {"gpus": 1}}, "spec.borrowingLimit.gpus", "Extra inputs are not permitted"),
    ({"cohort": "bad name"}, "spec.cohort", "should match pattern"),
    ({"budget": {}}, "spec.budget", "a budget needs usd or gpuHours"),
    ({"budget": {"usd": -1}}, "spec.budget.usd", "greater than or equal to 0"),
    ({"budget": {"usd": 1, "periodS": 0}}, "spec.budget.periodS", "greater than 0"),
    ({"weight": 0}, "spec.weight", "greater than 0"),
    ({"lendingLimit": {"gpu": 1}}, "spec.lendingLimit", "Extra inputs are not permitted"),
])
def test_bad_queue_fields_are_named(spec, field, message):
    with pytest.raises(ObjectError) as err:
        parse_object({"apiVersion": "altostrat/v1", "kind": "Queue", "metadata": {"name": "q"},
                      "spec": {"tenant": "t", **spec}})
    [(got_field, got_message)] = err.value.errors
    assert got_field == field and message in got_message


def test_a_pool_price_must_not_be_negative():
    with pytest.raises(ObjectError) as err:
        parse_object({"apiVersion": "altostrat/v1", "kind": "Pool", "metadata": {"name": "p"},
                      "spec": {"cpu": 1, "memoryGib": 1, "pricePerHour": -2}})
    assert err.value.errors[0][0] == "spec.pricePerHour"


def test_the_api_answers_422_naming_the_field(store):
    store.ensure_admin_token("t0k")
    with TestClient(create_app(store, wake=lambda: None), raise_server_exceptions=False) as client:
        auth = {"Authorization": "Bearer t0k"}
        assert client.post("/v1/objects", json={"apiVersion": "altostrat/v1", "kind": "Tenant",
                                                "metadata": {"name": "t"}}, headers=auth).status_code == 201
        r = client.post("/v1/objects", json={"apiVersion": "altostrat/v1", "kind": "Queue", "metadata": {"name": "q"},
                                             "spec": {"tenant": "t", "cohort": "c", "borrowingLimit": {"gpu": -1}}},
                        headers=auth)
        assert r.status_code == 422
        assert [d["field"] for d in r.json()["detail"]] == ["spec.borrowingLimit.gpu"]


def gpu_bound(spec: dict) -> float:
    """The most GPUs a queue may hold, from its spec: its quota, plus its borrowing limit (no
    limit: unbounded) when it is in a cohort."""
    quota = spec["quota"]["gpu"]
    if spec["cohort"] is None:
        return quota
    return quota + spec.get("borrowingLimit", {}).get("gpu", math.inf)


def assert_within_bounds(queues: dict[str, dict], used: dict[str, int]) -> None:
    """No queue holds more GPUs than gpu_bound, no cohort more than its members' quotas."""
    for q, u in used.items():
        assert u <= gpu_bound(queues[q]), (q, u, queues[q])
    for c in {s["cohort"] for s in queues.values()} - {None}:
        total = sum(s["quota"]["gpu"] for s in queues.values() if s["cohort"] == c)
        assert sum(u for q, u in used.items() if queues[q]["cohort"] == c) <= total, c
