"""Orders whose key is fixed at submission: shortest job, priority, earliest deadline."""

from dataclasses import dataclass
from typing import ClassVar

from altostrat.policy.registry import register

INF = float("inf")


@register("order", "sjf", "shortest job first by its true run time (an oracle; Tiresias compares against it)")
@dataclass(frozen=True)
class ShortestJobFirst:
    dynamic: ClassVar[bool] = False
    preemptive: ClassVar[bool] = False

    def key(self, job, engine, now):
        return (job.duration, job.submit)


@register("order", "priority", "highest job priority first, then arrival")
@dataclass(frozen=True)
class Priority:
    dynamic: ClassVar[bool] = False
    preemptive: ClassVar[bool] = False

    def key(self, job, engine, now):
        return (-job.priority, job.submit)


@register("order", "edf", "earliest deadline first (Liu & Layland 1973); jobs without one go last")
@dataclass(frozen=True)
class EarliestDeadlineFirst:
    dynamic: ClassVar[bool] = False
    preemptive: ClassVar[bool] = False

    def key(self, job, engine, now):
        return (INF if job.deadline is None else job.deadline, job.submit)
