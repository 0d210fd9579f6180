from dataclasses import dataclass
from typing import ClassVar

from altostrat.policy.registry import register


@register("order", "fcfs", "first come, first served (arrival order)")
@dataclass(frozen=True)
class FirstComeFirstServed:
    dynamic: ClassVar[bool] = False
    preemptive: ClassVar[bool] = False

    def key(self, job, engine, now):
        return (job.submit,)
