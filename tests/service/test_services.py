"""Services: the scaling rule, its hysteresis, the API's validation and the controller on a store."""

from __future__ import annotations

import tempfile

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import select

from altostrat.service import tables as t
from altostrat.service.api import create_app
from altostrat.service.objects import parse_object
from altostrat.service.services import (SERVICE_ID_LABEL, SERVICE_LABEL, Hysteresis, ServiceController,
                                        desired_replicas, record_load, restart_delay_s)
from altostrat.service.database import database_url
from altostrat.service.store import ACTIVE, CANCELLED, FAILED, RUNNING, SUCCEEDED, Store

ADMIN = "services-admin-token"


def obj(kind: str, name: str, **spec) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def service(name: str = "web", queue: str = "q", **spec) -> dict:
    return obj("Service", name, **{"queue": queue, "command": ["sleep", "600"], "maxReplicas": 3, "targetLoad": 10,
                                   **spec})


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


# -- the scaling rule ------------------------------------------------------------------------
@pytest.mark.parametrize("load, target, low, high, expected", [
    (0, 10, 1, 3, 1),        # no load: the minimum
    (0, 10, 0, 3, 0),
    (10, 10, 1, 3, 1),       # exactly one replica's worth
    (10.5, 10, 1, 3, 2),     # a little more: ceil
    (25, 10, 1, 3, 3),
    (1000, 10, 1, 3, 3),     # clamped to the maximum
    (5, 10, 2, 3, 2),        # clamped to the minimum
    (1.1, 0.1, 0, 20, 11),   # 1.1 / 0.1 is 11.000000000000002 in floating point: still 11
    (0.7, 0.1, 0, 20, 7),    # 6.999999999999999: 7
    (0.71, 0.1, 0, 20, 8),
])
def test_desired_replicas_is_ceil_of_load_over_target_clamped(load, target, low, high, expected):
    assert desired_replicas(load, target, low, high) == expected


def test_backoff_doubles_from_one_second_up_to_five_minutes():
    assert [restart_delay_s(n) for n in (0, 1, 2, 3, 4, 9, 10, 50)] == [0, 1, 2, 4, 8, 256, 300, 300]


def test_hysteresis_scales_up_at_once_and_down_after_the_delay():
    h = Hysteresis(0.0, 1)
    assert h.observe(1.0, 3, 10, 1, 5) == 3    # up at once
    assert h.observe(5.0, 1, 10, 1, 5) == 3    # lower since t=5
    assert h.observe(14.9, 1, 10, 1, 5) == 3   # 3 was recommended until t=5, within the last 10 s
    assert h.observe(15.0, 1, 10, 1, 5) == 1   # a full delay of lower recommendations
    assert h.observe(16.0, 4, 10, 1, 5) == 4


def test_hysteresis_goes_down_to_the_highest_recommendation_of_the_window():
    h = Hysteresis(0.0, 4)                     # first seen with 4 replicas: nothing goes before t=10
    assert h.observe(2.0, 1, 10, 1, 5) == 4
    assert h.observe(6.0, 2, 10, 1, 5) == 4
    assert h.observe(11.9, 2, 10, 1, 5) == 4   # 4 was recommended until t=2
    assert h.observe(12.0, 2, 10, 1, 5) == 2   # the window [2, 12] held 1 and 2
    assert h.observe(17.0, 2, 10, 1, 5) == 2   # 1 was never the highest of a window: never scaled to 1


def test_hysteresis_follows_changed_bounds_at_once():
    h = Hysteresis(0.0, 5)
    assert h.observe(1.0, 2, 60, 1, 2) == 2    # maxReplicas lowered to 2: no waiting
    assert h.observe(2.0, 3, 60, 3, 5) == 3    # minReplicas raised to 3


# -- the API -----------------------------------------------------------------------------------
@pytest.fixture
def api(store):
    store.ensure_admin_token(ADMIN)
    client = TestClient(create_app(store), raise_server_exceptions=False)
    objects = [obj("Tenant", "a"), obj("Tenant", "b"), obj("Queue", "q", tenant="a"), obj("Queue", "qb", tenant="b")]
    assert client.post("/v1/objects:batch", json={"objects": objects}, headers=bearer(ADMIN)).status_code == 200
    client.tokens = {t: client.post("/v1/tokens", json={"role": role, "tenant": tenant},
                                    headers=bearer(ADMIN)).json()["token"]
                     for t, role, tenant in (("a", "tenant", "a"), ("b", "tenant", "b"), ("viewer", "viewer", None))}
    return client


@pytest.mark.parametrize("spec, field, message", [
    ({"minReplicas": 4}, "spec.maxReplicas", "must be at least minReplicas (4)"),
    ({"targetLoad": 0}, "spec.targetLoad", "greater than 0"),
    ({"maxReplicas": 0}, "spec.maxReplicas", "greater than or equal to 1"),
    ({"minReplicas": -1}, "spec.minReplicas", "greater than or equal to 0"),
    ({"scaleDownDelayS": -5}, "spec.scaleDownDelayS", "greater than or equal to 0"),
    ({"command": []}, "spec.command", "at least 1 item"),
    ({"resources": {"gpu": -1}}, "spec.resources.gpu", "greater than or equal to 0"),
    ({"queue": "nope"}, "spec.queue", "no Queue named 'nope'; apply it first"),
    ({"replicas": 2}, "spec.replicas", "Extra inputs are not permitted"),
])
def test_an_invalid_service_is_a_422_naming_the_field(api, spec, field, message):
    r = api.post("/v1/objects", json=service(**spec), headers=bearer(ADMIN))
    assert r.status_code == 422, r.text
    [error] = r.json()["detail"]
    assert error["field"] == field and message in error["message"], error


def test_a_service_name_leaves_room_for_its_replicas_names(api):
    r = api.post("/v1/objects", json=service(name="s" * 241), headers=bearer(ADMIN))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "metadata.name"
    assert api.post("/v1/objects", json=service(name="s" * 240), headers=bearer(ADMIN)).status_code == 201


def test_load_reports_are_validated_tenant_scoped_and_audited(api, store):
    a, b = api.tokens["a"], api.tokens["b"]
    assert api.post("/v1/objects", json=service(), headers=bearer(a)).status_code == 201  # a tenant applies its own
    r = api.post("/v1/services/web:load", json={"value": 25}, headers=bearer(a))
    assert r.status_code == 200, r.text
    assert r.json()["object"]["status"]["load"] == 25
    for body, field in (({"value": -1}, "value"), ({"value": "many"}, "value"), ({}, "value"),
                        ({"value": 1, "extra": 2}, "extra")):
        r = api.post("/v1/services/web:load", json=body, headers=bearer(a))
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, (body, r.text)
    missing = api.post("/v1/services/nope:load", json={"value": 1}, headers=bearer(b))
    other = api.post("/v1/services/web:load", json={"value": 1}, headers=bearer(b))
    assert (other.status_code, other.json()["detail"]) == (404, "no Service named 'web'")
    assert (missing.status_code, missing.json()["detail"]) == (404, "no Service named 'nope'")
    assert api.post("/v1/services/web:load", json={"value": 1}, headers=bearer(api.tokens["viewer"])).status_code == 403
    assert api.get("/v1/services/web", headers=bearer(a)).json()["status"]["load"] == 25  # no refused call changed it
    assert api.get("/v1/services", headers=bearer(b)).json()["items"] == []
    rows = [(r["who"], r["action"], r["target"], r["result"]) for r in store.audit_rows() if "web" in r["target"]]
    assert rows[:2] == [("tenant of a", "apply", "Service/web", "created"),
                        ("tenant of a", "load", "Service/web", "recorded 25")]
    assert ("tenant of b", "POST", "/v1/services/web:load", "refused 404") in rows


def test_a_queue_with_a_service_cannot_be_deleted(api):
    assert api.post("/v1/objects", json=service(minReplicas=0), headers=bearer(ADMIN)).status_code == 201
    r = api.delete("/v1/queues/q", headers=bearer(ADMIN))
    assert (r.status_code, r.json()["detail"]) == (409, "queue q still has services (web); delete them first")


# -- the controller on a store (no executor: the tests move replicas through their states) --------
class World:
    def __init__(self, store: Store) -> None:
        self.store, self.now, self.wakes = store, 1000.0, 0
        self.ctl = ServiceController(store, self._woken, clock=lambda: self.now)
        self.apply(obj("Tenant", "a"), obj("Tenant", "b"), obj("Queue", "q", tenant="a"), obj("Queue", "qb", tenant="b"))

    def _woken(self) -> None:
        self.wakes += 1

    def apply(self, *objects: dict, scope: str | None = None) -> None:
        with self.store.tx() as conn:
            for o in objects:
                self.store.apply(conn, parse_object(o), scope)

    def reconcile(self) -> bool:
        return self.ctl.reconcile()

    def jobs(self) -> dict[str, dict]:
        with self.store.tx() as conn:
            return {j["name"]: j for j in self.store.jobs(conn, (*ACTIVE, SUCCEEDED, FAILED, CANCELLED))}

    def replicas(self, service_name: str = "web") -> dict[str, str]:
        """name -> state of the Jobs labelled with the service; cancelling ones end in '+cancel'."""
        return {n: j["state"] + ("+cancel" if j["status"].get("cancelRequested") else "")
                for n, j in self.jobs().items() if j["labels"].get(SERVICE_LABEL) == service_name}

    def status(self, name: str = "web") -> dict:
        with self.store.tx() as conn:
            return self.store.get(conn, "Service", name)["status"]

    def set(self, job: str, state: str, **status) -> None:
        """What the reconciler writes as a replica runs or ends."""
        job_id = self.jobs()[job]["id"]
        with self.store.tx() as conn:
            self.store.update_job(conn, job_id, state, **status)

    def load(self, value: float, name: str = "web") -> None:
        with self.store.tx() as conn:
            record_load(self.store, conn, name, value, None)


def test_the_controller_scales_restarts_and_deletes_replicas(store):
    w = World(store)
    w.apply(service(minReplicas=1, maxReplicas=3, targetLoad=10, scaleDownDelayS=5))
    assert w.reconcile() is True and w.wakes == 0  # the thread wakes the reconciler, not a direct call
    assert w.replicas() == {"web-1": "PENDING"}
    job = w.jobs()["web-1"]
    assert job["labels"] == {SERVICE_LABEL: "web", SERVICE_ID_LABEL: str(store_id(store, "web"))}
    assert job["tenant"] == "a" and job["spec"]["queue"] == "q" and job["spec"]["command"] == ["sleep", "600"]
    assert job["spec"]["env"] == {"ALTOSTRAT_SERVICE": "web"} and job["spec"]["retries"] == 0
    w.set("web-1", RUNNING, startedAt=w.now)
    assert w.reconcile() is False
    s = w.status()
    assert (s["desired"], s["replicas"], s["ready"], s["restarts"], s["lastScaleTime"]) == (1, 1, 1, 0, 1000.0)
    assert w.reconcile() is False and w.status() == s  # nothing changed: the status is not rewritten

    w.now = 1010.0
    w.load(25)  # ceil(25 / 10) = 3
    assert w.reconcile() is True
    assert w.replicas() == {"web-1": "RUNNING", "web-2": "PENDING", "web-3": "PENDING"}
    assert (w.status()["desired"], w.status()["lastScaleTime"]) == (3, 1010.0)
    w.set("web-2", RUNNING, startedAt=1010.0)
    w.set("web-3", RUNNING, startedAt=1010.0)

    # web-2 dies 2 s after its start: a quick exit, replaced after a 1 s backoff by a new Job
    w.now = 1012.0
    w.set("web-2", FAILED, exitCode=-9, finishedAt=1012.0, reason="task 0 exited with code -9")
    w.reconcile()
    s = w.status()
    assert (s["restarts"], s["quickExits"], s["nextRestartAt"], s["replicas"]) == (1, 1, 1013.0, 2)
    assert s["lastExit"] == {"replica": "web-2", "state": "FAILED", "exitCode": -9,
                             "reason": "task 0 exited with code -9", "at": 1012.0}
    assert s["reason"].startswith("crash loop: 1 replica(s) in a row ended within 60 s")
    assert "web-4" not in w.replicas()
    w.now = 1013.0
    assert w.reconcile() is True
    assert w.replicas()["web-4"] == "PENDING" and "reason" not in w.status()
    w.set("web-4", RUNNING, startedAt=1013.0)

    # the load drops at t=1020: three replicas until the 5 s delay has passed, then one (newest cancelled)
    w.now = 1020.0
    w.load(5)
    w.reconcile()
    w.now = 1024.9
    assert w.reconcile() is False and w.status()["desired"] == 3
    w.now = 1025.0
    assert w.reconcile() is True
    assert w.replicas() == {"web-1": "RUNNING", "web-2": "FAILED", "web-3": "RUNNING+cancel", "web-4": "RUNNING+cancel"}
    s = w.status()
    assert (s["desired"], s["replicas"], s["ready"], s["terminating"], s["lastScaleTime"]) == (1, 1, 1, 2, 1025.0)
    for name in ("web-3", "web-4"):
        w.set(name, CANCELLED, finishedAt=1026.0)
    w.now = 1026.0
    w.reconcile()
    s = w.status()
    assert (s["restarts"], s["terminating"], s["replicas"]) == (1, 0, 1)  # stopped by the controller: no restart

    # deleting the Service cancels its replicas; once ended they are deleted too
    with store.tx() as conn:
        store.delete(conn, "Service", "web")
    assert w.reconcile() is True
    assert w.replicas() == {"web-1": "RUNNING+cancel"}  # the ended ones are deleted at once
    w.set("web-1", CANCELLED, finishedAt=1027.0)
    w.reconcile()
    assert w.replicas() == {}


def test_a_long_run_resets_the_crash_loop_and_a_cancel_by_someone_is_no_crash(store):
    w = World(store)
    w.apply(service(minReplicas=1, maxReplicas=1))
    w.reconcile()
    w.set("web-1", RUNNING, startedAt=1000.0)
    w.set("web-1", SUCCEEDED, exitCode=0, finishedAt=1100.0)  # ran 100 s, then exited 0: replaced at once
    w.now = 1100.0
    w.reconcile()
    assert w.replicas() == {"web-1": "SUCCEEDED", "web-2": "PENDING"}
    assert (w.status()["quickExits"], w.status()["restarts"]) == (0, 1)
    w.set("web-2", CANCELLED, finishedAt=1100.0, cancelRequested=True)  # someone cancelled it
    w.reconcile()
    assert w.replicas()["web-3"] == "PENDING" and w.status()["restarts"] == 2


def test_replica_names_skip_jobs_that_exist_and_foreign_labels_own_nothing(store):
    w = World(store)
    labels = {SERVICE_LABEL: "web", SERVICE_ID_LABEL: "6"}  # the id the Service gets below
    w.apply({**obj("Job", "web-1", queue="qb", command=["true"]), "metadata": {"name": "web-1", "labels": labels}})
    w.apply(service(minReplicas=2))  # tenant a's; the Job above is tenant b's
    assert store_id(store, "web") == 6
    w.reconcile()
    assert w.replicas() == {"web-1": "PENDING", "web-2": "PENDING", "web-3": "PENDING"}
    assert w.jobs()["web-1"]["tenant"] == "b" and w.status()["replicas"] == 2


def test_deleting_and_recreating_a_service_does_not_adopt_the_old_replicas(store):
    w = World(store)
    w.apply(service(minReplicas=1))
    w.reconcile()
    with store.tx() as conn:
        store.delete(conn, "Service", "web")
    w.apply(service(minReplicas=1))
    w.reconcile()
    assert w.replicas() == {"web-1": "PENDING+cancel", "web-2": "PENDING"}


def store_id(store: Store, name: str) -> int:
    with store.tx() as conn:
        return conn.execute(select(t.objects.c.id).where(t.objects.c.kind == "Service",
                                                         t.objects.c.name == name)).scalar_one()


# -- property: whatever happens to replicas, loads and specs --------------------------------------
SERVICES = {"web": ("q", "a"), "api": ("qb", "b")}  # name -> (queue, tenant)
ops = st.one_of(
    st.tuples(st.just("load"), st.sampled_from(sorted(SERVICES)), st.floats(0, 100)),
    st.tuples(st.just("bounds"), st.sampled_from(sorted(SERVICES)), st.integers(0, 3), st.integers(0, 3)),
    st.tuples(st.just("run"), st.sampled_from(sorted(SERVICES)), st.integers(0, 5)),
    st.tuples(st.just("end"), st.sampled_from(sorted(SERVICES)), st.integers(0, 5),
              st.sampled_from([SUCCEEDED, FAILED, CANCELLED]), st.floats(0, 120)),
    st.tuples(st.just("tick"), st.floats(0, 30)),
    st.tuples(st.just("delete"), st.sampled_from(sorted(SERVICES))),
    st.tuples(st.just("create"), st.sampled_from(sorted(SERVICES)), st.integers(0, 3), st.integers(0, 3)),
)


def _spec(name: str, low: int, extra: int) -> dict:
    return service(name, SERVICES[name][0], minReplicas=low, maxReplicas=max(1, low + extra), targetLoad=10,
                   scaleDownDelayS=20)


@settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(steps=st.lists(ops, max_size=20))
def test_replicas_stay_within_bounds_and_belong_to_one_service(steps):
    with tempfile.TemporaryDirectory() as tmp:
        store = Store(database_url(tmp, None))
        store.upgrade()
        try:
            w = World(store)
            w.apply(_spec("web", 1, 2), _spec("api", 0, 3))
            w.apply({**obj("Job", "forged", queue="qb", command=["true"]),  # tenant b's, labelled as web's
                     "metadata": {"name": "forged", "labels": {SERVICE_LABEL: "web", SERVICE_ID_LABEL: "5"}}})
            w.reconcile()
            _check(w)
            for step in steps:
                _step(w, step)
                w.reconcile()
                _check(w)
        finally:
            store.close()


def _step(w: World, step: tuple) -> None:
    kind, *args = step
    existing = {s["metadata"]["name"]: s for s in _services(w)}
    if kind == "tick":
        w.now += args[0]
    elif kind == "load" and args[0] in existing:
        w.load(args[1], args[0])
    elif kind in ("bounds", "create"):
        w.apply(_spec(*args))
    elif kind == "delete" and args[0] in existing:
        with w.store.tx() as conn:
            w.store.delete(conn, "Service", args[0])
    elif kind in ("run", "end"):
        live = [j for j in w.jobs().values() if j["labels"].get(SERVICE_LABEL) == args[0] and j["state"] in ACTIVE
                and j["name"] != "forged"]
        if live:
            job = sorted(live, key=lambda j: j["id"])[args[1] % len(live)]
            if kind == "run":
                w.set(job["name"], RUNNING, startedAt=w.now)
            else:
                w.set(job["name"], args[2], startedAt=job["status"].get("startedAt", w.now), finishedAt=w.now + args[3])


def _services(w: World) -> list[dict]:
    with w.store.tx() as conn:
        return w.store.list(conn, "Service")


def _check(w: World) -> None:
    services = {(s["metadata"]["tenant"], str(store_id(w.store, s["metadata"]["name"]))): s for s in _services(w)}
    counted: dict[str, tuple] = {}
    for job in w.jobs().values():
        if SERVICE_ID_LABEL not in job["labels"] or job["state"] not in ACTIVE or job["status"].get("cancelRequested"):
            continue
        owner = (job["tenant"], job["labels"][SERVICE_ID_LABEL])
        if job["name"] == "forged":
            assert owner not in services  # another tenant's label owns nothing: left alone
            continue
        assert owner in services, f"{job['name']} runs on for a deleted service"
        assert job["name"] not in counted
        counted[job["name"]] = owner
    for owner, s in services.items():
        spec, status = s["spec"], s["status"]
        mine = sum(1 for o in counted.values() if o == owner)
        assert spec["minReplicas"] <= status["desired"] <= spec["maxReplicas"], status
        assert status["ready"] <= status["replicas"] == mine <= status["desired"]
        # fewer than desired only while a crash loop's backoff runs
        assert mine == status["desired"] or w.now < status.get("nextRestartAt", 0), (status, w.now)
