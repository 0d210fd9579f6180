"""The `altostrat/v1` spec format: YAML documents with apiVersion, kind, metadata, spec.

Kinds defined here: Cluster (node pools) and Workload (jobs). Later kinds (Tenant, Queue,
Pool, Job, Service) and fields extend these same models. Keys are camelCase as in
Kubernetes; snake_case is accepted too.
"""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic.alias_generators import to_camel

from altostrat.resources import MILLI, check_gpu_milli

API_VERSION = "altostrat/v1"


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Metadata(Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    labels: dict[str, str] = {}


class GpuSpec(Model):
    model: str = Field(min_length=1, description="GPU model, e.g. V100, A100-80GB")
    count: int = Field(ge=1, le=64, description="GPUs per node")


class PoolSpec(Model):
    name: str = Field(min_length=1)
    nodes: int = Field(ge=1, le=100_000, description="number of nodes")
    gpu: GpuSpec | None = None
    cpu: float = Field(gt=0, description="vCPUs per node")
    memory_gib: float = Field(gt=0, description="memory per node in GiB")
    region: str | None = None
    tier: Literal["basic", "elastic", "accelerated"] | None = None


class ClusterBody(Model):
    pools: list[PoolSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_pools(self):
        names = [p.name for p in self.pools]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise ValueError(f"pool names must be unique; repeated: {', '.join(sorted(dup))}")
        return self


class ClusterDoc(Model):
    api_version: Literal["altostrat/v1"]
    kind: Literal["Cluster"]
    metadata: Metadata
    spec: ClusterBody


class ResourcesSpec(Model):
    gpu: float = Field(default=0, ge=0, description="GPUs per task: a share of one (0.5) or whole GPUs (2)")
    cpu: float = Field(default=0, ge=0, description="vCPUs per task")
    memory_gib: float = Field(default=0, ge=0, description="memory per task in GiB")

    @field_validator("gpu")
    @classmethod
    def _gpu_shape(cls, v: float) -> float:
        problem = check_gpu_milli(round(v * MILLI))
        if problem:
            raise ValueError(f"gpu {v}: {problem}")
        return v


class JobSpec(Model):
    name: str = Field(min_length=1)
    submit_s: float = Field(default=0, ge=0, description="arrival, seconds from the start of the workload")
    duration_s: float = Field(gt=0, description="run time at reference speed 1.0")
    tasks: int = Field(default=1, ge=1, le=100_000, description="gang size: tasks that start together")
    resources: ResourcesSpec = ResourcesSpec(gpu=1)
    gpu_models: list[str] | None = Field(default=None, min_length=1)
    speeds: dict[str, float] | None = None
    tenant: str = "default"
    priority: int = 0
    deadline_s: float | None = Field(default=None, ge=0, description="absolute, seconds from the start")
    job_type: str | None = None

    @field_validator("speeds")
    @classmethod
    def _positive_speeds(cls, v):
        if v is not None:
            bad = [m for m, s in v.items() if not s > 0]
            if bad:
                raise ValueError(f"speeds must be > 0; fix: {', '.join(bad)}")
        return v


class WorkloadBody(Model):
    jobs: list[JobSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique_jobs(self):
        seen: set[str] = set()
        for job in self.jobs:
            if job.name in seen:
                raise ValueError(f"job names must be unique; {job.name!r} appears twice")
            seen.add(job.name)
        return self


class WorkloadDoc(Model):
    api_version: Literal["altostrat/v1"]
    kind: Literal["Workload"]
    metadata: Metadata
    spec: WorkloadBody


KINDS: dict[str, type[Model]] = {"Cluster": ClusterDoc, "Workload": WorkloadDoc}
