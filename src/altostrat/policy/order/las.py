"""Tiresias' discretized two-dimensional least-attained-service order (Gu et al., NSDI'19).

A job's attained service is GPUs x seconds it has run (`engine.attained_service`, restart
overhead excluded), so a wide job ages as fast as its width. Jobs sit in `queues` priority
queues by that service: queue 0 below `threshold_s` GPU-seconds, queue k below
threshold_s * factor**k, the last queue above every threshold. Lower queue first; FCFS by
submit time within a queue. The order preempts whole gangs by itself: a running job whose
service carries it into a lower queue yields to pending jobs now ahead of it. `wakeup`
returns the exact moment the next running job crosses a threshold (or a starving job is due
for promotion), so the simulator needs no fixed scheduling rounds.

Starvation (Tiresias' STARVELIMIT, set by its PROMOTEKNOB): with `starve_factor` K > 0, a
preempted job that has waited in a lower queue for at least K x the length of its last run
is promoted to queue 0, and its service is counted afresh from then. Off (0) by default, as
in Tiresias' own simulator (`dlas-gpu`). As restart overhead earns no service, every
promotion buys threshold_s / GPUs seconds of real progress, so promotion cycles cannot
livelock however large `restart_s` is.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field
from typing import ClassVar

from altostrat.policy.registry import register

EPS = 1e-6  # GPU-seconds: a job at its threshold up to float error has crossed it
INF = float("inf")


@register(
    "order",
    "las",
    "Tiresias discretized 2D-LAS (Gu et al., NSDI'19): queues by attained GPU-seconds, FCFS within a queue, "
    "preemptive",
)
@dataclass
class DiscretizedLAS:
    queues: int = 3
    threshold_s: float = 3600.0  # GPU-seconds that end queue 0
    factor: float = 2.0  # each later threshold is this many times the previous one
    starve_factor: float = 0.0  # promote after waiting K x last run; 0 = never

    preemptive: ClassVar[bool] = True

    # Per-run state (why this piece is not frozen): each job's service at its last promotion,
    # and each running attempt's next threshold crossing with its queue until then (fixed
    # while it runs: service grows linearly), so a wake-up, and the key of a running job
    # that preemption asks for, cost a dict lookup.
    _base: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _crossing: dict = field(default_factory=dict, init=False, repr=False, compare=False)
    _engine: object = field(default=None, init=False, repr=False, compare=False)
    _thresholds: tuple = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        if self.queues < 2:
            raise ValueError(f"queues={self.queues} must be >= 2 (one queue is plain fcfs)")
        if not self.threshold_s > 0:
            raise ValueError(f"threshold_s={self.threshold_s} must be > 0 GPU-seconds")
        if not self.factor > 1:
            raise ValueError(f"factor={self.factor} must be > 1 (thresholds grow from queue to queue)")
        if not self.starve_factor >= 0:
            raise ValueError(f"starve_factor={self.starve_factor} must be >= 0 (0 turns promotion off)")
        self._thresholds = tuple(self.threshold_s * self.factor**k for k in range(self.queues - 1))

    @property
    def dynamic(self) -> bool:
        # A waiting job gains no service, so its key only changes when it is promoted:
        # without promotion the engine keeps pending jobs in a sorted queue (no re-sort per
        # pass); running jobs' keys are read afresh whenever preemption is considered.
        return self.starve_factor > 0

    def key(self, job, engine, now):
        run = engine.running.get(job.idx)
        if run is not None:  # fast path: a running job keeps its queue until its next crossing
            cached = self._crossing.get(job.idx)
            if cached is not None and cached[0] is run and now < cached[1]:
                return (cached[2], job.submit)
        return (self.queue(job, engine, now), job.submit)

    def queue(self, job, engine, now) -> int:
        """The job's queue now, promoting it first if it has starved long enough."""
        if self._engine is not engine:
            self._bind(engine)
        service = engine.attained_service(job, now) - self._base.get(job.idx, 0.0)
        q = bisect_right(self._thresholds, service + EPS)
        if q and self.starve_factor and job.idx not in engine.running:
            stopped, ran = engine.last_run[job.idx]  # in a lower queue and pending: it was preempted
            if now - stopped >= self.starve_factor * ran - EPS:
                self._base[job.idx] = self._base.get(job.idx, 0.0) + service
                q = 0
        return q

    def wakeup(self, engine, now):
        """The next time a running job crosses a threshold, or a waiting one is promoted."""
        soonest = INF
        if self.starve_factor:
            for job in engine.pending.values():
                if self.queue(job, engine, now):  # not promoted yet: due strictly later
                    stopped, ran = engine.last_run[job.idx]
                    soonest = min(soonest, stopped + self.starve_factor * ran)
        if self._engine is not engine:
            self._bind(engine)
        crossing = self._crossing
        for idx, run in engine.running.items():
            cached = crossing.get(idx)
            if cached is None or cached[0] is not run or cached[1] <= now:
                cached = crossing[idx] = (run, *self._next_crossing(run, engine, now))
            if cached[1] < soonest:
                soonest = cached[1]
        return soonest if soonest < INF else None

    def _next_crossing(self, run, engine, now) -> tuple[float, int]:
        """When the running job next changes queue, and its queue until then."""
        job = run.job
        service = engine.attained_service(job, now) - self._base.get(job.idx, 0.0)
        q = bisect_right(self._thresholds, service + EPS)
        if not job.gpu_milli or q == len(self._thresholds):
            return INF, q  # CPU-only jobs attain no GPU service; the last queue is final
        # Service grows only once the restart overhead is over.
        return max(now, run.start + run.overhead) + (self._thresholds[q] - service) / job.gpus, q

    def _bind(self, engine) -> None:
        """A new run: promotions and crossings of an earlier one do not carry over."""
        self._engine = engine
        self._base = {}
        self._crossing = {}
