"""Jobs from a `kind: Workload` spec file."""

from __future__ import annotations

from altostrat.budgets import budgets_from_specs
from altostrat.resources import MILLI
from altostrat.spec.load import load_one
from altostrat.spec.schema import JobSpec
from altostrat.workload.job import Job


def job_from_spec(spec: JobSpec) -> Job:
    res = spec.resources
    return Job(
        id=spec.name,
        submit=spec.submit_s,
        duration=spec.duration_s,
        tasks=spec.tasks,
        gpu_milli=round(res.gpu * MILLI),
        cpu_milli=round(res.cpu * MILLI),
        mem_mib=round(res.memory_gib * 1024),
        gpu_models=tuple(spec.gpu_models) if spec.gpu_models else None,
        speeds=dict(spec.speeds) if spec.speeds else None,
        tenant=spec.tenant,
        priority=spec.priority,
        deadline=spec.deadline_s,
        job_type=spec.job_type,
        allowed_regions=spec.residency,
        spot=spec.spot,
        checkpoint_s=spec.checkpoint_s,
        dataset_gb=spec.dataset.size_gb if spec.dataset else 0.0,
        data_region=spec.dataset.region if spec.dataset else None,
    )


def jobs_from_file(path: str, ctx=None) -> list[Job]:
    """`ctx` (a WorkloadContext) receives the document's tenant budgets."""
    doc = load_one(path, "Workload")
    if ctx is not None and doc.spec.tenants:
        ctx.budgets = budgets_from_specs(doc.spec.tenants)
    return [job_from_spec(j) for j in doc.spec.jobs]
