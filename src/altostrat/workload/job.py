"""The one internal job schema every loader produces and every policy reads."""

from __future__ import annotations

from dataclasses import dataclass, field

from altostrat.resources import MILLI


@dataclass(slots=True)
class Job:
    """A gang of `tasks` identical tasks that start together or not at all.

    `duration` is the run time in seconds at reference speed 1.0; on GPU model m the job
    runs `duration / speed(m)`. Times are seconds on the simulation clock.
    """

    id: str
    submit: float
    duration: float
    tasks: int = 1
    gpu_milli: int = MILLI  # per task: 1..999 a share of one GPU, k*1000 whole GPUs
    cpu_milli: int = 0  # per task
    mem_mib: int = 0  # per task
    gpu_models: tuple[str, ...] | None = None  # allowed GPU models; None = any
    speeds: dict[str, float] | None = None  # relative speed per GPU model; missing = 1.0
    tenant: str = "default"
    priority: int = 0
    deadline: float | None = None  # absolute time on the simulation clock
    job_type: str | None = None
    # Where it may run: region names and jurisdiction codes (catalog/regions.py); None = anywhere.
    allowed_regions: frozenset[str] | None = None
    spot: bool = False  # may run on spot nodes (opt-in, as a toleration of spot nodes' taint)
    checkpoint_s: float | None = None  # seconds of running between checkpoints; None = never
    dataset_gb: float = 0.0  # input data read at every start, held in `data_region`
    data_region: str | None = None
    idx: int = field(default=-1, compare=False)  # position in the workload, set by the loader

    @property
    def gpu_milli_total(self) -> int:
        return self.tasks * self.gpu_milli

    @property
    def gpus(self) -> float:
        return self.tasks * self.gpu_milli / MILLI

    def speed(self, model: str | None) -> float:
        if self.speeds is None or model is None:
            return 1.0
        return self.speeds.get(model, 1.0)


def number_jobs(jobs: list[Job]) -> list[Job]:
    """Sort by submit time (stable) and give each job its index."""
    jobs.sort(key=lambda j: j.submit)
    for i, job in enumerate(jobs):
        job.idx = i
    return jobs
