"""A one-file order piece for development: `--plugin examples/plugin/fewest_gpus.py:FewestGpusFirst`.

Smallest gang first (then arrival): narrow jobs slip past wide ones, which helps average
JCT on traces where most jobs use one GPU, at the risk of starving 8-GPU gangs.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from altostrat.policy.registry import register


@register("order", "fewest-gpus", "smallest gang first, then arrival (an example plugin)")
@dataclass(frozen=True)
class FewestGpusFirst:
    dynamic: ClassVar[bool] = False  # the key is fixed at submission: a sorted queue suffices
    preemptive: ClassVar[bool] = False

    def key(self, job, engine, now):
        return (job.gpus, job.submit)
