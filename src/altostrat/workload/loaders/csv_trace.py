"""Users' own job traces: `csv:PATH#MAPPING`, a CSV file with a header row and a column mapping.

The mapping names which column holds each job field, e.g. `submit=ts,duration=dur,gpus=n`.
The Philly loader is this reader with a fixed mapping, so both validate rows the same way.
"""

from __future__ import annotations

import csv
import math
from datetime import datetime, timezone
from pathlib import Path

from altostrat.resources import MILLI
from altostrat.workload.job import Job
from altostrat.workload.loaders.synthetic import CPU_PER_GPU_MILLI, MEM_PER_GPU_MIB
from altostrat.workload.sources import TraceError, WorkloadContext, workload_source

REQUIRED = ("submit", "duration", "gpus")
OPTIONAL = ("tenant", "priority", "deadline", "cpu", "memory_gib", "gpu_model", "id")

_EPOCH = datetime(1970, 1, 1)
_EPOCH_UTC = _EPOCH.replace(tzinfo=timezone.utc)


def iso_seconds(text: str) -> float:
    """An ISO datetime as seconds since 1970 on its own wall clock.

    Naive times (Philly's) are taken as they read, with no daylight-saving correction;
    times with an offset are converted to UTC. `datetime.fromisoformat` is C code: on the
    82,247 Philly timestamps it takes 0.02 s, against 0.13 s for a per-day cache of
    parsed dates and 0.64 s for strptime (measured on this project's machines).
    """
    stamp = datetime.fromisoformat(text)
    return ((stamp - _EPOCH) if stamp.tzinfo is None else (stamp - _EPOCH_UTC)).total_seconds()


def parse_mapping(text: str, what: str) -> dict[str, str]:
    """`field=column,…` into {field: column}; names the fields a mapping may use."""
    allowed = REQUIRED + OPTIONAL
    mapping: dict[str, str] = {}
    for item in filter(None, (p.strip() for p in text.split(","))):
        key, eq, column = (s.strip() for s in item.partition("="))
        if not eq or not column:
            raise TraceError(f"{what}: mapping item {item!r} needs a column, as field=column")
        if key not in allowed:
            raise TraceError(f"{what}: unknown mapping field {key!r}; fields are: {', '.join(allowed)}")
        mapping[key] = column
    return mapping


def read_trace(path: Path, mapping: dict[str, str], ctx: WorkloadContext, what: str) -> list[Job]:
    """Jobs from a CSV file with a header row; each bad row goes through ctx.bad_row.

    `gpus` is the job's GPU total: a share of one GPU (0 < g < 1) gives one fractional
    task, whole numbers give that many one-GPU tasks; 0 makes a CPU-only job, which then
    needs a cpu value. `cpu` (vCPUs) and `memory_gib` are job totals split evenly over the
    tasks; without them each task gets the synthetic generator's per-GPU host share.
    Numeric submit times are seconds and kept as given; ISO datetimes become seconds after
    the earliest submit of the file (deadlines in the same form share that origin).
    """
    if not path.is_file():
        raise TraceError(f"{what}: {path} is not a file")
    with path.open(newline="", encoding="utf-8-sig") as fh:
        reader = csv.reader(fh)
        try:
            return _read(reader, path, mapping, ctx, what)
        except (UnicodeDecodeError, csv.Error) as exc:  # not text, or broken quoting
            raise TraceError(f"{what}: {path}, line {reader.line_num + 1}: not a readable CSV row: {exc}") from None


def _read(reader, path: Path, mapping: dict[str, str], ctx: WorkloadContext, what: str) -> list[Job]:
    header = next(reader, None)
    if not header:
        raise TraceError(f"{what}: {path} is empty; it needs a header row naming its columns")
    header = [h.strip() for h in header]
    missing = [f"{k}=COLUMN" for k in REQUIRED if k not in mapping]
    if missing:
        raise TraceError(
            f"{what}: the mapping needs {', '.join(missing)} (required: {', '.join(REQUIRED)}; optional: "
            f"{', '.join(OPTIONAL)}); the columns of {path} are: {', '.join(header)}"
        )
    unknown = [f"{k}={c}" for k, c in mapping.items() if c not in header]
    if unknown:
        raise TraceError(f"{what}: {path} has no column for {', '.join(unknown)}; its columns are: {', '.join(header)}")
    col = {k: header.index(c) for k, c in mapping.items()}
    return _rows(reader, path, header, col, ctx)


def _rows(reader, path: Path, header: list[str], col: dict[str, int], ctx: WorkloadContext) -> list[Job]:
    ncols = len(header)
    i_submit, i_duration, i_gpus = col["submit"], col["duration"], col["gpus"]
    i_tenant, i_priority, i_deadline = col.get("tenant"), col.get("priority"), col.get("deadline")
    i_cpu, i_mem, i_model, i_id = col.get("cpu"), col.get("memory_gib"), col.get("gpu_model"), col.get("id")
    stem = path.stem
    iso: bool | None = None  # submit form, fixed by the first row: ISO datetimes or seconds
    jobs: list[Job] = []
    seen_ids: set[str] = set()

    def bad(i: int | None, reason: str) -> None:
        ctx.bad_row(f"{path}, line {reader.line_num}", header[i] if i is not None else "row", reason)

    def optional(row: list[str], i: int | None, lowest: float, reason: str) -> float | None:
        """A number >= lowest, None for an absent column or empty cell, NaN once reported bad."""
        if i is None or not row[i].strip():
            return None
        value = _number(row[i])
        if value is None or value < lowest:
            bad(i, reason)
            return math.nan
        return value

    for row in reader:
        if not row:
            continue  # blank line (the Philly file ends with one)
        if len(row) != ncols:
            bad(None, f"has {len(row)} values but the header has {ncols}")
            continue
        text = row[i_submit].strip()
        if iso is None:
            iso = _number(text) is None
        if iso:
            try:
                submit = iso_seconds(text)
            except ValueError:
                bad(i_submit, "must be an ISO datetime like 2017-10-09 07:01:55 (as in the first row)")
                continue
        else:
            submit = _number(text)
            if submit is None or submit < 0:
                bad(i_submit, "must be a number of seconds >= 0 (as in the first row)")
                continue
        duration = _number(row[i_duration])
        if duration is None or duration <= 0:
            bad(i_duration, "must be a number of seconds > 0")
            continue
        gpus = _number(row[i_gpus])
        cpu = optional(row, i_cpu, 0, "must be a number of vCPUs >= 0")
        if cpu != cpu:  # NaN: reported
            continue
        mem = optional(row, i_mem, 0, "must be a number of GiB >= 0")
        if mem != mem:
            continue
        if gpus is not None and gpus >= 1 and gpus.is_integer():
            tasks, gpu_milli = int(gpus), MILLI
        elif gpus is not None and 0 < gpus < 1 and round(gpus * MILLI) >= 1:
            tasks, gpu_milli = 1, round(gpus * MILLI)
        elif gpus == 0 and cpu:
            tasks, gpu_milli = 1, 0
        else:
            bad(i_gpus, "must be a whole number of GPUs >= 1 or a share of one GPU in (0, 1)"
                + ("" if i_cpu is None else ", or 0 for a CPU-only job with cpu > 0"))
            continue
        share = gpu_milli / MILLI  # GPUs per task, for the per-GPU host defaults
        cpu_milli = round(CPU_PER_GPU_MILLI * share if cpu is None else cpu * MILLI / tasks)
        mem_mib = round(MEM_PER_GPU_MIB * share if mem is None else mem * 1024 / tasks)
        deadline = None
        if i_deadline is not None and row[i_deadline].strip():
            try:
                deadline = iso_seconds(row[i_deadline].strip()) if iso else _number(row[i_deadline])
            except ValueError:
                deadline = None
            if deadline is None or (not iso and deadline < 0):
                bad(i_deadline, "must be in the submit column's form (ISO datetime or seconds >= 0)")
                continue
        priority = 0
        if i_priority is not None and row[i_priority].strip():
            try:
                priority = int(row[i_priority])
            except ValueError:
                bad(i_priority, "must be an integer")
                continue
        job_id = row[i_id].strip() if i_id is not None else f"{stem}-{reader.line_num}"
        if not job_id or job_id in seen_ids:
            bad(i_id, "must be a unique, non-empty job id")
            continue
        seen_ids.add(job_id)
        tenant = (row[i_tenant].strip() or "default") if i_tenant is not None else "default"
        model = row[i_model].strip() if i_model is not None else ""
        jobs.append(Job(
            id=job_id, submit=submit, duration=duration, tasks=tasks, gpu_milli=gpu_milli,
            cpu_milli=cpu_milli, mem_mib=mem_mib, gpu_models=(model,) if model else None,
            tenant=tenant, priority=priority, deadline=deadline,
        ))

    if iso and jobs:  # wall-clock seconds -> seconds after the earliest submit
        origin = min(j.submit for j in jobs)
        for j in jobs:
            j.submit -= origin
            if j.deadline is not None:
                j.deadline -= origin
    return jobs


def _number(text: str) -> float | None:
    """A finite float, or None."""
    try:
        value = float(text)
    except ValueError:
        return None
    return value if math.isfinite(value) else None


@workload_source(
    "csv",
    "csv:PATH#submit=COL,duration=COL,gpus=COL[,tenant=COL,priority=COL,deadline=COL,cpu=COL,memory_gib=COL,gpu_model=COL,id=COL]",
    "your own CSV trace with a header row, read through a column mapping",
)
def csv_source(arg: str, ctx: WorkloadContext) -> list[Job]:
    path, sep, mapping_text = arg.rpartition("#")
    if not sep or not path:
        raise TraceError(f"csv:{arg}: name the file and a column mapping, as csv:PATH#submit=COL,duration=COL,gpus=COL")
    return read_trace(Path(path), parse_mapping(mapping_text, f"csv:{arg}"), ctx, f"csv:{arg}")
