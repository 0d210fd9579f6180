"""Where a job stopped by a spot revocation may start again: the `+recover[strategy=…]` rules.

A strategy maps the revoked node to a rule over nodes (None: any node the job is allowed on).
`deadline-aware` is not a rule of its own: it picks `anywhere` or `fallback-on-demand` per job.
"""

from __future__ import annotations

from collections.abc import Callable

from altostrat.cluster.state import Node
from altostrat.workload.job import Job

Rule = Callable[[Node], bool]

RULES: dict[str, Callable[[Node], Rule | None]] = {
    "anywhere": lambda lost: None,
    "same-pool": lambda lost: lambda n: n.pool == lost.pool,
    "next-region": lambda lost: lambda n: n.region != lost.region,
    "fallback-on-demand": lambda lost: lambda n: not n.spot,
}
STRATEGIES = (*RULES, "deadline-aware")


def slack_is_short(job: Job, work_left: float, now: float, restart_s: float) -> bool:
    """Whether a job could not afford its remaining run twice over before its deadline: then
    another revocation is a risk it should not take."""
    if job.deadline is None:
        return False
    best = max(job.speeds.values(), default=1.0) if job.speeds else 1.0
    run = work_left / best
    return job.deadline - now - restart_s - run < run


def restart_rule(strategy: str, lost: Node, job: Job, work_left: float, now: float,
                 restart_s: float) -> Rule | None:
    """The nodes a revoked job may restart on under `strategy` (None: anywhere it is allowed)."""
    if strategy == "deadline-aware":
        strategy = "fallback-on-demand" if slack_is_short(job, work_left, now, restart_s) else "anywhere"
    return RULES[strategy](lost)
