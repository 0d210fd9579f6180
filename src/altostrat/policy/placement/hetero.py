"""Heterogeneity-aware placement: a greedy approximation of Gavel's max-throughput policy.

Gavel (Narayanan et al., OSDI'20) solves an LP over all jobs at once, giving each job time
shares of each GPU model so that the sum of throughputs is highest; jobs with the
largest speed-up on fast GPUs end up on them (comparative advantage). A placement sees
one job at a time, in the order policy's sequence, so this piece decides greedily:

1. Among the GPU models the job may use that can host the whole gang now, it takes the
   one where the job runs fastest (`job.speed(model)`; jobs without speeds are
   model-indifferent and behave exactly like best-fit).
2. `min_speedup` (>= 1) gives fast GPUs to the jobs that gain most from them: the job
   takes the slowest free model on which it still runs at least 1/min_speedup of its
   speed on its fastest free model, so a job that is barely faster on a V100 than on a
   P100 leaves the V100 to one that is much faster there. 1 (the default) always takes
   the fastest free model.
3. `wait_below` (0..1) decides between a slow model and waiting: a model on which the job
   runs below `wait_below` x its speed on its fastest model in the cluster (free or not)
   is never taken; the job stays pending until a faster one frees up. 0 (the default)
   never waits while any allowed model has room.

Within the chosen model nodes are taken tightest first (best-fit); equal speeds are
broken by the least capacity left on the chosen nodes, as best-fit does across models.
"""

from __future__ import annotations

from dataclasses import dataclass

from altostrat.policy.placement.common import best_over_models, by_fit, fill, leftover
from altostrat.policy.registry import register


@register(
    "placement",
    "hetero",
    "per-GPU-model speed aware: greedy approximation of Gavel's max-throughput allocation (OSDI'20), "
    "best-fit within a model",
)
@dataclass(frozen=True)
class Hetero:
    min_speedup: float = 1.0
    wait_below: float = 0.0

    def __post_init__(self) -> None:
        if not self.min_speedup >= 1.0:
            raise ValueError(f"min_speedup={self.min_speedup} must be >= 1 (1 = always the fastest free model)")
        if not 0.0 <= self.wait_below <= 1.0:
            raise ValueError(f"wait_below={self.wait_below} must be in [0, 1] (0 = never wait for a faster model)")

    def place(self, job, state):
        if not job.gpu_milli:  # CPU-only: no GPU model to choose
            return fill(state, job, by_fit(state, None, job, tightest=True))
        nodes = state.nodes

        def speed(plan):
            return job.speed(nodes[plan[0][0]].gpu_model)

        def fastest(plan):
            return (-speed(plan), leftover(state, job, plan))

        def slowest(plan):
            return (speed(plan), leftover(state, job, plan))

        def tight_above(floor):
            def plan_for(model):
                if job.speed(model.model) < floor:
                    return None
                return fill(state, job, by_fit(state, model, job, tightest=True))

            return plan_for

        floor = self.wait_below * max((job.speed(m.model) for m in state.candidate_models(job)), default=0.0)
        plan = best_over_models(state, job, tight_above(floor), score=fastest)
        if plan is None or self.min_speedup == 1.0:
            return plan
        # Step down to the slowest model still within min_speedup of the fastest free one.
        floor = max(floor, speed(plan) / self.min_speedup)
        return best_over_models(state, job, tight_above(floor), score=slowest)
