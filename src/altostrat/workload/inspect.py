"""Statistics of a loaded workload, for `altostrat workloads inspect`."""

from __future__ import annotations

from collections import Counter
from dataclasses import asdict, dataclass

import numpy as np

from altostrat.resources import MILLI
from altostrat.workload.job import Job

DAY_S = 86400.0


@dataclass(frozen=True)
class TraceStats:
    jobs: int
    # Time statistics are None for a trace without times (Alibaba pod lists without
    # creation/deletion times, replayable only with --arrivals fill:F).
    span_s: float | None  # last submit - first submit
    span_days: float | None
    gpu_mix: dict[str, float]  # share of jobs per GPU-count bucket ("fractional", "1", "3-4", …)
    duration_p50_s: float | None  # at reference speed 1.0
    duration_p90_s: float | None
    duration_p99_s: float | None
    arrival_rate_per_h: float | None  # (jobs - 1) / span: mean arrivals per hour; None for span 0
    tenants: int
    gpu_hours: float | None  # sum of GPUs x duration
    skipped_rows: int
    skipped_reasons: dict[str, int]

    def to_dict(self) -> dict:
        return asdict(self)

    @property
    def timed(self) -> bool:
        return self.span_s is not None


def gpu_bucket(job: Job) -> str:
    """`cpu-only`, `fractional` (a share of one GPU per task), else whole GPUs in power-of-two bins."""
    if job.gpu_milli == 0:
        return "cpu-only"
    if job.gpu_milli < MILLI:
        return "fractional"
    gpus = job.gpu_milli_total // MILLI
    high = 1
    while high < gpus:
        high *= 2
    return str(gpus) if high <= 2 else f"{high // 2 + 1}-{high}"


def _bucket_order(label: str) -> tuple[int, int]:
    if label == "cpu-only":
        return (0, 0)
    if label == "fractional":
        return (1, 0)
    return (2, int(label.split("-")[-1]))


def trace_stats(jobs: list[Job], skipped: Counter | None = None) -> TraceStats:
    if not jobs:
        raise ValueError("trace_stats needs at least one job")
    submit = np.fromiter((j.submit for j in jobs), float, len(jobs))
    duration = np.fromiter((j.duration for j in jobs), float, len(jobs))
    gpus = np.fromiter((j.gpu_milli_total for j in jobs), float, len(jobs)) / MILLI
    counts = Counter(gpu_bucket(j) for j in jobs)
    skipped = skipped or Counter()
    # A loader marks a trace without times by NaN durations (every job of it, all submitted at 0).
    timed = not np.isnan(duration).any()
    span = float(submit.max() - submit.min()) if timed else None
    p50, p90, p99 = (float(v) for v in np.percentile(duration, [50, 90, 99])) if timed else (None,) * 3
    return TraceStats(
        jobs=len(jobs),
        span_s=span,
        span_days=span / DAY_S if timed else None,
        gpu_mix={k: counts[k] / len(jobs) for k in sorted(counts, key=_bucket_order)},
        duration_p50_s=p50,
        duration_p90_s=p90,
        duration_p99_s=p99,
        arrival_rate_per_h=(len(jobs) - 1) / (span / 3600) if timed and span > 0 else None,
        tenants=len({j.tenant for j in jobs}),
        gpu_hours=float(gpus @ duration) / 3600 if timed else None,
        skipped_rows=sum(skipped.values()),
        skipped_reasons=dict(skipped),
    )
