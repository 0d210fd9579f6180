"""Alibaba GPU cluster trace 2023 (`openb_pod_list_*.csv`, the FGD paper's trace).

One pod is one Job with one task. A pod asking one GPU with gpu_milli < 1000 takes that
share of one device; otherwise it takes num_gpu whole GPUs; num_gpu = 0 is a CPU-only pod.
gpu_spec (models joined by '|', empty = any) becomes the allowed GPU models. A pod is
submitted at creation_time and runs deletion_time - creation_time seconds.

The four multigpu* lists carry no times: their pods get submit 0 and an unknown (NaN)
duration, which only `--arrivals fill:F` can use (it needs no durations).
"""

from __future__ import annotations

import csv
import math
from pathlib import Path

from altostrat.resources import MILLI
from altostrat.workload.job import Job
from altostrat.workload.sources import TraceError, WorkloadContext, workload_source

DEFAULT_POD_LIST = "openb_pod_list_default"
RESOURCE_COLUMNS = ("name", "cpu_milli", "memory_mib", "num_gpu", "gpu_milli")
TIME_COLUMNS = ("creation_time", "deletion_time")
USAGE = "alibaba-v2023:DIR[#POD_LIST]"


def pod_list_path(arg: str) -> Path:
    """DIR[#POD_LIST] -> the pod-list CSV, with an error that lists the choices."""
    folder, _, name = arg.partition("#")
    if not folder:
        raise TraceError(f"{USAGE}: give the trace folder, e.g. alibaba-v2023:../shared/data/traces/alibaba-gpu-v2023")
    root = Path(folder)
    if not root.is_dir():
        raise TraceError(f"{USAGE}: folder {root} does not exist")
    name = name.strip() or DEFAULT_POD_LIST
    path = root / f"{name.removesuffix('.csv')}.csv"
    if not path.is_file():
        known = ", ".join(sorted(p.stem for p in root.glob("openb_pod_list_*.csv"))) or "none"
        raise TraceError(f"{USAGE}: no pod list {path.name} in {root}; pod lists there: {known}")
    return path


@workload_source(
    "alibaba-v2023",
    USAGE,
    "Alibaba GPU 2023 pod list (fractional GPUs, GPU-model constraints, CPU and memory)",
)
def alibaba_v2023(arg: str, ctx: WorkloadContext) -> list[Job]:
    return load_pods(pod_list_path(arg), ctx)


def _int(row: dict, key: str, where: str, ctx: WorkloadContext, low: int = 0) -> int | None:
    text = (row.get(key) or "").strip()
    try:
        value = int(text)
    except ValueError:
        ctx.bad_row(where, key, f"{text!r} is not an integer")
        return None
    if value < low:
        ctx.bad_row(where, key, f"{value} must be >= {low}")
        return None
    return value


def load_pods(path: Path, ctx: WorkloadContext) -> list[Job]:
    jobs: list[Job] = []
    with open(path, newline="") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        missing = [c for c in RESOURCE_COLUMNS if c not in header]
        if missing:
            raise TraceError(f"{path}:1: missing column(s) {', '.join(missing)}; an Alibaba pod list has "
                             f"{','.join(RESOURCE_COLUMNS)}[,gpu_spec][,creation_time,deletion_time]")
        timed = [c for c in TIME_COLUMNS if c in header]
        if timed and len(timed) < len(TIME_COLUMNS):
            raise TraceError(f"{path}:1: has {timed[0]} but not the other of {' and '.join(TIME_COLUMNS)}")
        names: set[str] = set()
        for line, row in enumerate(reader, start=2):
            job = _pod(row, f"{path}:{line}", ctx, bool(timed), names)
            if job is not None:
                names.add(job.id)
                jobs.append(job)
    return jobs


def _pod(row: dict, where: str, ctx: WorkloadContext, timed: bool, names: set[str]) -> Job | None:
    name = (row.get("name") or "").strip()
    if not name:
        return ctx.bad_row(where, "name", "is empty")
    if name in names:
        return ctx.bad_row(where, "name", f"{name!r} appears twice; pod names must be unique")
    values = {key: _int(row, key, where, ctx) for key in ("cpu_milli", "memory_mib", "num_gpu", "gpu_milli")}
    if any(v is None for v in values.values()):
        return None
    num_gpu, gpu_milli = values["num_gpu"], values["gpu_milli"]
    if num_gpu == 0:
        if gpu_milli:
            return ctx.bad_row(where, "gpu_milli", f"{gpu_milli} on a CPU-only pod (num_gpu=0); it must be 0")
        per_task = 0
    elif not 0 < gpu_milli <= MILLI:
        return ctx.bad_row(where, "gpu_milli", f"{gpu_milli} must be 1..1000 (milli-GPUs per GPU)")
    elif num_gpu == 1:
        per_task = gpu_milli
    elif gpu_milli != MILLI:
        return ctx.bad_row(where, "gpu_milli", f"{gpu_milli} with num_gpu={num_gpu}: only a one-GPU pod may "
                           "take a share; a multi-GPU pod has gpu_milli 1000")
    else:
        per_task = num_gpu * MILLI
    spec = (row.get("gpu_spec") or "").strip()
    models = tuple(m.strip() for m in spec.split("|") if m.strip()) if spec and per_task else None
    submit, duration = 0.0, math.nan  # untimed lists: fill mode only
    if timed:
        created = _int(row, "creation_time", where, ctx)
        deleted = _int(row, "deletion_time", where, ctx) if created is not None else None
        if deleted is None:
            return None
        if deleted < created:
            return ctx.bad_row(where, "deletion_time", f"{deleted} is before creation_time {created}")
        submit, duration = float(created), float(deleted - created)
    return Job(
        id=name,
        submit=submit,
        duration=duration,
        tasks=1,
        gpu_milli=per_task,
        cpu_milli=values["cpu_milli"],
        mem_mib=values["memory_mib"],
        gpu_models=models or None,
    )
