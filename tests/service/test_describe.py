"""`describe job`: the pending reason's precedence, the queue position and the estimated
start, on tiny engines built by hand (no store, no processes)."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.cluster.state import ClusterState, Node
from altostrat.engine import Engine
from altostrat.policy.registry import parse_policy
from altostrat.resources import MILLI
from altostrat.service.describe import describe_job, estimate_start, snapshot
from altostrat.service.quota import QueueQuotaGate
from altostrat.workload.job import Job


class Live:
    """An engine with the quota gate appended, as the reconciler builds it (a job's engine tenant is its queue)."""

    def __init__(self, gpus_per_node: list[int], policy: str = "fcfs+best-fit", quotas: dict | None = None) -> None:
        nodes = [Node(i, f"p/{i}", "p", "T4", g, 16 * MILLI, 64 * 1024) for i, g in enumerate(gpus_per_node)]
        self.gate = QueueQuotaGate({queue: {"quota": quota} for queue, quota in (quotas or {"q": {}}).items()})
        self.policy = policy
        parsed = parse_policy(policy)
        self.engine = Engine(ClusterState(nodes), dataclasses.replace(parsed, gates=(*parsed.gates, self.gate)))
        self.jobs: dict[str, Job] = {}

    def submit(self, name: str, now: float, gpus: float = 1, tasks: int = 1, duration: float = 100.0,
               queue: str = "q") -> Job:
        job = Job(id=name, submit=now, duration=duration, tasks=tasks, gpu_milli=round(gpus * MILLI),
                  cpu_milli=MILLI, mem_mib=1024, tenant=queue, idx=len(self.jobs))
        self.jobs[name] = job
        self.gate.queue_of[job.idx] = queue
        self.engine.submit(job, now)
        return job

    def snap(self, name: str, now: float):
        assert self.jobs[name].idx in self.engine.pending
        return snapshot(self.engine, self.jobs[name], now, 1000.0, self.gate, self.policy)


def test_quota_comes_before_capacity():
    # one 1-GPU node, queue quota 1 GPU, one job running: both quota and capacity hold
    live = Live([1], quotas={"q": {"gpu": 1}})
    live.submit("a", 0)
    live.submit("b", 1)
    snap = live.snap("b", 2)
    assert (snap.reason, snap.message) == ("quota", "queue q uses 1/1 GPUs and the job asks 1 more (no cohort to borrow from)")


def test_quota_holds_a_job_while_gpus_are_free_and_the_estimate_honours_it():
    live = Live([2], quotas={"q": {"gpu": 1}, "other": {}})
    live.submit("a", 0, duration=100)
    live.submit("b", 0, duration=10)
    live.submit("c", 0, duration=30, queue="other")  # another queue takes the free GPU
    assert live.jobs["c"].idx in live.engine.running
    snap = live.snap("b", 40)
    assert snap.reason == "quota"
    assert estimate_start(snap) == pytest.approx(60.0)  # when a ends (100 − 40), not when c ends


def test_capacity_when_no_gpu_model_has_enough_free():
    live = Live([1])
    live.submit("a", 0)
    live.submit("b", 0)
    snap = live.snap("b", 0)
    assert snap.reason == "capacity"
    assert snap.message == "needs 1 GPU, 1 CPU, 1 GiB at once; free now: T4: 0 GPU, 15 CPU, 63 GiB"


def test_gang_when_the_free_gpus_are_split_across_nodes():
    live = Live([2, 2])
    for name in "abcd":
        live.submit(name, 0)  # four 1-GPU jobs fill both nodes
    node_of = {live.engine.running[j.idx].alloc[0][0]: j for j in live.jobs.values()}  # one job per node
    for job in node_of.values():
        live.engine.finish(job, 1)
    assert [sum(n.gpu_free) for n in live.engine.state.nodes] == [MILLI, MILLI]
    live.submit("wide", 2, gpus=2)  # 2 GPUs free in total, 1 per node
    snap = live.snap("wide", 2)
    assert (snap.reason, snap.message) == ("gang", "enough is free in total, but no single node holds its task")
    live.submit("pair", 3, gpus=2, tasks=2)  # 4 GPUs asked, 2 free: capacity comes before gang
    assert live.snap("pair", 3).reason == "capacity"


def test_gang_of_two_tasks_needs_both_at_once():
    live = Live([3, 3, 3])
    live.submit("x1", 0, gpus=2)
    live.submit("x2", 0, gpus=2)
    assert [sum(n.gpu_free) // MILLI for n in live.engine.state.nodes] == [1, 1, 3]
    live.submit("pair", 1, gpus=2, tasks=2)  # 4 of the 5 free GPUs, but only one node has 2 free
    snap = live.snap("pair", 1)
    assert (snap.reason, snap.message) == \
        ("gang", "enough is free in total, but no set of nodes holds all 2 tasks at once")


def test_order_when_it_would_fit_behind_a_blocked_head():
    live = Live([4])  # fcfs without backfill: the head blocks the queue
    live.submit("a", 0, gpus=2)
    live.submit("head", 1, gpus=4)
    live.submit("small", 2, gpus=1)
    head, small = live.snap("head", 3), live.snap("small", 3)
    assert (head.reason, head.position, head.pending) == ("capacity", 0, 2)
    assert (small.reason, small.position) == ("order", 1)
    assert small.message.startswith("it would fit now, but 1 job(s) come first in the policy's order (first: head)")


def test_the_messages_name_no_other_tenants_job():
    # the job's tenant reads its reason: another tenant's job ahead of it is not named
    live = Live([4], quotas={"q": {}, "b": {}})
    live.submit("a", 0, gpus=2)
    live.submit("their-head", 1, gpus=4, queue="b")
    live.submit("small", 2, gpus=1)
    assert live.snap("small", 3).message == ("it would fit now, but 1 job(s) come first in the policy's order "
                                             "(first: a job of another queue) and the policy starts jobs in that order")


@pytest.mark.parametrize("policy, reason", [("drf+best-fit", "fair-share"), ("fcfs+best-fit", "capacity")])
def test_fair_share_only_under_a_fair_share_order(policy, reason):
    live = Live([1], policy=policy, quotas={"x": {}, "y": {}})
    live.submit("x-running", 0, queue="x")
    live.submit("y-first", 1, queue="y")
    live.submit("x-second", 2, queue="x")
    snap = live.snap("x-second", 3)
    assert snap.reason == reason
    if reason == "fair-share":
        assert snap.position == 1
        assert snap.message == "1 job(s) of 1 other queue(s) come first under drf+best-fit's fair-share order"


def test_estimated_start_is_the_running_jobs_expected_time_left():
    live = Live([1])
    live.submit("running", 0, duration=100)
    live.submit("next", 10, duration=50)
    live.submit("after", 20, duration=5)
    assert estimate_start(live.snap("next", 30)) == pytest.approx(70.0)  # 100 expected − 30 elapsed
    assert estimate_start(live.snap("after", 30)) == pytest.approx(120.0)  # then next's 50 s


def test_a_job_past_its_expected_time_is_expected_to_end_now():
    live = Live([1])
    live.submit("late", 0, duration=100)
    live.submit("next", 0)
    assert estimate_start(live.snap("next", 250)) == 0.0


def test_the_snapshot_and_estimate_leave_the_live_engine_alone():
    live = Live([2])
    live.submit("a", 0, gpus=2)
    live.submit("b", 0)
    before = ([list(n.gpu_free) for n in live.engine.state.nodes], dict(live.gate.used), set(live.engine.pending),
              set(live.engine.running))
    estimate_start(live.snap("b", 5))
    after = ([list(n.gpu_free) for n in live.engine.state.nodes], dict(live.gate.used), set(live.engine.pending),
             set(live.engine.running))
    assert after == before


@settings(max_examples=40, deadline=None)
@given(left=st.floats(0, 500), durations=st.lists(st.floats(1, 100), min_size=1, max_size=6))
def test_fcfs_on_one_gpu_starts_each_job_when_those_before_it_end(left, durations):
    live = Live([1])
    live.submit("running", 0, duration=1000)
    for i, d in enumerate(durations):
        live.submit(f"p{i}", 1 + i, duration=d)
    now = 1000 - left  # the running job has `left` seconds of its expected time to go
    for i in range(len(durations)):
        assert estimate_start(live.snap(f"p{i}", now)) == pytest.approx(left + sum(durations[:i]))


def test_a_pending_job_the_engine_does_not_hold_says_why_from_its_status():
    view = {"metadata": {"name": "j", "tenant": "a"}, "spec": {"queue": "q"},
            "status": {"state": "PENDING", "reason": "attempt 1 failed: task 0 exited with code 3; retry 1 of 2 in 1 s",
                       "notBefore": 101.0, "tasks": [
                           {"attempt": 1, "task": 0, "node": "p/0", "devices": "0", "state": "EXITED", "exitCode": 3,
                            "startedAt": 90.0, "endedAt": 100.0, "pid": 7}]}}
    out = describe_job(view, None, 100.5)
    assert out["attempts"] == [{"attempt": 1, "tasks": [{"task": 0, "node": "p/0", "devices": "0", "state": "EXITED",
                                                         "exitCode": 3, "startedAt": 90.0, "endedAt": 100.0}]}]
    assert out["pending"] == {"reason": "retry-backoff", "message": view["status"]["reason"], "queuePosition": None,
                              "pendingJobs": None, "estimatedStart": 101.0}
    assert describe_job(view, None, 102.0)["pending"]["reason"] == "not-admitted"
