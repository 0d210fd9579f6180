"""Workload sources by name: `NAME[:ARGS]` on the command line, or a Workload YAML file.

Each loader module registers itself with @workload_source and returns validated Jobs.
Rows that fail validation raise TraceError naming file, line, field and reason, unless
the context says to skip them, in which case they are counted per reason.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field

from altostrat.cluster.state import ClusterState
from altostrat.workload.job import Job, number_jobs


class TraceError(ValueError):
    """A malformed input row; the message names where and what to fix."""


@dataclass
class WorkloadContext:
    cluster: ClusterState | None = None
    seed: int | None = None  # overrides a source's own seed= option
    skip_invalid: bool = False
    skipped: Counter = field(default_factory=Counter)  # reason -> rows skipped
    budgets: dict = field(default_factory=dict)  # tenant -> budgets.TenantBudget, from a Workload's spec.tenants

    def bad_row(self, where: str, fieldname: str, reason: str) -> None:
        """Raise, or count the row as skipped when --skip-invalid is on."""
        if not self.skip_invalid:
            raise TraceError(f"{where}: field {fieldname!r}: {reason} (or pass --skip-invalid to skip such rows)")
        self.skipped[f"{fieldname}: {reason}"] += 1


@dataclass(frozen=True)
class WorkloadSource:
    name: str
    usage: str
    summary: str
    load: Callable[[str, WorkloadContext], list[Job]]


WORKLOAD_SOURCES: dict[str, WorkloadSource] = {}


def workload_source(name: str, usage: str, summary: str):
    def wrap(fn):
        WORKLOAD_SOURCES[name] = WorkloadSource(name, usage, summary, fn)
        return fn

    return wrap


def parse_options(text: str, allowed: dict[str, type], what: str) -> dict:
    """`k=v,k=v` into typed values; unknown keys and bad values name the fix."""
    out = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, eq, value = item.partition("=")
        key = key.strip()
        if not eq:
            raise TraceError(f"{what}: option {item!r} needs a value, as key=value")
        if key not in allowed:
            raise TraceError(f"{what}: unknown option {key!r}; options are: {', '.join(allowed)}")
        try:
            out[key] = allowed[key](value.strip())
        except ValueError:
            raise TraceError(f"{what}: option {key}={value!r} must be a {allowed[key].__name__}") from None
    return out


def load_workload(spec: str, ctx: WorkloadContext) -> list[Job]:
    """Resolve a workload spec into numbered jobs sorted by submit time."""
    import altostrat.workload.loaders  # noqa: F401  (registers every source)

    if spec.endswith((".yaml", ".yml")):
        from altostrat.workload.yaml_spec import jobs_from_file

        return number_jobs(jobs_from_file(spec, ctx))
    name, _, arg = spec.partition(":")
    source = WORKLOAD_SOURCES.get(name)
    if source is None:
        known = ", ".join(sorted(WORKLOAD_SOURCES))
        raise TraceError(f"--workload {spec!r}: unknown source {name!r}; use a YAML file or one of: {known}")
    jobs = source.load(arg, ctx)
    if not jobs:
        raise TraceError(f"--workload {spec!r}: no jobs (all rows skipped or the file is empty)")
    return number_jobs(jobs)
