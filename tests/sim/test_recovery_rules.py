"""The recovery strategies' rules and the deadline-aware choice, on hand-checked cases."""

from altostrat.cluster.state import Node
from altostrat.recovery import RULES, STRATEGIES, restart_rule, slack_is_short
from altostrat.resources import MILLI
from tests.helpers import job


def node(idx, pool, region, spot):
    return Node(idx, f"{pool}-{idx}", pool, "V100", 1, 8 * MILLI, 64 * 1024, region=region, spot=spot)


LOST = node(0, "spot-east", "us-east-1", True)
OTHERS = [node(1, "spot-east", "us-east-1", True), node(2, "od-east", "us-east-1", False),
          node(3, "spot-west", "us-west-2", True)]


def allowed(strategy, j=None, work_left=0.0, now=0.0):
    rule = restart_rule(strategy, LOST, j or job("j", 0, 100), work_left, now, restart_s=60)
    return None if rule is None else [n.idx for n in OTHERS if rule(n)]


def test_each_rule_names_the_nodes_it_allows():
    assert allowed("anywhere") is None
    assert allowed("same-pool") == [1]
    assert allowed("next-region") == [3]
    assert allowed("fallback-on-demand") == [2]
    assert STRATEGIES == (*RULES, "deadline-aware")


def test_slack_is_short_when_the_remaining_run_no_longer_fits_twice():
    j = job("j", 0, 1000, deadline=1000.0)
    # 1000 - 60 restart - 470 run = 470: exactly room for the run again
    assert not slack_is_short(j, 470, now=0, restart_s=60)
    assert slack_is_short(j, 471, now=0, restart_s=60)
    assert not slack_is_short(job("k", 0, 1000), 10**9, now=0, restart_s=60)  # no deadline


def test_deadline_aware_falls_back_to_on_demand_only_when_slack_is_short():
    j = job("j", 0, 1000, deadline=1000.0)
    assert allowed("deadline-aware", j, work_left=100) is None
    assert allowed("deadline-aware", j, work_left=600) == [2]
