"""`cost-carbon-time`: a weighted sum of cost, carbon and run time, each over the job's best pool
in that dimension, so that the weights carry no units (economics.py)."""

from __future__ import annotations

import math
from dataclasses import dataclass

from altostrat.policy.placement.economics import PoolPlacement, gco2_per_work, normalised, run_seconds, usd_per_work
from altostrat.policy.registry import register


@register("placement", "cost-carbon-time",
          "least weighted sum of normalised cost, carbon and run time over the pools with room")
@dataclass(eq=False)
class CostCarbonTime(PoolPlacement):
    w_cost: float = 1.0
    w_carbon: float = 1.0
    w_time: float = 1.0

    def __post_init__(self) -> None:
        super().__post_init__()
        weights = (self.w_cost, self.w_carbon, self.w_time)
        if not all(math.isfinite(w) and w >= 0 for w in weights) or not any(weights):
            raise ValueError(f"weights w_cost={self.w_cost}, w_carbon={self.w_carbon}, w_time={self.w_time}: "
                             "each must be finite and >= 0, and one at least > 0")

    @property
    def reads_grid(self) -> bool:
        return self.w_carbon > 0

    def scores(self, job, nodes, hour):
        columns = []
        if self.w_cost:
            egress = self.egress_usd()
            columns.append((self.w_cost, [usd_per_work(job, n, egress) for n in nodes]))
        if self.w_carbon:
            columns.append((self.w_carbon, [gco2_per_work(job, n, self.intensity(n.region, hour)) for n in nodes]))
        if self.w_time:
            transfer = self.transfer_s()
            columns.append((self.w_time, [run_seconds(job, n, transfer) for n in nodes]))
        total = [0.0] * len(nodes)
        for weight, values in columns:
            for i, v in enumerate(normalised(values)):
                total[i] += weight * v
        return total
