"""The `altostrat/v1` spec format: YAML documents with apiVersion, kind, metadata, spec.

Kinds defined here: Cluster (node pools), Workload (jobs) and Tenants (budgets, weights).
Later kinds (Queue, Pool, Job, Service) and fields extend these same models. Keys are camelCase as in
Kubernetes; snake_case is accepted too.
"""

from __future__ import annotations

import math
from typing import Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, field_validator, model_validator
from pydantic.alias_generators import to_camel

from altostrat.budgets import DEFAULT_PERIOD_S
from altostrat.catalog import DEFAULT_RESERVED_DISCOUNT, default_catalog
from altostrat.catalog.regions import JURISDICTIONS
from altostrat.resources import MILLI, check_gpu_milli

API_VERSION = "altostrat/v1"


class Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class Metadata(Model):
    name: str = Field(min_length=1, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
    labels: dict[str, str] = Field(default_factory=dict)  # a factory: a {} default is deep-copied per object


class GpuSpec(Model):
    model: str = Field(min_length=1, description="GPU model, e.g. V100, A100-80GB")
    count: int = Field(ge=1, le=64, description="GPUs per node")


class PoolShape(NamedTuple):
    """A pool's node as the cluster builder needs it, catalog defaults filled in."""

    gpu_model: str | None
    gpus: int
    cpu: float
    memory_gib: float
    region: str | None
    price_hr: float | None  # USD per node-hour under the pool's lifecycle; None without an instance type
    cloud: str | None


class AutoscaleSpec(Model):
    """Nodes beyond `minNodes` are up only while needed: booted for jobs that fit nowhere else,
    released after `idleS` seconds empty. The pool's `nodes` is its maximum."""

    min_nodes: int = Field(default=0, ge=0, description="nodes always up (the pool's floor)")
    # GPU VMs take minutes from request to a usable node (image, drivers); 3 min is our assumption
    boot_s: float = Field(default=180.0, ge=0, description="seconds from request to a usable node; billed")
    # Kubernetes cluster-autoscaler's default --scale-down-unneeded-time is 10 minutes
    idle_s: float = Field(default=600.0, ge=0, description="seconds a node stays empty before it is released")


class PoolSpec(Model):
    name: str = Field(min_length=1)
    nodes: int = Field(ge=1, le=100_000, description="number of nodes")
    instance_type: str | None = Field(default=None, min_length=1,
                                      description="a type of the embedded catalog; gives gpu, cpu, memory and price")
    cloud: str | None = Field(default=None, min_length=1, description="needed only when the type is on several clouds")
    gpu: GpuSpec | None = None
    cpu: float | None = Field(default=None, gt=0, description="vCPUs per node")
    memory_gib: float | None = Field(default=None, gt=0, description="memory per node in GiB")
    region: str | None = None
    tier: Literal["basic", "elastic", "accelerated"] | None = None
    lifecycle: Literal["on-demand", "spot", "reserved"] = "on-demand"
    reserved_discount: float | None = Field(default=None, ge=0, lt=1,
                                            description=f"off on-demand, for reserved; default {DEFAULT_RESERVED_DISCOUNT}")
    revocations_per_hour: float | None = Field(default=None, ge=0,
                                               description="spot only: hazard rate per node; default calibrated per cloud")
    notice_s: float | None = Field(default=None, ge=0, description="spot only: warning before a revocation; default the cloud's")
    autoscale: AutoscaleSpec | None = None
    _shape: PoolShape = PrivateAttr()

    @model_validator(mode="after")
    def _resolve(self):
        if self.reserved_discount is not None and self.lifecycle != "reserved":
            raise ValueError(f"reservedDiscount applies to lifecycle reserved only (this pool is {self.lifecycle})")
        if self.autoscale is not None and self.autoscale.min_nodes > self.nodes:
            raise ValueError(f"autoscale.minNodes {self.autoscale.min_nodes} exceeds nodes {self.nodes} (the maximum)")
        for key, value in (("revocationsPerHour", self.revocations_per_hour), ("noticeS", self.notice_s)):
            if value is not None and self.lifecycle != "spot":
                raise ValueError(f"{key} applies to lifecycle spot only (this pool is {self.lifecycle})")
        if self.instance_type is None:
            if self.cloud is not None or self.lifecycle != "on-demand":
                raise ValueError("cloud and lifecycle need an instanceType: the catalog gives the price")
            missing = [key for key, v in (("cpu", self.cpu), ("memoryGib", self.memory_gib)) if v is None]
            if missing:
                raise ValueError(f"give {' and '.join(missing)}, or an instanceType from the catalog that has them")
            self._shape = PoolShape(self.gpu.model if self.gpu else None, self.gpu.count if self.gpu else 0,
                                    self.cpu, self.memory_gib, self.region, None, None)
            return self
        it = default_catalog().get(self.instance_type, self.region, self.cloud)
        given = {
            "gpu": (self.gpu.model, self.gpu.count) if self.gpu else None,
            "cpu": self.cpu,
            "memoryGib": self.memory_gib,
        }
        catalog = {"gpu": (it.gpu_model, it.gpu_count) if it.gpu_model else None, "cpu": it.vcpus, "memoryGib": it.memory_gib}
        for key, value in given.items():  # what the pool leaves out comes from the catalog
            if value is not None and (value != catalog[key] if key == "gpu" else not math.isclose(value, catalog[key])):
                raise ValueError(f"{key} {_show(value)} does not match instance type {it.name} ({_show(catalog[key])}); "
                                 f"leave {key} out to take the catalog's, or name another type")
        self._shape = PoolShape(it.gpu_model, it.gpu_count, float(it.vcpus), it.memory_gib, it.region,
                                it.price_for(self.lifecycle, self.reserved_discount), it.cloud)
        return self

    @property
    def shape(self) -> PoolShape:
        return self._shape


def _show(value) -> str:
    if isinstance(value, tuple):
        return f"{value[1]} x {value[0]}"
    return "none" if value is None else f"{value:g}"


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


class DatasetSpec(Model):
    size_gb: float = Field(gt=0, description="input read at every start")
    region: str = Field(min_length=1, description="where the data lives; running elsewhere moves it")


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
    allowed_regions: list[str] | None = Field(default=None, min_length=1,
                                              description="regions it may run in (data residency, a hard rule)")
    jurisdictions: list[str] | None = Field(default=None, min_length=1,
                                            description="jurisdiction codes it may run in, e.g. EU, US, GB")
    spot: bool = Field(default=False, description="may run on spot nodes")
    checkpoint_s: float | None = Field(default=None, gt=0, description="seconds of running between checkpoints")
    dataset: DatasetSpec | None = None

    @field_validator("jurisdictions")
    @classmethod
    def _known_codes(cls, v):
        if v is not None:
            bad = [c for c in v if c not in JURISDICTIONS]
            if bad:
                raise ValueError(f"unknown jurisdiction {', '.join(bad)}; use codes of {', '.join(sorted(JURISDICTIONS))}")
        return v

    @property
    def residency(self) -> frozenset[str] | None:
        """Regions and jurisdiction codes together, as the engine checks them."""
        if self.allowed_regions is None and self.jurisdictions is None:
            return None
        return frozenset((self.allowed_regions or []) + (self.jurisdictions or []))

    @field_validator("speeds")
    @classmethod
    def _positive_speeds(cls, v):
        if v is not None:
            bad = [m for m, s in v.items() if not s > 0]
            if bad:
                raise ValueError(f"speeds must be > 0; fix: {', '.join(bad)}")
        return v


class TenantSpec(Model):
    name: str = Field(min_length=1, description="the jobs' tenant field")
    budget_usd: float | None = Field(default=None, ge=0, description="USD per period; none = no dollar limit")
    budget_gpu_hours: float | None = Field(default=None, ge=0, description="GPU-hours per period; none = no limit")
    period_s: float = Field(default=DEFAULT_PERIOD_S, gt=0, description="budget period, seconds (default 30 days)")
    weight: float = Field(default=1.0, gt=0, description="fair-share weight (the cost-fair order)")


def _unique_tenants(tenants: list[TenantSpec] | None) -> list[TenantSpec] | None:
    names = [t.name for t in tenants or ()]
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise ValueError(f"tenant names must be unique; repeated: {', '.join(dup)}")
    return tenants


class WorkloadBody(Model):
    jobs: list[JobSpec] = Field(min_length=1)
    tenants: list[TenantSpec] | None = None

    @model_validator(mode="after")
    def _unique_jobs(self):
        seen: set[str] = set()
        for job in self.jobs:
            if job.name in seen:
                raise ValueError(f"job names must be unique; {job.name!r} appears twice")
            seen.add(job.name)
        _unique_tenants(self.tenants)
        return self


class WorkloadDoc(Model):
    api_version: Literal["altostrat/v1"]
    kind: Literal["Workload"]
    metadata: Metadata
    spec: WorkloadBody


class TenantsBody(Model):
    tenants: list[TenantSpec] = Field(min_length=1)

    @model_validator(mode="after")
    def _unique(self):
        _unique_tenants(self.tenants)
        return self


class TenantsDoc(Model):
    """Budgets and weights for any workload source (--budgets FILE), traces included."""

    api_version: Literal["altostrat/v1"]
    kind: Literal["Tenants"]
    metadata: Metadata
    spec: TenantsBody


KINDS: dict[str, type[Model]] = {"Cluster": ClusterDoc, "Workload": WorkloadDoc, "Tenants": TenantsDoc}
