from dataclasses import dataclass

from altostrat.policy.placement.common import best_over_models, by_fit, fill, leftover
from altostrat.policy.registry import register


@register("placement", "best-fit", "tightest node first: least free capacity that still fits (bin packing)")
@dataclass(frozen=True)
class BestFit:
    def place(self, job, state):
        return best_over_models(
            state,
            job,
            lambda model: fill(state, job, by_fit(state, model, job, tightest=True)),
            score=lambda plan: leftover(state, job, plan),
        )
