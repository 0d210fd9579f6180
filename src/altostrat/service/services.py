"""Services: long-running replicas, between minReplicas and maxReplicas, as many as a reported load needs.

A Service is a template of replica Jobs. `ServiceController` (a thread of its own) reconciles
each Service into replica Job objects through the store, the path a user's Job takes, so the
reconciler and its engine schedule replicas like any job: in the Service's queue (its tenant
and quota) with its priority. A replica is labelled with its Service's name and object id
(`altostrat.service`, `altostrat.service-id`); only Jobs of the Service's tenant that carry its
id are its replicas, so no Job belongs to two Services, and a Service created later under the
same name owns none of an older one's.

Load: whoever knows it (a load balancer, or the replicas: each gets ALTOSTRAT_SERVICE) reports
it with `POST /v1/services/NAME:load {"value": x}`. The Service wants
clamp(ceil(load / targetLoad), minReplicas, maxReplicas) replicas (minReplicas before any
report). It scales up at once, and down only to the highest count recommended over the last
`scaleDownDelayS` seconds (`Hysteresis`), so that a load that dips for a moment removes nothing.

Restarts: a replica is a Job that runs once (`retries: 0`). One that ends on its own (exits,
whatever its code, is rejected by the engine, or is cancelled by someone else) is replaced by a
new replica Job, NAME-N with the next N. A new Job rather than a retry: a retry follows only a
failed attempt (an exit with code 0 ends a Job SUCCEEDED) and is bounded by `retries`, and each
life of a replica as its own Job keeps its logs, exit code and times apart. Replicas that end
within STABLE_S of their start are a crash loop: each replacement then waits a backoff (1 s,
2 s, 4 s, … at most 300 s), and the Service's status shows the loop. While a backoff runs no
replica is created, for a scale-up either. Surplus replicas are cancelled, newest first (their
checkpoint signal, then SIGKILL after the grace period); deleting the Service cancels every
replica. Of the ended replicas of a Service the newest KEEP_ENDED are kept (their logs stay on
disk in any case); those of a deleted Service are deleted once they have ended.

A change to the template (command, resources, …) applies to replicas created after it; running
replicas are not rolled.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable

from pydantic import Field, ValidationError
from sqlalchemy import Connection, select

from altostrat.service import tables as t
from altostrat.service.attempts import backoff_s
from altostrat.service.objects import ObjectError, field_path, parse_object
from altostrat.service.pacing import Pacer
from altostrat.service.store import ACTIVE, CANCELLED, RUNNING, NotFound, Store, StoreError
from altostrat.spec.schema import Model

log = logging.getLogger("altostrat.services")

SERVICE_LABEL, SERVICE_ID_LABEL = "altostrat.service", "altostrat.service-id"
RESYNC_S = 1.0  # how often the controller looks at every Service without a wake-up
# woken passes (every mutating API call wakes the controller) take at most a tenth of the time (pacing.py)
PASS_GAP_S, PASS_MAX_GAP_S, PASS_DUTY = 0.01, 0.5, 0.1
STABLE_S = 60.0  # a replica that ends sooner after its start counts towards a crash loop
KEEP_ENDED = 5  # ended replicas kept per Service, newest first
REL_TOL = 1e-9


def desired_replicas(load: float, target_load: float, low: int, high: int) -> int:
    """clamp(ceil(load / targetLoad), low, high). A quotient a rounding error off an integer is
    that integer (1.1 / 0.1 is 11.000000000000002 in floating point: 11 replicas, not 12)."""
    quotient = load / target_load
    nearest = round(quotient)
    want = nearest if abs(quotient - nearest) <= REL_TOL * max(1.0, abs(quotient)) else math.ceil(quotient)
    return max(low, min(high, want))


def restart_delay_s(quick_exits: int) -> float:
    """The wait before the replacement of the `quick_exits`-th replica in a row that ended soon
    after its start (0: none): the retries' backoff."""
    return 0.0 if quick_exits <= 0 else backoff_s(quick_exits)


class Hysteresis:
    """A Service's replica count over time: up at once to what is recommended, down only to
    the highest count recommended over the last `delay` seconds. The recommendations are kept
    as change points (time, count), each in effect until the next; the first is the count the
    Service had when it was first seen, so that a restarted controller removes nothing before
    a full delay."""

    def __init__(self, now: float, current: int) -> None:
        self.points: list[tuple[float, int]] = [(now, current)]
        self.current = current

    def observe(self, now: float, recommended: int, delay: float, low: int, high: int) -> int:
        if recommended != self.points[-1][1]:
            self.points.append((now, recommended))
        start = now - delay
        while len(self.points) > 1 and self.points[1][0] <= start:  # points[0] is in effect at the window's start
            self.points.pop(0)
        highest = max(count for _, count in self.points)
        wanted = recommended if recommended >= self.current else min(self.current, highest)
        self.current = max(low, min(high, wanted))  # the bounds may have changed since
        return self.current


def replica_object(service: dict, name: str) -> dict:
    """The Job object of one replica of `service` (a stored row)."""
    spec = service["spec"]
    job = {"queue": spec["queue"], "command": spec["command"],
           "env": {**spec["env"], "ALTOSTRAT_SERVICE": service["name"]}, "resources": spec["resources"],
           "priority": spec["priority"]}
    if spec.get("workingDir"):
        job["workingDir"] = spec["workingDir"]
    return {"apiVersion": "altostrat/v1", "kind": "Job",
            "metadata": {"name": name, "labels": {SERVICE_LABEL: service["name"], SERVICE_ID_LABEL: str(service["id"])}},
            "spec": job}


class LoadReport(Model):
    """The body of `POST /v1/services/NAME:load`."""

    value: float = Field(ge=0, le=1e15, allow_inf_nan=False, description="the Service's load, in targetLoad's units")

    @classmethod
    def parse(cls, raw: object) -> LoadReport:
        try:
            return cls.model_validate(raw)
        except ValidationError as exc:
            raise ObjectError([(field_path(e["loc"]) or "value", e["msg"]) for e in exc.errors()]) from None


def record_load(store: Store, conn: Connection, name: str, value: float, scope: str | None) -> dict:
    """Store a Service's reported load (`POST /v1/services/NAME:load`); its view."""
    q = select(t.objects.c.id).where(t.objects.c.kind == "Service", t.objects.c.name == name)
    service_id = conn.execute(q if scope is None else q.where(t.objects.c.tenant == scope)).scalar()
    if service_id is None:  # another tenant's is missing too, word for word
        raise NotFound(f"no Service named {name!r}")
    store.update_job(conn, service_id, load=value, loadReportedAt=time.time())  # merges into any object's status
    return store.get(conn, "Service", name, scope)


class ServiceController:
    """Reconciles Services into replica Jobs: `reconcile` is one pass (tests call it directly);
    `start` runs passes on a thread, every RESYNC_S and when woken. `wake_reconciler` is called
    after a pass that created or cancelled replicas, so that they are scheduled at once."""

    def __init__(self, store: Store, wake_reconciler: Callable[[], None] = lambda: None,
                 clock: Callable[[], float] = time.time) -> None:
        self.store, self.wake_reconciler, self.clock = store, wake_reconciler, clock
        self.hysteresis: dict[int, Hysteresis] = {}
        self._wake = threading.Event()
        self.pacer = Pacer(PASS_GAP_S, PASS_MAX_GAP_S, PASS_DUTY)
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        self._thread = threading.Thread(target=self._loop, name="services", daemon=True)
        self._thread.start()

    def wake(self) -> None:
        self._wake.set()

    def stop(self) -> None:
        self._stop.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _loop(self) -> None:
        while not self._stop.is_set():
            if self._wake.wait(RESYNC_S):
                self._stop.wait(self.pacer.delay())
            self._wake.clear()
            if self._stop.is_set():
                break
            try:
                with self.pacer.timing():
                    acted = self.reconcile()
                if acted:
                    self.wake_reconciler()
            except Exception:  # noqa: BLE001  (a locked database, a bug: logged; the next pass tries again)
                log.exception("service pass failed")

    # -- one pass -------------------------------------------------------------------------
    def reconcile(self) -> bool:
        """Bring every Service's replicas to its desired count, in one transaction; True when
        replicas were created or cancelled."""
        now = self.clock()
        acted = False
        with self.store.tx() as conn:
            services = {r["id"]: dict(r) for r in conn.execute(
                select(t.objects).where(t.objects.c.kind == "Service").order_by(t.objects.c.id)).mappings()}
            owned: dict[str, list[dict]] = {}
            for r in conn.execute(select(t.objects).where(
                    t.objects.c.kind == "Job", t.objects.c.labels[SERVICE_ID_LABEL].as_string().is_not(None))
                    .order_by(t.objects.c.id)).mappings():
                owned.setdefault(r["labels"][SERVICE_ID_LABEL], []).append(dict(r))
            for owner, rows in owned.items():
                service = services.get(int(owner)) if owner.isdigit() else None
                if service is None:
                    acted |= self._orphans(conn, rows)
            for service in services.values():
                mine = [r for r in owned.get(str(service["id"]), []) if r["tenant"] == service["tenant"]]
                acted |= self._service(conn, service, mine, now)
        self.hysteresis = {i: h for i, h in self.hysteresis.items() if i in services}
        return acted

    def _orphans(self, conn: Connection, rows: list[dict]) -> bool:
        """Replicas of a deleted Service: cancelled, and deleted once ended."""
        acted = False
        for r in rows:
            if r["state"] not in ACTIVE:
                self.store.delete(conn, "Job", r["name"])
            elif not r["status"].get("cancelRequested"):
                self.store.update_job(conn, r["id"], cancelRequested=True, stopReason="its service was deleted")
                acted = True
        return acted

    def _service(self, conn: Connection, service: dict, mine: list[dict], now: float) -> bool:
        spec, status, name = service["spec"], service["status"], service["name"]
        low, high = spec["minReplicas"], spec["maxReplicas"]
        new = {k: status[k] for k in ("restarts", "quickExits", "nextRestartAt", "lastExit", "lastScaleTime",
                                      "nextReplica") if k in status}
        new.setdefault("restarts", 0)
        new.setdefault("quickExits", 0)
        new.setdefault("nextReplica", 1)
        for r in mine:  # replicas that ended since the last pass
            if r["state"] in ACTIVE or r["status"].get("serviceSeen"):
                continue
            self.store.update_job(conn, r["id"], serviceSeen=True)
            if r["status"].get("stopReason"):
                continue  # the controller stopped it
            self._exit(new, name, r, now)

        recommended = desired_replicas(status.get("load", 0.0), spec["targetLoad"], low, high)
        hyst = self.hysteresis.get(service["id"])
        if hyst is None:
            hyst = self.hysteresis[service["id"]] = Hysteresis(now, status.get("desired", recommended))
        desired = hyst.observe(now, recommended, spec["scaleDownDelayS"], low, high)
        if desired != status.get("desired"):
            new["lastScaleTime"] = now
            log.info("service %s: %s -> %d replicas (load %s, target %g per replica)", name, status.get("desired"),
                     desired, status.get("load"), spec["targetLoad"],
                     extra={"event": "scaled", "service": name, "desired": desired, "load": status.get("load")})

        active = [r for r in mine if r["state"] in ACTIVE and not r["status"].get("cancelRequested")]
        terminating = sum(1 for r in mine if r["state"] in ACTIVE and r["status"].get("cancelRequested"))
        reason = None
        acted = False
        if len(active) > desired:
            for r in sorted(active, key=lambda r: r["id"], reverse=True)[:len(active) - desired]:
                self.store.update_job(conn, r["id"], cancelRequested=True, stopReason="scale-down")
                terminating += 1
            active = sorted(active, key=lambda r: r["id"])[:desired]
            acted = True
        elif len(active) < desired:
            if now < new.get("nextRestartAt", 0):
                reason = (f"crash loop: {new['quickExits']} replica(s) in a row ended within {STABLE_S:g} s of their "
                          f"start; the next one starts after a {restart_delay_s(new['quickExits']):g} s backoff")
            else:
                made, reason = self._create(conn, service, desired - len(active), new)
                active += made
                acted = bool(made)
        for r in sorted((r for r in mine if r["state"] not in ACTIVE), key=lambda r: r["id"])[:-KEEP_ENDED]:
            self.store.delete(conn, "Job", r["name"])  # old history; the logs stay on disk

        ready = sum(1 for r in active if r["state"] == RUNNING)
        new.update(desired=desired, replicas=len(active), ready=ready, terminating=terminating, reason=reason)
        if any(status.get(k) != v for k, v in new.items()):
            self.store.update_job(conn, service["id"], **new)  # merges into any object's status; None removes
        return acted

    def _exit(self, new: dict, name: str, replica: dict, now: float) -> None:
        """A replica that ended on its own: count it; back off if it ended soon after its start."""
        rs = replica["status"]
        started, finished = rs.get("startedAt"), rs.get("finishedAt", now)
        new["restarts"] += 1
        if replica["state"] != CANCELLED:  # someone cancelled it: replaced at once, no crash
            quick = started is None or finished - started < STABLE_S
            new["quickExits"] = new["quickExits"] + 1 if quick else 0
            new["nextRestartAt"] = finished + restart_delay_s(new["quickExits"])
        new["lastExit"] = {"replica": replica["name"], "state": replica["state"], "exitCode": rs.get("exitCode"),
                           "reason": rs.get("reason"), "at": finished}
        log.info("service %s: replica %s ended %s (%s); replacing it", name, replica["name"], replica["state"],
                 rs.get("reason") or f"exit code {rs.get('exitCode')}",
                 extra={"event": "replica-ended", "service": name, "job": replica["name"], "state": replica["state"],
                        "exit_code": rs.get("exitCode"), "quick_exits": new["quickExits"]})

    def _create(self, conn: Connection, service: dict, count: int, new: dict) -> tuple[list[dict], str | None]:
        """Up to `count` new replica Jobs (the next free NAME-N each): (their rows, why fewer)."""
        made = []
        for _ in range(count):
            n = new["nextReplica"]
            while conn.execute(select(t.objects.c.id).where(t.objects.c.kind == "Job",
                                                            t.objects.c.name == f"{service['name']}-{n}")).first():
                n += 1  # a Job of that name exists (someone's own, or an ended replica of an older Service)
            name = f"{service['name']}-{n}"
            try:
                # the Service's tenant as scope: its queue must still be one of that tenant's
                self.store.apply(conn, parse_object(replica_object(service, name)), service["tenant"])
            except (ObjectError, StoreError) as exc:
                return made, f"cannot create replicas: {exc}"
            new["nextReplica"] = n + 1
            made.append(dict(conn.execute(select(t.objects).where(t.objects.c.kind == "Job", t.objects.c.name == name))
                             .mappings().one()))
            log.info("service %s: replica %s created", service["name"], name,
                     extra={"event": "replica-created", "service": service["name"], "job": name})
        return made, None
