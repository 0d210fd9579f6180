from dataclasses import dataclass

from altostrat.policy.placement.common import best_over_models, by_fit, fill, leftover
from altostrat.policy.registry import register
from altostrat.resources import MILLI


@register("placement", "consolidate", "gang on the fewest nodes: one node if any fits it, else emptiest nodes first")
@dataclass(frozen=True)
class Consolidate:
    def place(self, job, state):
        def plan_for(model):
            if model is not None and job.gpu_milli >= MILLI:
                whole = job.tasks * (job.gpu_milli // MILLI)
                if whole <= model.max_gpus:
                    for idx in model.ascending(whole):
                        if state.room(state.nodes[idx], job) >= job.tasks:
                            return [(idx, job.tasks)]
            return fill(state, job, by_fit(state, model, job, tightest=False))

        return best_over_models(state, job, plan_for, score=lambda plan: (len(plan), leftover(state, job, plan)))
