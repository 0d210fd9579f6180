"""`cheapest`: the pool of least cost per unit of work that holds the gang (economics.py).

With `marginal` (the default) the cost that counts is what placing the job adds to the bill:
a node that is up whatever happens (a static or reserved pool) is already paid for, so work
there costs only its data transfer, while an elastic node is paid only while it is needed.
Ties, and every always-up pool among themselves, go by list price.
"""

from __future__ import annotations

from dataclasses import dataclass

from altostrat.policy.placement.economics import PoolPlacement, usd_per_work
from altostrat.policy.registry import register


@register("placement", "cheapest", "least USD per unit of work over the pools with room; spot for jobs that allow it")
@dataclass(eq=False)
class Cheapest(PoolPlacement):
    marginal: bool = True

    def scores(self, job, nodes, hour):
        egress = self.egress_usd()
        full = [usd_per_work(job, node, egress) for node in nodes]
        if not self.marginal:
            return full
        moved = [usd_per_work(job, node, egress) - usd_per_work(job, node) if node.price_per_s is not None else 0.0
                 for node in nodes]
        return [(f if node.elastic else m, f) for f, m, node in zip(full, moved, nodes)]
