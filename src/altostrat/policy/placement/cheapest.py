"""`cheapest`: the pool of least cost per unit of work that holds the gang (economics.py)."""

from __future__ import annotations

from dataclasses import dataclass

from altostrat.policy.placement.economics import PoolPlacement, usd_per_work
from altostrat.policy.registry import register


@register("placement", "cheapest", "least USD per unit of work over the pools with room; spot for jobs that allow it")
@dataclass(eq=False)
class Cheapest(PoolPlacement):
    def scores(self, job, nodes, hour):
        egress = self.egress_usd()
        return [usd_per_work(job, node, egress) for node in nodes]
