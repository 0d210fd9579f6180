"""What `altostrat serve` tells its operators: Prometheus metrics and the job life-cycle log.

`Observer` holds one service's metrics in a registry of its own (not prometheus_client's
global one, so several services, or apps in one test process, never share a counter). The
reconciler counts what it does (attempts started, jobs ended, engine decisions and their
latency, its own failure); `GET /metrics` adds, at each scrape, the queues' lengths from the
store and the GPUs the engine holds. A tenant's scrape (`exposition` with its queues) holds
only the series it may see: its own queues', and the few that name no tenant and that it sees
elsewhere anyway (TENANT_SHARED). Every job life-cycle event is one log record on the
`altostrat.jobs` logger whose extra fields (`event`, `job`, `queue`, `attempt`, …) the JSON
format writes out as keys.
"""

from __future__ import annotations

import json
import logging
import sys
import time
from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from altostrat.engine import PREEMPT, REJECT, START, Decision, Engine
from altostrat.resources import MILLI
from altostrat.service.store import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Store

jobs_log = logging.getLogger("altostrat.jobs")

# engine calls take microseconds to milliseconds (the simulator's decision_ns on the bench traces)
DECISION_BUCKETS = (1e-5, 3e-5, 1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0)
# the life-cycle events that end a job, and the state each counts under
ENDINGS = {"succeeded": SUCCEEDED, "failed": FAILED, "cancelled": CANCELLED}
# What a tenant's scrape holds, by family (docs/service.md, "Metrics"): the series of its own
# queues; and the pools' GPU gauges and the reconciler's error count, which name no tenant and
# which it sees anyway (every Pool and the dashboard's pool sums; /healthz). Every other family
# (the engine's decisions and their latency: every tenant's activity) is the operator's, and
# so is any family added later until it is listed here.
TENANT_PER_QUEUE = frozenset({"altostrat_queue_pending_jobs", "altostrat_queue_running_jobs", "altostrat_jobs_admitted",
                              "altostrat_jobs_ended"})
TENANT_SHARED = frozenset({"altostrat_gpus_allocated", "altostrat_gpus_capacity", "altostrat_reconciler_errors"})


class Observer:
    """`engine` returns the reconciler's current engine (None: none, or no reconciler)."""

    def __init__(self, store: Store, engine: Callable[[], Engine | None] = lambda: None) -> None:
        self.registry = CollectorRegistry()
        r = self.registry
        self.admitted = Counter("altostrat_jobs_admitted", "Attempts started: a START decision applied",
                                ["queue"], registry=r)
        self.ended = Counter("altostrat_jobs_ended", "Jobs that reached a terminal state", ["queue", "state"],
                             registry=r)
        self.decisions = Counter("altostrat_decisions", "Engine decisions applied", ["kind"], registry=r)
        for kind in (START, PREEMPT, REJECT):
            self.decisions.labels(kind)  # a zero series from the start, so rate() sees the first one
        self.decision_seconds = Histogram("altostrat_decision_seconds",
                                          "Wall time of each engine call that made a decision",
                                          buckets=DECISION_BUCKETS, registry=r)
        self.errors = Counter("altostrat_reconciler_errors", "Errors that stopped the reconciler", registry=r)
        self.recovery_seconds = Gauge("altostrat_recovery_seconds",
                                      "Seconds this start spent settling the tasks a previous run left, adopting "
                                      "the live ones and making its first scheduling pass", registry=r)
        r.register(_Gauges(store, engine))  # read at each scrape

    def exposition(self, queues: set[str] | None = None) -> bytes:
        """Every metric in the text format; with `queues` (a tenant's), only what that tenant may see."""
        return generate_latest(self.registry if queues is None else _Scoped(self.registry, queues))

    def forget_queue(self, queue: str) -> None:
        """Drop a deleted queue's counters, so that a queue created later under its name (maybe
        another tenant's) starts from zero rather than with the old one's counts."""
        self.admitted.remove(queue)
        for state in ENDINGS.values():
            self.ended.remove(queue, state)

    def decided(self, decisions: list[Decision], seconds: float) -> None:
        if decisions:
            self.decision_seconds.observe(seconds)
            for d in decisions:
                self.decisions.labels(d.kind).inc()

    def job(self, event: str, job: str, queue: str, message: str, **fields) -> None:
        """Log one life-cycle event of `job` (its fields become JSON keys) and count it."""
        if event == "started":
            self.admitted.labels(queue).inc()
        elif event in ENDINGS:
            self.ended.labels(queue, ENDINGS[event]).inc()
        jobs_log.info("job %s %s", job, message, extra={"event": event, "job": job, "queue": queue, **fields})


class _Gauges(Collector):
    def __init__(self, store: Store, engine: Callable[[], Engine | None]) -> None:
        self.store, self.engine = store, engine

    def collect(self) -> Iterator[GaugeMetricFamily]:
        with self.store.tx() as conn:
            queues = sorted(self.store.specs(conn, "Queue"))
            counts = self.store.job_counts(conn)
        for state, name, what in ((PENDING, "altostrat_queue_pending_jobs", "Jobs waiting in the queue (PENDING)"),
                                  (RUNNING, "altostrat_queue_running_jobs", "Jobs running (RUNNING)")):
            family = GaugeMetricFamily(name, what, labels=["queue"])
            for queue in queues:
                family.add_metric([queue], counts.get((queue, state), 0))
            yield family
        # the reconciler thread swaps the engine whole and changes its nodes' free lists in
        # place: a scrape during a decision may see it half applied, never a torn number
        engine = self.engine()
        pools: dict[str, list[float]] = {}
        for node in engine.state.nodes if engine is not None else ():
            held = pools.setdefault(node.pool, [0.0, 0])
            held[0] += sum(MILLI - free for free in node.gpu_free) / MILLI
            held[1] += node.gpus
        allocated = GaugeMetricFamily("altostrat_gpus_allocated", "GPUs held by running jobs (shares add up)",
                                      labels=["pool"])
        capacity = GaugeMetricFamily("altostrat_gpus_capacity", "GPUs the Pools declare", labels=["pool"])
        for pool, (held, total) in sorted(pools.items()):
            allocated.add_metric([pool], held)
            capacity.add_metric([pool], total)
        yield allocated
        yield capacity


class _Scoped:
    """The families of `registry` a tenant whose queues are `queues` may see (TENANT_PER_QUEUE
    and TENANT_SHARED); what generate_latest reads."""

    def __init__(self, registry: CollectorRegistry, queues: set[str]) -> None:
        self.registry, self.queues = registry, queues

    def collect(self) -> Iterator[Metric]:
        for family in self.registry.collect():
            if family.name in TENANT_SHARED:
                yield family
            elif family.name in TENANT_PER_QUEUE:
                mine = Metric(family.name, family.documentation, family.type, family.unit)
                mine.samples = [s for s in family.samples if s.labels["queue"] in self.queues]
                yield mine


# the attributes every LogRecord has: the others are a call's `extra` fields
_RECORD_FIELDS = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    """One JSON object a line: time (UTC, ISO 8601), level, logger, message, then the
    record's extra fields (an extra field named as one of those four is left out) and, for an
    exception, its traceback as `exception`."""

    def format(self, record: logging.LogRecord) -> str:
        out = {"time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
                       + f".{int(record.msecs):03d}Z",
               "level": record.levelname, "logger": record.name, "message": record.getMessage()}
        out.update((k, v) for k, v in vars(record).items() if k not in _RECORD_FIELDS and k not in out)
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str)


def configure_logging(fmt: str, stream=None) -> None:
    """The root logger (so uvicorn's records too) writes INFO and above to stderr in `fmt`."""
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else
                         logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    logging.getLogger("alembic").setLevel(logging.WARNING)  # its INFO lists plugins; serve says "migrated"
