from dataclasses import dataclass

from altostrat.policy.placement.common import best_over_models, by_fit, fill, leftover
from altostrat.policy.registry import register


@register("placement", "spread", "emptiest node first, one task per node while nodes last (load spreading)")
@dataclass(frozen=True)
class Spread:
    def place(self, job, state):
        def plan_for(model):
            plan = fill(state, job, by_fit(state, model, job, tightest=False), per_node=1)
            return plan or fill(state, job, by_fit(state, model, job, tightest=False))

        return best_over_models(state, job, plan_for, score=lambda plan: -leftover(state, job, plan))
