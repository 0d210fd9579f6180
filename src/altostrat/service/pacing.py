"""Pacing of the background loops' woken passes: the reconciler's syncs, the Service passes.

Every mutating API call wakes both loops. Under a stream of submissions a pass per wake-up
would keep a loop busy all the time, and a pass can cost more as the load grows (a Service
pass reads every replica; a sync, the jobs written since the last). A
Pacer spaces the woken passes so that they take at most `duty` of the loop's time, whatever
the load: a pass that took d seconds is followed by a gap of d / duty (within [min_gap_s,
max_gap_s]) before the next woken one. A loop woken after a quiet spell runs at once.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager


class Pacer:
    def __init__(self, min_gap_s: float, max_gap_s: float, duty: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.min_gap_s, self.max_gap_s, self.duty, self.clock = min_gap_s, max_gap_s, duty, clock
        self.gap_s = min_gap_s
        self.ended = -math.inf

    def delay(self) -> float:
        """Seconds a woken loop waits before its next pass (0: none)."""
        return max(0.0, self.ended + self.gap_s - self.clock())

    @contextmanager
    def timing(self) -> Iterator[None]:
        """Around one pass: its duration sets the gap after it."""
        start = self.clock()
        try:
            yield
        finally:
            self.ended = self.clock()
            self.gap_s = min(self.max_gap_s, max(self.min_gap_s, (self.ended - start) / self.duty))
