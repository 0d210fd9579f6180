"""The plan as a rich table: each job's best options by the objective, the chosen one marked."""

from __future__ import annotations

import numpy as np
from rich.table import Table

from altostrat.plan.planner import Plan


def plan_table(plan: Plan, top: int) -> Table:
    table = Table(title=f"plan minimising {plan.objective}: best {top} option(s) per job after pruning",
                  caption="time: submit to finish (window wait, data transfer, expected run); start: seconds from "
                          "the workload's start")
    for col in ("job", "cloud", "region", "instance type", "nodes", "lifecycle", "start s", "time s", "cost USD",
                "kgCO2e", "risk", "CHOSEN"):
        table.add_column(col, justify="right" if col in ("nodes", "start s", "time s", "cost USD", "kgCO2e", "risk")
                         else "left", no_wrap=col in ("job", "instance type"))
    for job, opts, score, k in zip(plan.jobs, plan.options, plan.scores, plan.chosen):
        best = list(np.argsort(score, kind="stable")[:top])
        if k not in best:  # a budget can choose an option outside the top few; show it last
            best[-1] = k
        for row, i in enumerate(best):
            it = plan.table.types[opts.type_idx[i]]
            table.add_row(job.name if row == 0 else "", it.cloud, it.region, it.name, str(opts.nodes[i]),
                          "spot" if opts.spot[i] else "on-demand", f"{opts.start_s[i]:,.0f}", f"{opts.time_s[i]:,.0f}",
                          f"{opts.cost_usd[i]:,.2f}", f"{opts.carbon_kg[i]:,.3f}", f"{opts.risk[i]:g}",
                          "✓" if i == k else "", end_section=row == len(best) - 1)
    return table


def totals_line(plan: Plan) -> str:
    t = plan.totals()
    kept = sum(len(o) for o in plan.options)
    return (f"totals: {t['cost_usd']:,.2f} USD, {t['time_s']:,.0f} job-seconds, {t['carbon_kgco2e']:,.3f} kgCO2e; "
            f"{len(plan.jobs):,} jobs, {plan.enumerated:,} options, {kept:,} after pruning, solved in {plan.solve_s:.3f} s")
