"""Invariants of every policy on random workloads and clusters (hypothesis)."""

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from helpers import check_state, cluster

import altostrat.sim.simulator as simulator
from altostrat.engine import Engine
from altostrat.metrics.compute import compute_metrics
from altostrat.policy.registry import parse_policy, pieces
from altostrat.sim.eventlog import FINISH, PREEMPT, REJECT, START, SUBMIT
from altostrat.workload.job import Job, number_jobs


class CheckedEngine(Engine):
    """Checks the state invariants after every engine call."""

    def schedule(self, now):
        decisions = super().schedule(now)
        check_state(self.state, self)
        return decisions


def job_strategy(models):
    return st.builds(
        lambda submit, duration, tasks, share, frac, model, prio, tenant: Job(
            id="", submit=submit, duration=duration, tasks=1 if frac else tasks,
            gpu_milli=share if frac else 1000 * (1 + share % 2),
            cpu_milli=1000, gpu_models=(model,) if model else None, priority=prio, tenant=tenant,
            deadline=submit + 2 * duration,
        ),
        st.floats(0, 500), st.floats(1, 300), st.integers(1, 6), st.integers(100, 900), st.booleans(),
        st.sampled_from([None, *models]), st.integers(0, 3), st.sampled_from(["a", "b", "c"]),
    )


def policy_names():
    import altostrat.policy  # noqa: F401

    orders = list(pieces("order"))
    placements = list(pieces("placement"))
    return st.builds(
        lambda o, p, b, pre: "+".join([o, p] + (["backfill"] if b else []) + (["preempt[restart_s=5]"] if pre else [])),
        st.sampled_from(orders), st.sampled_from(placements), st.booleans(), st.booleans(),
    )


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(job_strategy(["V100", "K80"]), min_size=1, max_size=40), policy_names())
def test_every_policy_keeps_the_invariants(raw_jobs, policy_name):
    for i, j in enumerate(raw_jobs):
        j.id = f"j{i}"
    jobs = number_jobs(raw_jobs)
    state = cluster(("V100", 4, 2), ("K80", 2, 2), cpu=8)
    original = simulator.Engine
    simulator.Engine = CheckedEngine
    try:
        result = simulator.simulate(jobs, state, parse_policy(policy_name))
    finally:
        simulator.Engine = original
    kinds = list(zip(result.log.kind, result.log.job))
    started = {}
    for kind, j in kinds:
        if kind == START:
            assert started.get(j, 0) == 0, "a job placed twice"
            started[j] = 1
        elif kind in (FINISH, PREEMPT):
            assert started.get(j) == 1
            started[j] = 0
    submitted = {j for k, j in kinds if k == SUBMIT}
    finished = {j for k, j in kinds if k == FINISH}
    rejected = {j for k, j in kinds if k == REJECT}
    assert submitted == {j.idx for j in jobs}
    assert finished | rejected == submitted and not finished & rejected, "every job completes or is reported"
    assert state.gpu_allocated_milli == 0 and state.cpu_allocated_milli == 0
    m = compute_metrics(result)
    for key in ("gpu_utilization", "cpu_utilization", "unallocated_gpu_fraction", "deadline_violation_rate", "jain_fairness"):
        assert m[key] is None or 0 <= m[key] <= 1 + 1e-9, key
    assert m["jobs_completed"] + m["jobs_unschedulable"] == m["jobs_submitted"]
