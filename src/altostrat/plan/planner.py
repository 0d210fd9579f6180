"""`altostrat plan`: options per job, pruning, the MILP, and the plan it yields."""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np

from altostrat.catalog import Catalog, default_catalog
from altostrat.catalog.carbon import CarbonModel
from altostrat.catalog.network import DEFAULT_BANDWIDTH_GBPS
from altostrat.plan import explain
from altostrat.plan.milp import PlanError, scores, solve
from altostrat.plan.options import CatalogTable, JobOptions, job_options
from altostrat.plan.prune import objectives, prune
from altostrat.spec.schema import JobSpec

OBJECTIVES = ("cost", "time", "carbon")  # columns 0..2 of prune.objectives; risk (3) only breaks ties


@dataclass
class Plan:
    objective: str
    jobs: list[JobSpec]
    table: CatalogTable
    options: list[JobOptions]  # per job, after pruning
    scores: list[np.ndarray]  # per job and option: the MILP's objective coefficient
    chosen: list[int]  # per job, an index into its options
    enumerated: int  # options before pruning
    solve_s: float  # options, pruning and the MILP

    def assignments(self) -> list[dict]:
        out = []
        for job, opts, k in zip(self.jobs, self.options, self.chosen):
            it = self.table.types[opts.type_idx[k]]
            out.append({
                "job": job.name, "cloud": it.cloud, "region": it.region, "instance_type": it.name,
                "nodes": int(opts.nodes[k]), "lifecycle": "spot" if opts.spot[k] else "on-demand",
                "start_s": float(opts.start_s[k]), "cost_usd": float(opts.cost_usd[k]),
                "carbon_kgco2e": float(opts.carbon_kg[k]),
            })
        return out

    def totals(self) -> dict[str, float]:
        pick = [(o, k) for o, k in zip(self.options, self.chosen)]
        return {
            "cost_usd": float(sum(o.cost_usd[k] for o, k in pick)),
            "time_s": float(sum(o.time_s[k] for o, k in pick)),  # job-seconds, submit to finish
            "carbon_kgco2e": float(sum(o.carbon_kg[k] for o, k in pick)),
        }

    def to_json(self) -> dict:
        return {"objective": self.objective, "totals": self.totals(), "assignments": self.assignments(),
                "solve_s": self.solve_s}


def make_plan(jobs: list[JobSpec], objective: str = "cost", budget: float | None = None,
              max_risk: float | None = None, catalog: Catalog | None = None, carbon: CarbonModel | None = None,
              tenant_budgets: dict[str, float] | None = None, table: CatalogTable | None = None,
              network_data: str | None = None, bandwidth_gbps: float = DEFAULT_BANDWIDTH_GBPS) -> Plan:
    """The plan minimising `objective` within every job's limits and the budgets; `network_data`
    (egress price matrices) and `bandwidth_gbps` build the CatalogTable when no `table` is given.

    Raises PlanError naming the binding constraint when there is none.
    """
    if objective not in OBJECTIVES:
        raise PlanError(f"--objective {objective!r}: use one of {', '.join(OBJECTIVES)}")
    tenant_budgets = tenant_budgets or {}
    unknown = sorted(set(tenant_budgets) - {j.tenant for j in jobs})
    if unknown:
        raise PlanError(f"--tenant-budget names tenant(s) with no job: {', '.join(unknown)}; "
                        f"tenants: {', '.join(sorted({j.tenant for j in jobs}))}")
    if table is None:
        table = CatalogTable(catalog or default_catalog(), carbon or CarbonModel(), network_data, bandwidth_gbps)
    began = time.perf_counter()
    kept, problems, enumerated = [], [], 0
    for job in jobs:
        every = job_options(job, table)
        enumerated += len(every)
        opts = prune(job, every, max_risk) if len(every) else every
        if not len(opts):
            problems.append(explain.why(job, table, max_risk))
        kept.append(opts)
    if problems:
        raise PlanError("; ".join(problems))
    score = scores(np.concatenate([objectives(o) for o in kept]), OBJECTIVES.index(objective))
    bounds = np.concatenate(([0], np.cumsum([len(o) for o in kept])))
    parts = [score[a:b] for a, b in zip(bounds[:-1], bounds[1:])]
    # The MILP needs only what this objective and the budgets see: per job, the options no
    # other beats on both score and cost (a swap to the better one keeps every budget row).
    cols = [a + for_milp(sc, o.cost_usd) for a, sc, o in zip(bounds[:-1], parts, kept)]
    sizes = [len(c) for c in cols]
    cols = np.concatenate(cols)
    job_of = np.repeat(np.arange(len(jobs)), sizes)
    cost = np.concatenate([o.cost_usd for o in kept])[cols]
    cheapest = np.array([o.cost_usd.min() for o in kept])
    caps: list[tuple[np.ndarray, float]] = []
    if budget is not None:
        if cheapest.sum() > budget:
            raise PlanError(explain.over_budget(f"--budget {budget:g}", cheapest.sum(), budget))
        caps.append((np.ones(len(cols), dtype=bool), budget))
    tenants = np.array([j.tenant for j in jobs])
    for tenant, cap in sorted(tenant_budgets.items()):
        mine = tenants == tenant
        if cheapest[mine].sum() > cap:
            raise PlanError(explain.over_budget(f"tenant {tenant}'s budget {cap:g}", cheapest[mine].sum(), cap))
        caps.append((mine[job_of], cap))
    chosen = solve(job_of, len(jobs), score[cols], cost, caps)
    if chosen is None:  # each job's cheapest option meets every budget at once, so this is numerical
        raise PlanError("HiGHS found no plan within the budgets although each job's cheapest option fits them")
    solve_s = time.perf_counter() - began
    return Plan(objective, list(jobs), table, kept, parts, [int(cols[c] - bounds[j]) for j, c in enumerate(chosen)],
                enumerated, solve_s)


def for_milp(score: np.ndarray, cost: np.ndarray) -> np.ndarray:
    """Indices of the options that no other option of the job matches or beats on both score and cost."""
    order = np.lexsort((cost, score))  # by score, then cost
    c = cost[order]
    best = np.minimum.accumulate(c)
    keep = np.ones(len(c), dtype=bool)
    keep[1:] = c[1:] < best[:-1]  # cheaper than every option that scores at least as well
    return np.sort(order[keep])
