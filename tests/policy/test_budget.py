"""The budget gate and the cost-fair order on one priced node, schedules walked by hand.

Every node here costs `price` USD/s and one task takes its whole dominant share, so a 1-GPU
job on a 1-GPU node costs 1 USD per second it holds the node.
"""

import pytest
from helpers import cluster, job, jobs
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altostrat.budgets import TenantBudget, allowance, period_overlaps
from altostrat.cluster.state import ClusterState, Node
from altostrat.engine import PolicyContext
from altostrat.metrics.compute import compute_metrics
from altostrat.policy.gate.budget import NEVER_WITHIN
from altostrat.policy.registry import PolicyError, parse_policy
from altostrat.sim.eventlog import FINISH, REJECT, START, SUBMIT
from altostrat.sim.simulator import simulate
from altostrat.workload.job import Job, number_jobs


def priced(gpus: int = 1, price: float = 1.0, nodes: int = 1) -> ClusterState:
    return ClusterState([Node(i, f"n{i}", "p", "V100", gpus, 8000, 64 * 1024, price_per_s=price) for i in range(nodes)])


def sim(policy, work, state, **budgets):
    context = PolicyContext(budgets={name: TenantBudget(name, **b) for name, b in budgets.items()})
    return simulate(work, state, parse_policy(policy), context=context)


def starts(result):
    out = {}
    for t, k, j in zip(result.log.time, result.log.kind, result.log.job):
        if k == START:
            out.setdefault(result.jobs[j].id, []).append(t)
    return out


def test_period_overlaps_split_an_interval_at_period_edges():
    assert list(period_overlaps(30, 250, 100)) == [(0, 70), (1, 100), (2, 50)]
    assert list(period_overlaps(100, 150, 100)) == [(1, 50)]
    assert list(period_overlaps(5, 5, 100)) == []


def test_a_job_over_the_budget_waits_for_the_next_period_and_does_not_block_others():
    # 2 GPUs at 2 USD/s: a 1-GPU job holds half the node, 1 USD/s. Tenant a: 50 USD per 100 s.
    # a1 runs 0-40 (40 USD in period 0). a2 (30 s) would bring period 0 to 70 at 0 and at 40
    # (a1's finish), so it waits for period 1: 100-130. b has no budget: b1 starts at 5.
    work = jobs(job("a1", 0, 40, tenant="a"), job("a2", 0, 30, tenant="a"), job("b1", 5, 10, tenant="b"))
    r = sim("fcfs+budget", work, priced(gpus=2, price=2.0), a=dict(usd=50, period_s=100))
    assert starts(r) == {"a1": [0], "a2": [100], "b1": [5]}
    m = compute_metrics(r, budgets={"a": TenantBudget("a", usd=50, period_s=100)})
    assert m["budget_overruns"] == 0 and m["per_tenant"]["a"]["cost_usd"] == pytest.approx(70)


def test_a_budget_spent_exactly_still_admits_and_spill_over_counts_in_the_next_period():
    # Tenant a: 100 USD per 100 s on a 1 USD/s node. a1 0-60; a2 (50 s) at 60 puts 40 in
    # period 0 (exactly 100) and 10 in period 1; a3 (95 s) at 110 would put 90 more in
    # period 1 (100 in all, fits) and it starts at once.
    work = jobs(job("a1", 0, 60, tenant="a"), job("a2", 0, 50, tenant="a"), job("a3", 0, 95, tenant="a"))
    policy = parse_policy("fcfs+budget")
    context = PolicyContext(budgets={"a": TenantBudget("a", usd=100, period_s=100)})
    r = simulate(work, priced(), policy, context=context)
    assert starts(r) == {"a1": [0], "a2": [60], "a3": [110]}
    book = policy.gates[0].committed("a")
    assert book[0][0] == pytest.approx(100) and book[1][0] == pytest.approx(10 + 90) and book[2][0] == pytest.approx(5)


def test_a_preempted_run_is_refunded_what_it_did_not_spend():
    # Tenant a: 100 USD per 1000 s. a1 (80 s) commits 80 at 0; b1 (priority 5) preempts it at
    # 20: a1 is refunded 60 (20 spent). At 30 a1 resumes with 60 s left: 20 + 60 = 80 fits
    # (without the refund, 140 would not). a2 (70 s) then needs 150 in period 0: it waits
    # for period 1, 1000-1070.
    work = jobs(job("a1", 0, 80, tenant="a"), job("b1", 20, 10, tenant="b", priority=5),
                job("a2", 25, 70, tenant="a"))
    policy = parse_policy("priority+preempt+budget")
    context = PolicyContext(budgets={"a": TenantBudget("a", usd=100, period_s=1000)})
    r = simulate(work, priced(), policy, context=context)
    assert starts(r) == {"a1": [0, 30], "b1": [20], "a2": [1000]}
    book = policy.gates[0].committed("a")
    assert book[0] == pytest.approx((80, 80 / 3600)) and book[1] == pytest.approx((70, 70 / 3600))


def test_a_gpu_hour_budget_needs_no_prices():
    # unpriced: 2-GPU jobs of 1800 s are 1 GPU-hour each; 1 GPU-hour per hour admits one per hour
    work = jobs(job("a1", 0, 1800, gpus=2, tenant="a"), job("a2", 0, 1800, gpus=2, tenant="a"))
    r = sim("fcfs+budget", work, cluster(("V100", 4, 1)), a=dict(gpu_hours=1.0, period_s=3600))
    assert starts(r) == {"a1": [0], "a2": [3600]}


def test_a_job_no_period_could_hold_is_rejected_with_the_reason():
    # 60 USD in one 100 s period, or 100 USD of a 300 s job's first full period, over 50
    work = jobs(job("a1", 0, 60, tenant="a"), job("a2", 0, 300, tenant="a"), job("a3", 0, 50, tenant="a"))
    r = sim("fcfs+budget", work, priced(), a=dict(usd=50, period_s=100))
    assert starts(r) == {"a3": [0]}
    assert r.reject_reasons == {0: NEVER_WITHIN, 1: NEVER_WITHIN}


def test_the_bound_charges_the_dearest_node_kind_the_job_may_use():
    # two 1-GPU nodes at 1 and 3 USD/s; budget 100 per 1000 s. a1 (30 s) could land on the
    # dear node: 90 USD is tested, so it fits; a2 (30 s) is then tested at 30 actual + 90 > 100
    # although the cheap node is free: it waits for period 1.
    state = ClusterState([Node(0, "cheap", "p", "V100", 1, 8000, 65536, price_per_s=1.0),
                          Node(1, "dear", "q", "V100", 1, 8000, 65536, price_per_s=3.0)])
    work = jobs(job("a1", 0, 30, tenant="a"), job("a2", 0, 30, tenant="a"))
    r = sim("fcfs+first-fit+budget", work, state, a=dict(usd=100, period_s=1000))
    assert starts(r) == {"a1": [0], "a2": [1000]}


def test_the_gate_needs_a_budget():
    with pytest.raises(PolicyError, match="gate budget: no tenant has a budget; pass --budgets"):
        simulate(jobs(job("a", 0, 1)), priced(), parse_policy("fcfs+budget"))
    with pytest.raises(PolicyError, match="gate budget: no tenant has a budget"):
        sim("fcfs+budget", jobs(job("a", 0, 1)), priced(), a=dict(weight=2.0))


# -- cost-fair --------------------------------------------------------------------------


def fair_work():
    return jobs(job("a1", 0, 10, tenant="a"), job("a2", 1, 10, tenant="a"), job("b1", 2, 10, tenant="b"),
                job("b2", 3, 5, tenant="b"))


def test_cost_fair_serves_the_tenant_that_spent_least():
    # at 10 a has spent 10 USD, b nothing: b1 (fcfs would take a2); at 20 both spent 10: the
    # tie goes to the older job a2; at 30 a has 20, b 10: b2
    r = sim("cost-fair", fair_work(), priced())
    assert starts(r) == {"a1": [0], "b1": [10], "a2": [20], "b2": [30]}


def test_cost_fair_divides_spend_by_weight_or_by_budget():
    # a's weight 0.25: at 20 a stands at 10 / 0.25 = 40, b at 10: b2 before a2
    r = sim("cost-fair", fair_work(), priced(), a=dict(weight=0.25))
    assert starts(r) == {"a1": [0], "b1": [10], "b2": [20], "a2": [25]}
    # budgets 100 and 10: at 20 a has used 0.1 of its budget, b all of it: a2 first
    r = sim("cost-fair[share=budget]", fair_work(), priced(), a=dict(usd=100), b=dict(usd=10))
    assert starts(r) == {"a1": [0], "b1": [10], "a2": [20], "b2": [30]}


def test_cost_fair_counts_spend_in_the_current_period_only():
    # weights a 0.5, b 2. In one 30-day period: at 10 a stands at 10 / 0.5 = 20, b at 0: b1
    # 10-20; at 20 a 20, b 10 / 2 = 5: b2 20-25, then a2 at 25.
    r = sim("cost-fair", fair_work(), priced(), a=dict(weight=0.5), b=dict(weight=2.0))
    assert starts(r) == {"a1": [0], "b1": [10], "b2": [20], "a2": [25]}
    # 15 s periods: at 20 (period 1) a's 10 USD are in period 0, b spent 5 in 15-20 (2.5):
    # a2 20-30 before b2 at 30
    r = sim("cost-fair", fair_work(), priced(), a=dict(weight=0.5, period_s=15), b=dict(weight=2.0, period_s=15))
    assert starts(r) == {"a1": [0], "b1": [10], "a2": [20], "b2": [30]}


def test_cost_fair_share_must_be_known():
    with pytest.raises(PolicyError, match="share='dollars': use one of weight, budget"):
        parse_policy("cost-fair[share=dollars]")


# -- property -----------------------------------------------------------------------------

PRICES = {"V100": 3.0 / 4, "K80": 0.5 / 2}  # USD/s per node, by model (one price per model: the metric's first node is exact)


def budget_strategy():
    return st.builds(
        lambda usd, gh, period: dict(usd=usd, gpu_hours=gh, period_s=period),
        st.one_of(st.none(), st.floats(5, 600)), st.one_of(st.none(), st.floats(0.02, 1)), st.floats(50, 1000),
    ).filter(lambda b: b["usd"] is not None or b["gpu_hours"] is not None)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(st.builds(
        lambda submit, duration, gpus, model, tenant, prio: Job(
            id="", submit=submit, duration=duration, tasks=gpus, gpu_milli=1000, cpu_milli=1000,
            gpu_models=(model,) if model else None, tenant=tenant, priority=prio),
        st.floats(0, 500), st.floats(1, 300), st.integers(1, 3), st.sampled_from([None, "V100", "K80"]),
        st.sampled_from(["a", "b", "c"]), st.integers(0, 3)), min_size=1, max_size=40),
    budget_strategy(), budget_strategy(),
    st.sampled_from(["fcfs+budget", "fcfs+backfill+budget", "cost-fair+budget", "cost-fair[share=budget]+budget",
                     "priority+preempt+budget", "las[queues=2,threshold_s=100]+budget"]),
)
def test_enforced_budgets_are_never_exceeded(raw, budget_a, budget_b, policy_name):
    for i, j in enumerate(raw):
        j.id = f"j{i}"
    work = number_jobs(raw)
    nodes = [Node(i, f"n{i}", m, m, g, 8000, 65536, price_per_s=PRICES[m] * g)
             for i, (m, g) in enumerate([("V100", 4), ("V100", 4), ("K80", 2), ("K80", 2)])]
    budgets = {"a": TenantBudget("a", **budget_a), "b": TenantBudget("b", **budget_b)}
    policy = parse_policy(policy_name)
    gate = policy.gates[0]
    started = gate.started

    def checked(job, run, engine, now):  # every commitment, as it is made, stays within the budget
        started(job, run, engine, now)
        b = budgets.get(job.tenant)
        if b is not None:
            for usd, gh in gate.committed(job.tenant).values():
                assert usd <= allowance(b.usd) and gh <= allowance(b.gpu_hours)

    gate.started = checked
    result = simulate(work, ClusterState(nodes), policy, context=PolicyContext(budgets=budgets))
    kinds = list(zip(result.log.kind, result.log.job))
    submitted = {j for k, j in kinds if k == SUBMIT}
    done = {j for k, j in kinds if k in (FINISH, REJECT)}
    assert submitted == done == {j.idx for j in work}, "every job finishes or is rejected"
    m = compute_metrics(result, budgets=budgets)
    assert m["budget_overruns"] == 0
    assert all(m["per_tenant"][t]["budget_overruns"] == 0 for t in budgets if t in m["per_tenant"])
