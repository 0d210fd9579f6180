"""Queue quotas, enforced as an engine gate (policy/gate/__init__.py describes the protocol).

The reconciler appends this gate to the parsed policy, so the engine holds a job whose
queue's running jobs would exceed the queue's quota with it, and rejects one that asks for
more than the quota by itself. It is not registered: quotas are objects of the live
service, not a policy choice.
"""

from __future__ import annotations

import math

from altostrat.resources import MILLI
from altostrat.workload.job import Job

RESOURCES = (("gpu", MILLI), ("cpu", MILLI), ("memoryGib", 1024))  # spec key, units per engine unit


class QueueQuotaGate:
    def __init__(self) -> None:
        self.limits: dict[str, tuple[float, float, float]] = {}  # queue -> (gpu milli, cpu milli, MiB); inf = none
        self.queue_of: dict[int, str] = {}  # job idx -> its queue
        self.used: dict[str, list[int]] = {}

    def set_queue(self, name: str, quota: dict) -> None:
        self.limits[name] = tuple(math.inf if quota.get(key) is None else round(quota[key] * unit)
                                  for key, unit in RESOURCES)

    @staticmethod
    def _ask(job: Job) -> tuple[int, int, int]:
        return job.gpu_milli_total, job.cpu_milli * job.tasks, job.mem_mib * job.tasks

    def refuse(self, job: Job, engine) -> str | None:
        queue = self.queue_of[job.idx]
        over = [f"{key} {ask / unit:g} > {limit / unit:g}" for (key, unit), ask, limit
                in zip(RESOURCES, self._ask(job), self.limits[queue]) if ask > limit]
        return f"asks for more than queue {queue}'s quota ({', '.join(over)})" if over else None

    def hold(self, job: Job, engine, now: float) -> float | None:
        # a stop in the queue (an event) is what can release it
        return math.inf if self.over(job) else None

    def over(self, job: Job) -> list[tuple[str, float, float, float]]:
        """What the job would take its queue past now: (resource, in use, asked, quota) in spec units."""
        queue = self.queue_of[job.idx]
        used = self.used.get(queue, (0, 0, 0))
        return [(key, u / unit, a / unit, limit / unit) for (key, unit), u, a, limit
                in zip(RESOURCES, used, self._ask(job), self.limits[queue]) if u + a > limit]

    def started(self, job: Job, run, engine, now: float) -> None:
        self._add(job, +1)

    def stopped(self, job: Job, run, engine, now: float) -> None:
        self._add(job, -1)

    def _add(self, job: Job, sign: int) -> None:
        used = self.used.setdefault(self.queue_of[job.idx], [0, 0, 0])
        for i, a in enumerate(self._ask(job)):
            used[i] += sign * a
