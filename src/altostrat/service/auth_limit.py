"""A limit on failed authentication per client address, so that tokens cannot be guessed at speed.

Each address has a bucket of BURST failures that refills at PER_S a second. A call without a
live token takes one; once the bucket is empty, the address's calls are answered 429 with a
Retry-After, without a look-up, until it has refilled one. A token already seen (cached) is
never held back: its holder shares an address with whoever fails, not its guilt."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

BURST, PER_S = 20.0, 1.0
MAX_ADDRESSES = 10_000  # buckets kept before the full ones are dropped


class TooManyFailures(Exception):
    def __init__(self, retry_after_s: float) -> None:
        super().__init__(f"retry in {retry_after_s:.0f} s")
        self.retry_after_s = retry_after_s


class FailedAuthLimit:
    def __init__(self, burst: float = BURST, per_s: float = PER_S,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.burst, self.per_s, self.clock = burst, per_s, clock
        self.buckets: dict[str, tuple[float, float]] = {}  # address -> (failures left, as of when)
        self.lock = threading.Lock()

    def _left(self, address: str, now: float) -> float:
        left, when = self.buckets.get(address, (self.burst, now))
        return min(self.burst, left + (now - when) * self.per_s)

    def check(self, address: str) -> None:
        """TooManyFailures while `address` has no failure left."""
        with self.lock:
            left = self._left(address, self.clock())
        if left < 1:
            raise TooManyFailures((1 - left) / self.per_s)

    def failed(self, address: str) -> None:
        with self.lock:
            now = self.clock()
            if len(self.buckets) >= MAX_ADDRESSES:
                self.buckets = {a: b for a, b in self.buckets.items() if self._left(a, now) < self.burst}
            self.buckets[address] = (self._left(address, now) - 1, now)
