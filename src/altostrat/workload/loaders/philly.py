"""The Microsoft Philly trace: `philly:PATH` (../shared/data/traces/philly/philly.csv).

Columns `timestamp,duration,num_gpus,gpu_time,cluster`: submit as a local datetime,
run time in seconds, GPUs, GPU-seconds (duration x num_gpus, redundant, not read) and the
virtual cluster (VC) that submitted it. It is the CSV reader with a fixed mapping: one
one-GPU task per GPU with the synthetic generator's per-GPU host share, the VC as tenant,
submit times in seconds after the earliest row.
"""

from __future__ import annotations

from pathlib import Path

from altostrat.workload.job import Job
from altostrat.workload.loaders.csv_trace import read_trace
from altostrat.workload.sources import TraceError, WorkloadContext, workload_source

MAPPING = {"submit": "timestamp", "duration": "duration", "gpus": "num_gpus", "tenant": "cluster"}


@workload_source("philly", "philly:PATH", "Microsoft Philly trace (philly.csv: 82,247 jobs, 15 VCs as tenants)")
def philly(arg: str, ctx: WorkloadContext) -> list[Job]:
    if not arg:
        raise TraceError("philly: name the trace file, as philly:PATH/philly.csv")
    return read_trace(Path(arg), MAPPING, ctx, f"philly:{arg}")
