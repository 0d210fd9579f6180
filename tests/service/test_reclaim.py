"""Reclaim: a lender whose quota its cohort has lent out takes it back by preempting borrowed
work, under a policy that preempts; without preemption it waits (docs/service.md, "Queues")."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.engine import PREEMPT, RECLAIMED, START
from altostrat.policy.registry import parse_policy
from altostrat.service.describe import snapshot
from altostrat.service.quota import QueueQuotaGate, queue_context, queue_policy
from altostrat.sim import eventlog
from altostrat.sim.simulator import simulate
from altostrat.workload.job import number_jobs
from helpers import check_state, cluster
from service.test_queues import Queues, assert_within_bounds, queue_job

PREEMPTING = "fcfs+first-fit+preempt"
LEND = {"a": {"quota": {"gpu": 2}, "cohort": "c"}, "b": {"quota": {"gpu": 2}, "cohort": "c"}}


def b_borrows_all(q: Queues, **priorities: int) -> None:
    """b starts b1..b4 of one GPU each at times 0..3: b1, b2 within its quota, b3, b4 on a's."""
    for t, name in enumerate(("b1", "b2", "b3", "b4")):
        assert q.submit(name, "b", t, duration=100, priority=priorities.get(name, 0)) == [(START, name)]


def test_reclaim_preempts_the_newest_borrowed_job_and_starts_the_lenders_at_once():
    q = Queues(LEND, cluster(("T4", 1, 4)), PREEMPTING)
    b_borrows_all(q)
    assert q.submit("a1", "a", 10) == [(PREEMPT, "b4"), (START, "a1")]
    assert q.submit("a2", "a", 11) == [(PREEMPT, "b3"), (START, "a2")]
    # a holds its quota: a3 would borrow, and b1, b2 run within b's quota: nothing more is preempted
    assert q.submit("a3", "a", 12) == []
    assert q.why("a3", 12) == "queue a uses 2/2 GPUs; cohort c has 0 GPUs to lend (4/4 in use) and the job asks 1 more"
    assert sorted(q.engine.running) == [q.jobs[n].idx for n in ("b1", "b2", "a1", "a2")]
    assert q.gate.used == {"a": [2000, 0, 0], "b": [2000, 0, 0]}
    assert q.engine.work_left[q.jobs["b4"].idx] == 100 - (10 - 3)  # it keeps its progress
    check_state(q.engine.state, q.engine)
    # a1 ends: lenders first, a3 (within a's quota again) starts before b's preempted jobs borrow
    assert q.finish("a1", 20) == [(START, "a3")]
    assert q.finish("a2", 21) == [(START, "b3")]  # a has nothing more waiting: b borrows again
    assert q.finish("a3", 22) == [(START, "b4")]


def test_the_preemptions_carry_the_reclaim_reason():
    q = Queues(LEND, cluster(("T4", 1, 4)), PREEMPTING)
    b_borrows_all(q)
    job = queue_job("a1", "a", 10)
    job.idx = len(q.jobs)
    q.jobs["a1"] = job
    q.gate.queue_of[job.idx] = "a"
    [preempt, start] = q.engine.submit(job, 10)
    assert (preempt.kind, preempt.job.id, preempt.reason) == (PREEMPT, "b4", RECLAIMED)
    assert (start.kind, start.job.id) == (START, "a1")


def test_victims_go_lowest_priority_first_then_newest():
    q = Queues(LEND, cluster(("T4", 1, 4)), PREEMPTING)
    b_borrows_all(q, b1=5, b3=1)  # b2 and b4 have priority 0: b4 is the newer
    assert q.submit("a1", "a", 10, gpus=2) == [(PREEMPT, "b4"), (PREEMPT, "b2"), (START, "a1")]
    assert sorted(r.job.id for r in q.engine.running.values()) == ["a1", "b1", "b3"]


def test_a_job_running_partly_within_its_queues_quota_is_never_reclaimed():
    q = Queues(LEND, cluster(("T4", 1, 4)), PREEMPTING)
    assert q.submit("big", "b", 0, duration=100, gpus=3) == [(START, "big")]  # 2 within b's quota, 1 borrowed
    assert q.submit("small", "b", 1, duration=100) == [(START, "small")]  # borrowed
    # a1 needs 2 GPUs back: small returns 1; big would take b below its quota, so none is reclaimed
    assert q.submit("a1", "a", 2, gpus=2) == []
    assert q.why("a1", 2) == ("queue a uses 0/2 GPUs; cohort c has 0 GPUs to lend (4/4 in use: queue b borrows 2) "
                              "and the job asks 2 more; it waits for the borrowed work to end (too little of it runs "
                              "wholly beyond its queue's quota to reclaim)")
    # a2 needs 1: small is enough, big runs on
    assert q.submit("a2", "a", 3) == [(PREEMPT, "small"), (START, "a2")]
    assert sorted(r.job.id for r in q.engine.running.values()) == ["a2", "big"]


def test_without_preemption_the_lender_waits_and_describe_says_so():
    q = Queues(LEND, cluster(("T4", 1, 4)), "fcfs+first-fit")
    b_borrows_all(q)
    assert q.submit("a1", "a", 10) == []
    snap = snapshot(q.engine, q.jobs["a1"], 10, 1010, q.gate, "fcfs+first-fit")
    assert (snap.reason, snap.message) == (
        "quota", "queue a uses 0/2 GPUs; cohort c has 0 GPUs to lend (4/4 in use: queue b borrows 2) and the job "
                 "asks 1 more; it waits for the borrowed work to end (the policy does not preempt: no reclaim)")
    assert q.finish("b1", 11) == [(START, "a1")]  # the first stop returns a GPU to the cohort
    assert len(q.engine.running) == 4


def test_no_reclaim_when_the_lenders_job_cannot_place_on_what_it_frees():
    # a1 runs only on A100s; b borrows T4s and the one A100 is held by a queue outside the cohort:
    # preempting a T4 job would not let a1 start, so nothing is preempted
    queues = {**LEND, "x": {"quota": {"gpu": 1}}}
    q = Queues(queues, cluster(("T4", 1, 4), ("A100", 1, 1)), PREEMPTING)
    assert q.submit("x1", "x", 0, duration=100, gpu_models=frozenset({"A100"})) == [(START, "x1")]
    b_borrows_all(q)
    assert q.submit("a1", "a", 10, gpu_models=frozenset({"A100"})) == []
    # describe promises the reclaim for when a1 can start in the borrowed jobs' place
    snap = snapshot(q.engine, q.jobs["a1"], 10, 1010, q.gate, PREEMPTING)
    assert snap.message.endswith("; reclaim under way: 1 borrowed job(s) of queue b are preempted for it once it can "
                                 "start in their place, at its turn in the policy's order")
    assert q.finish("x1", 11) == [(PREEMPT, "b4"), (START, "a1")]  # the A100 is free: now the reclaim lets a1 start
    check_state(q.engine.state, q.engine)


def test_a_lender_also_held_by_its_budget_reclaims_once_the_budget_renews():
    # a's budget is 0.5 GPU-hours an hour, all committed by a0: a1 is held by the budget gate as well
    # as by the quota gate, and a reclaim would not let it start. At 3600 s the budget renews: the
    # wake-up looks again, and now the quota gate alone holds it
    queues = {"a": {"quota": {"gpu": 2}, "cohort": "c", "budget": {"gpuHours": 0.5, "periodS": 3600}},
              "b": {"quota": {"gpu": 2}, "cohort": "c"}}
    q = Queues(queues, cluster(("T4", 1, 4)), PREEMPTING)
    assert q.submit("a0", "a", 0, duration=1800) == [(START, "a0")]
    assert q.finish("a0", 1800) == []
    for t, name in enumerate(("b1", "b2", "b3", "b4"), start=1801):
        assert q.submit(name, "b", t, duration=10_000) == [(START, name)]
    assert q.submit("a1", "a", 1900) == []
    assert q.engine.next_wakeup(1900) == 3600
    assert [(d.kind, d.job.id) for d in q.engine.wakeup(3600)] == [(PREEMPT, "b4"), (START, "a1")]


def test_describe_names_the_reclaim_of_a_lender_behind_a_blocked_head():
    # fcfs without backfill stops at a head that does not fit: a1 behind it is not reached yet
    queues = {**LEND, "x": {}}
    q = Queues(queues, cluster(("T4", 1, 5)), PREEMPTING)
    b_borrows_all(q)
    assert q.submit("x1", "x", 4, duration=100) == [(START, "x1")]
    assert q.submit("wide", "x", 5, gpus=5) == []  # the head: it waits for the whole cluster
    assert q.submit("a1", "a", 6) == []
    snap = snapshot(q.engine, q.jobs["a1"], 6, 1006, q.gate, PREEMPTING)
    assert (snap.reason, snap.message) == (
        "quota", "queue a uses 0/2 GPUs; cohort c has 0 GPUs to lend (4/4 in use: queue b borrows 2) and the job "
                 "asks 1 more; reclaim under way: 1 borrowed job(s) of queue b are preempted for it once it can start "
                 "in their place, at its turn in the policy's order")


# -- the invariants, on random cohorts, quotas and arrivals under preempting policies --------------

queue_specs = st.fixed_dictionaries({
    "quota": st.integers(0, 4),
    "cohort": st.sampled_from([None, "c1", "c1", "c2"]),  # mostly one shared cohort: reclaims are common
    "borrow": st.one_of(st.none(), st.integers(0, 3)),
})


@settings(max_examples=120, deadline=None)
@given(specs=st.lists(queue_specs, min_size=2, max_size=4),
       work=st.lists(st.tuples(st.integers(0, 3), st.integers(1, 3), st.integers(0, 8), st.integers(1, 5),
                               st.integers(0, 2)), min_size=1, max_size=16),
       policy=st.sampled_from(["fcfs+first-fit+preempt", "priority+first-fit+preempt", "drf+first-fit+preempt",
                               "sjf+best-fit+backfill+preempt[restart_s=1]"]))
def test_reclaim_keeps_every_bound_and_takes_only_borrowed_work(specs, work, policy):
    queues = {}
    for i, s in enumerate(specs):
        spec = {"quota": {"gpu": s["quota"]}, "cohort": s["cohort"]}
        if s["cohort"] is not None and s["borrow"] is not None:
            spec["borrowingLimit"] = {"gpu": s["borrow"]}
        queues[f"q{i}"] = spec
    names = list(queues)
    jobs = number_jobs([queue_job(f"j{n}", names[qi % len(names)], submit, duration, gpus, priority=prio)
                        for n, (qi, gpus, submit, duration, prio) in enumerate(work)])
    gate = QueueQuotaGate(queues)
    gate.queue_of = {j.idx: j.tenant for j in jobs}
    # one GPU per node and as many nodes as the queues' quotas add up to: whatever the gate admits
    # places, so the engine never preempts to make room and every preemption is a reclaim
    capacity = sum(s["quota"]["gpu"] for s in queues.values())
    result = simulate(jobs, cluster(("T4", 1, max(capacity, 1))), queue_policy(parse_policy(policy), gate, queues),
                      context=queue_context(queues, 0.0))

    def quota(q: str) -> int:
        return queues[q]["quota"]["gpu"]

    used = dict.fromkeys(queues, 0)
    running, finished, rejected = set(), [], set()
    for kind, idx in zip(result.log.kind, result.log.job):
        job = jobs[idx] if idx >= 0 else None
        if kind == eventlog.START:
            assert idx not in running, f"{job.id} started twice at once"
            running.add(idx)
            used[job.tenant] += job.gpus
        elif kind == eventlog.PREEMPT:
            # a reclaim: the victim's queue borrows, and without it still holds at least its quota
            assert queues[job.tenant]["cohort"] is not None, job
            assert used[job.tenant] - job.gpus >= quota(job.tenant), (job, used, queues[job.tenant])
            running.remove(idx)
            used[job.tenant] -= job.gpus
        elif kind == eventlog.FINISH:
            running.remove(idx)
            used[job.tenant] -= job.gpus
            finished.append(idx)
        elif kind == eventlog.REJECT:
            rejected.add(idx)
        assert_within_bounds(queues, used)
    # every job ends exactly once, or is rejected
    assert sorted(finished) == sorted(set(finished)) and set(finished) | rejected == {j.idx for j in jobs}
    assert not set(finished) & rejected and not running
