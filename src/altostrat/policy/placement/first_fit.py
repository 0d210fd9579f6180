from dataclasses import dataclass

from altostrat.policy.placement.common import best_over_models, by_index, fill
from altostrat.policy.registry import register


@register("placement", "first-fit", "first node (in node order) with room, filled before the next")
@dataclass(frozen=True)
class FirstFit:
    def place(self, job, state):
        return best_over_models(state, job, lambda model: fill(state, job, by_index(state, model, job)))
