"""Why no plan exists: the constraint that binds, with the figures that show it."""

from __future__ import annotations

import numpy as np

from altostrat.compliance import Place, risk_factors
from altostrat.plan.options import HORIZON_S, CatalogTable, JobOptions, job_options, model_ok, tasks_per_node
from altostrat.spec.schema import JobSpec


def _shown(values, limit: int = 8) -> str:
    values = sorted(set(values))
    more = f", … ({len(values) - limit} more)" if len(values) > limit else ""
    return ", ".join(values[:limit]) + more


def why(job: JobSpec, t: CatalogTable, max_risk: float | None) -> str:
    """Why the job has no option: the first limit that leaves none, with its figures."""
    reason = _no_type(job, t)
    if reason is not None:
        return reason
    opts = job_options(job, t, deadline=False).all()
    if not len(opts):
        return (f"job {job.name}: every option is expected to run longer than the planning horizon "
                f"({HORIZON_S / 86400:g} days): spot without checkpoints restarts a long gang from scratch "
                "at each revocation; set checkpointS or spot: false")
    return _no_option(job, t, opts, max_risk)


def _no_type(job: JobSpec, t: CatalogTable) -> str | None:
    """Why not one instance type of the catalog can run the job; None when some can."""
    where = f"job {job.name}"
    models = model_ok(job, t)
    if not models.any():
        want = "a CPU-only type" if job.resources.gpu == 0 else f"GPU model {', '.join(job.gpu_models or [])}"
        return (f"{where}: no instance type in {t.catalog.origin} carries {want}; "
                f"its GPU models are {_shown(m for m in t.gpu_model if m)}")
    fits = models & (tasks_per_node(job, t) > 0)
    if not fits.any():
        r = job.resources
        return (f"{where}: no instance type with its GPU models holds one task (gpu {r.gpu:g}, cpu {r.cpu:g}, "
                f"memory {r.memory_gib:g} GiB); the largest has {t.gpus[models].max()} GPUs, "
                f"{t.vcpus[models].max():g} vCPUs, {t.memory_gib[models].max():g} GiB")
    allowed = fits & t.allowed_regions(job)[t.region_idx]
    if (allowed & t.has_power).any():
        return None
    if not allowed.any():
        return (f"{where}: residency: none of the regions offering its instance types lies in "
                f"{_shown(job.residency or ())}; they are {_shown(t.regions[r] for r in t.region_idx[fits])}")
    return (f"{where}: no power figures for GPU model(s) {_shown(t.gpu_model[allowed])} "
            "(catalog/power.py GPU_WATTS), so carbon cannot be computed; name other gpuModels")


def _no_option(job: JobSpec, t: CatalogTable, opts: JobOptions, max_risk: float | None) -> str:
    """Why every candidate breaks the job's deadline or the risk cap (opts: all its candidates, at once)."""
    where = f"job {job.name}"
    late = np.zeros(len(opts), dtype=bool) if job.deadline_s is None else job.submit_s + opts.time_s > job.deadline_s
    risky = np.zeros(len(opts), dtype=bool) if max_risk is None else opts.risk > max_risk
    fastest = int(np.argmin(opts.time_s))
    safest = int(np.argmin(opts.risk))
    if late.all():
        it = t.types[opts.type_idx[fastest]]
        return (f"{where}: no option meets its deadline ({job.deadline_s:g} s) — the fastest, {opts.nodes[fastest]} x "
                f"{it.name} in {it.region} started at once, takes {opts.time_s[fastest]:,.0f} s and finishes at "
                f"{job.submit_s + opts.time_s[fastest]:,.0f} s")
    if risky.all():
        it = t.types[opts.type_idx[safest]]
        factors = risk_factors(job.dataset.region if job.dataset else None, Place(it.region, spot=bool(opts.spot[safest])))
        return (f"{where}: no option's risk is within --max-risk {max_risk:g} — the least risky, {it.name} in "
                f"{it.region}, scores {opts.risk[safest]:g} ({', '.join(factors)})")
    ok = ~risky
    fastest_ok = int(np.flatnonzero(ok)[np.argmin(opts.time_s[ok])])
    return (f"{where}: deadline and --max-risk {max_risk:g} together: options within the risk cap finish at "
            f"{job.submit_s + opts.time_s[fastest_ok]:,.0f} s at the earliest, after the deadline {job.deadline_s:g} s")


def over_budget(what: str, cheapest: float, budget: float) -> str:
    return (f"{what}: the cheapest plan costs {cheapest:,.2f} USD > {budget:,.2f} USD; "
            "raise the budget, or relax deadlines, residency or --max-risk")
