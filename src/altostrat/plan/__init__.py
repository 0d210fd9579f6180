"""`altostrat plan`: where each job of a workload should run, as a MILP over pruned catalog options."""

from altostrat.plan.milp import PlanError
from altostrat.plan.planner import OBJECTIVES, Plan, make_plan

__all__ = ["OBJECTIVES", "Plan", "PlanError", "make_plan"]
