"""The control plane's declarative objects: the `altostrat/v1` spec format, extended.

Each object is `{apiVersion: altostrat/v1, kind, metadata: {name, labels}, spec}` with
camelCase keys, like the simulator's Cluster and Workload documents (spec/schema.py), whose
Metadata and GpuSpec it reuses. A Queue names its Tenant, a Job names its Queue.
"""

from __future__ import annotations

import signal
from typing import Annotated, Literal

from pydantic import Field, ValidationError, ValidationInfo, field_validator, model_validator

from altostrat.budgets import DEFAULT_PERIOD_S
from altostrat.spec.schema import API_VERSION, GpuSpec, Metadata, Model, ResourcesSpec

# a live job's run time is unknown; the engine still needs one for EASY backfill and SJF
DEFAULT_EXPECTED_DURATION_S = 3600.0
MAX_NAME = 253
MAX_SERVICE_NAME = MAX_NAME - 13  # room for a replica's "-N" suffix
MAX_DEPENDENCIES = 64
NAME_PATTERN = next(m.pattern for m in Metadata.model_fields["name"].metadata if hasattr(m, "pattern"))
JobName = Annotated[str, Field(min_length=1, max_length=MAX_NAME, pattern=NAME_PATTERN)]


class ObjectError(ValueError):
    """An invalid object: `errors` lists (field path, message) pairs, paths like `spec.resources.gpu`."""

    def __init__(self, errors: list[tuple[str, str]]) -> None:
        super().__init__("; ".join(f"{field}: {msg}" for field, msg in errors))
        self.errors = errors


class TenantSpec(Model):
    display_name: str | None = Field(default=None, max_length=200)


class QuotaSpec(Model):
    """The most a queue's running jobs may hold at once; a resource left out is unlimited."""

    gpu: float | None = Field(default=None, ge=0, description="GPUs")
    cpu: float | None = Field(default=None, ge=0, description="vCPUs")
    memory_gib: float | None = Field(default=None, ge=0, description="GiB")


class BorrowingLimitSpec(QuotaSpec):
    """The most a queue may hold beyond its quota, borrowed from its cohort; a resource left out is uncapped."""


class QueueBudgetSpec(Model):
    """What a queue's runs may cost per period (docs/service.md, "Queues"); a limit left out is none."""

    usd: float | None = Field(default=None, ge=0, description="USD per period, at its Pools' pricePerHour")
    gpu_hours: float | None = Field(default=None, ge=0, description="GPU-hours per period")
    period_s: float = Field(default=DEFAULT_PERIOD_S, gt=0, description="seconds; periods start at multiples of it "
                                                                         "in Unix time (default 30 days)")

    @model_validator(mode="after")
    def _some_limit(self) -> QueueBudgetSpec:
        if self.usd is None and self.gpu_hours is None:
            raise ValueError("a budget needs usd or gpuHours (or leave budget out)")
        return self


class QueueSpec(Model):
    tenant: str = Field(min_length=1, description="the Tenant this queue belongs to")
    quota: QuotaSpec = QuotaSpec()
    weight: float = Field(default=1.0, gt=0, description="fair-share weight: fair-share orders rank its share / weight")
    cohort: str | None = Field(default=None, min_length=1, max_length=MAX_NAME, pattern=r"^[A-Za-z0-9][A-Za-z0-9._-]*$",
                               description="queues naming the same cohort borrow each other's unused quota")
    borrowing_limit: BorrowingLimitSpec | None = Field(default=None, description="the most it may hold beyond its "
                                                                                 "quota (none: no cap)")
    budget: QueueBudgetSpec | None = None


class PoolSpec(Model):
    """Capacity offered to the executor: `nodes` identical nodes. A GPU count may be declared on
    a machine without GPUs (for testing): devices are only numbers in CUDA_VISIBLE_DEVICES."""

    nodes: int = Field(default=1, ge=1, le=10_000)
    gpu: GpuSpec | None = None
    cpu: float = Field(gt=0, description="vCPUs per node")
    memory_gib: float = Field(gt=0, description="memory per node in GiB")
    region: str | None = Field(default=None, min_length=1)
    price_per_hour: float | None = Field(default=None, ge=0, description="USD per node-hour, for queue budgets in USD")


class JobResources(ResourcesSpec):
    """A live task's resources: as a Workload's, with one vCPU by default."""

    cpu: float = Field(default=1, ge=0, description="vCPUs per task")
    memory_gib: float = Field(default=0, ge=0, description="memory per task in GiB; enforced with cgroup v2 or RLIMIT_AS")


class JobSpec(Model):
    queue: str = Field(min_length=1, description="the Queue it is submitted to")
    command: list[str] = Field(min_length=1, description="program and arguments, run without a shell")
    env: dict[str, str] = Field(default_factory=dict)  # not {}: pydantic deep-copies that per object
    working_dir: str | None = Field(default=None, min_length=1, description="default: the job's folder in the data dir")
    resources: JobResources = JobResources()
    tasks: int = Field(default=1, ge=1, le=1024, description="gang size: tasks that start together")
    priority: int = 0
    deadline_s: float | None = Field(default=None, gt=0, description="seconds after submission it should end by")
    expected_duration_s: float = Field(default=DEFAULT_EXPECTED_DURATION_S, gt=0,
                                       description="run-time estimate the engine plans with (backfill, SJF)")
    retries: int = Field(default=0, ge=0, le=100, description="attempts after a failed one")
    checkpoint_signal: str = Field(default="SIGTERM", description="sent before SIGKILL when preempted or cancelled")
    depends_on: list[JobName] = Field(default_factory=list, max_length=MAX_DEPENDENCIES,
                                      description="Jobs of its tenant that must succeed before it starts "
                                                  "(dependencies.py); fixed once the job exists")

    @field_validator("command")
    @classmethod
    def _program(cls, v: list[str]) -> list[str]:
        if not v[0]:
            raise ValueError("the first element (the program) must not be empty")
        return v

    @field_validator("checkpoint_signal")
    @classmethod
    def _signal(cls, v: str) -> str:
        name = v if v.startswith("SIG") else f"SIG{v}"
        if name not in signal.Signals.__members__ or name == "SIGKILL":
            raise ValueError(f"{v!r} is not a catchable signal; use e.g. SIGTERM, SIGINT or SIGUSR1")
        return name


class ServiceSpec(Model):
    """Long-running replicas (each a Job of this template) between minReplicas and maxReplicas:
    ceil(load / targetLoad) of them for the load last reported (services.py)."""

    queue: str = Field(min_length=1, description="the Queue its replicas are submitted to")
    command: list[str] = Field(min_length=1, description="program and arguments, run without a shell")
    env: dict[str, str] = Field(default_factory=dict)  # not {}: pydantic deep-copies that per object
    working_dir: str | None = Field(default=None, min_length=1, description="default: each replica's folder")
    resources: JobResources = JobResources()
    priority: int = 0
    min_replicas: int = Field(default=1, ge=0, le=1000)
    max_replicas: int = Field(ge=1, le=1000)
    target_load: float = Field(gt=0, allow_inf_nan=False, description="load units one replica serves")
    scale_down_delay_s: float = Field(default=60.0, ge=0, le=86_400,
                                      description="how long the load must stay lower before replicas are removed")

    @field_validator("command")
    @classmethod
    def _program(cls, v: list[str]) -> list[str]:
        return JobSpec._program(v)

    @field_validator("max_replicas")
    @classmethod
    def _bounds(cls, v: int, info: ValidationInfo) -> int:
        low = info.data.get("min_replicas")  # absent when it was invalid itself
        if low is not None and v < low:
            raise ValueError(f"must be at least minReplicas ({low})")
        return v


class _Object(Model):
    api_version: Literal["altostrat/v1"]
    metadata: Metadata


class TenantObject(_Object):
    kind: Literal["Tenant"]
    spec: TenantSpec = TenantSpec()


class QueueObject(_Object):
    kind: Literal["Queue"]
    spec: QueueSpec


class PoolObject(_Object):
    kind: Literal["Pool"]
    spec: PoolSpec


class JobObject(_Object):
    kind: Literal["Job"]
    spec: JobSpec


class ServiceObject(_Object):
    kind: Literal["Service"]
    spec: ServiceSpec


KINDS: dict[str, type[_Object]] = {"Tenant": TenantObject, "Queue": QueueObject, "Pool": PoolObject, "Job": JobObject,
                                   "Service": ServiceObject}
# URL and CLI spellings of each kind: `jobs`, `job`, `Job`
_ALIASES = {alias: kind for kind in KINDS for alias in (kind, kind.lower(), kind.lower() + "s")}


def kind_of(text: str) -> str | None:
    """The kind a URL segment or CLI argument names (`jobs`, `job`, `Job`), or None."""
    return _ALIASES.get(text) or _ALIASES.get(text.lower())


def field_path(loc: tuple) -> str:
    out = ""
    for part in loc:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def parse_object(raw: object) -> _Object:
    """Validate one object; ObjectError names each bad field."""
    if not isinstance(raw, dict):
        raise ObjectError([("", "an object must be a mapping with apiVersion, kind, metadata and spec")])
    if raw.get("apiVersion") != API_VERSION:
        raise ObjectError([("apiVersion", f"must be {API_VERSION!r} (got {raw.get('apiVersion')!r})")])
    model = KINDS.get(raw.get("kind"))  # type: ignore[arg-type]
    if model is None:
        raise ObjectError([("kind", f"unknown kind {raw.get('kind')!r}; one of: {', '.join(KINDS)}")])
    try:
        obj = model.model_validate(raw)
    except ValidationError as exc:
        raise ObjectError([(field_path(e["loc"]), e["msg"]) for e in exc.errors()]) from None
    if len(obj.metadata.name) > MAX_NAME:
        raise ObjectError([("metadata.name", f"at most {MAX_NAME} characters (a DNS name's limit)")])
    if isinstance(obj, QueueObject) and obj.spec.borrowing_limit is not None and obj.spec.cohort is None:
        raise ObjectError([("spec.borrowingLimit", "a queue borrows only from a cohort: set spec.cohort, "
                                                   "or drop borrowingLimit")])
    if isinstance(obj, JobObject):
        _check_depends_on(obj)
    if obj.kind == "Service" and len(obj.metadata.name) > MAX_SERVICE_NAME:
        raise ObjectError([("metadata.name", f"at most {MAX_SERVICE_NAME} characters for a Service (its replicas "
                                             "are named NAME-N)")])
    return obj


def _check_depends_on(job: JobObject) -> None:
    """What can be checked without the store: no job names itself, nor another job twice."""
    errors, seen = [], set()
    for i, name in enumerate(job.spec.depends_on):
        if name == job.metadata.name:
            errors.append((f"spec.dependsOn[{i}]", "a job cannot depend on itself"))
        elif name in seen:
            errors.append((f"spec.dependsOn[{i}]", f"{name!r} is listed twice; name each dependency once"))
        seen.add(name)
    if errors:
        raise ObjectError(errors)
