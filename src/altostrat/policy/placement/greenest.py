"""`greenest`: the pool of least carbon per unit of work at the hour of the decision (economics.py)."""

from __future__ import annotations

from dataclasses import dataclass

from altostrat.policy.placement.economics import PoolPlacement, gco2_per_work
from altostrat.policy.registry import register


@register("placement", "greenest", "least gCO2e per unit of work over the pools with room, at the grid's current hour")
@dataclass(eq=False)
class Greenest(PoolPlacement):
    reads_grid = True

    def scores(self, job, nodes, hour):
        return [gco2_per_work(job, node, self.intensity(node.region, hour)) for node in nodes]
