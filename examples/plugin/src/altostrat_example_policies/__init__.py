"""Shortest remaining service first (SRSF), an Altostrat order piece shipped as a plugin.

Tiresias (Gu et al., NSDI'19) compares its LAS scheduler against SRSF, which knows each
job's run time in advance: the job with the least remaining service (remaining seconds x
GPUs) goes first, and a newly arrived job with less service left preempts a running one.

`gpu_weight` is the research knob: service = remaining seconds x GPUs**gpu_weight, so 0
gives shortest-remaining-time-first and 1 (the default) SRSF.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from altostrat.policy.registry import register


@register("order", "srsf", "shortest remaining service first (remaining s x GPUs; the oracle baseline of Tiresias, NSDI'19)")
@dataclass(frozen=True)
class ShortestRemainingService:
    gpu_weight: float = 1.0

    # Keys change as jobs run (remaining work shrinks), so the engine re-sorts every pass;
    # running jobs only get cheaper, so no wake-up hook is needed for preemption.
    dynamic: ClassVar[bool] = True
    preemptive: ClassVar[bool] = True

    def __post_init__(self) -> None:
        if self.gpu_weight < 0:
            raise ValueError(f"gpu_weight={self.gpu_weight} must be >= 0")

    def key(self, job, engine, now):
        return (engine.remaining(job, now) * job.gpus**self.gpu_weight, job.submit)
