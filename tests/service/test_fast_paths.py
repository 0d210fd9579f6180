"""The submit path's shortcuts keep apply()'s meaning: a batch applied by apply_many ends exactly
as one apply() after another; the submit endpoints, which read their bodies themselves, end as
parse_object and apply() do, refusing in the same order with the same field-level 422s; reads
take no write lock; an incremental sync skips only what it has seen at the same version; a
start records how long its recovery took."""

from __future__ import annotations

import json
import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from fastapi.testclient import TestClient
from sqlalchemy import insert

from altostrat.service import tables as t
from altostrat.service.api import create_app
from altostrat.service.objects import ObjectError, parse_object
from altostrat.service.pacing import Pacer
from altostrat.service.reconciler import Reconciler
from altostrat.service.database import database_url
from altostrat.service.store import Conflict, Store

TIMES = ("createdAt", "updatedAt")


def obj(kind: str, name: str, **spec) -> object:
    return parse_object({"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})


def untimed(view: dict) -> dict:
    return {**view, "metadata": {k: v for k, v in view["metadata"].items() if k not in TIMES}}


def stored(store: Store) -> list[tuple]:
    """Every object row but its id and times, in id order."""
    with store.read() as conn:
        rows = conn.execute(t.objects.select().order_by(t.objects.c.id)).mappings().all()
    return [(r["kind"], r["name"], r["tenant"], r["spec"], r["labels"], r["state"], r["resource_version"]) for r in rows]


def fresh(tmp_path, name: str, url: str | None = None) -> Store:
    """Tenants a and b, queues qa (a) and qb (b), a pending job "old" in qa; SQLite unless `url`."""
    store = Store(url or database_url(tmp_path / name, None))
    store.upgrade()
    with store.tx() as conn:
        for o in (obj("Tenant", "a"), obj("Tenant", "b"), obj("Queue", "qa", tenant="a"),
                  obj("Queue", "qb", tenant="b")):
            store.apply(conn, o)
        store.apply(conn, obj("Job", "old", queue="qa", command=["true"]))
    return store


def test_apply_many_by_hand(tmp_path):
    store = fresh(tmp_path, "s")
    batch = [obj("Job", "j1", queue="qa", command=["true"]),
             obj("Queue", "qc", tenant="b"),
             obj("Job", "j2", queue="qc", command=["true"]),  # its queue came earlier in the batch
             obj("Job", "j1", queue="qa", command=["true"]),  # a second time: unchanged
             obj("Job", "old", queue="qa", command=["false"]),  # exists: updated
             obj("Job", "j3", queue="qa", command=["true"])]
    with store.tx() as conn:
        done = store.apply_many(conn, batch)
    assert [(r, v["kind"], v["metadata"]["name"], v["metadata"].get("tenant")) for r, v in done] == [
        ("created", "Job", "j1", "a"), ("created", "Queue", "qc", "b"), ("created", "Job", "j2", "b"),
        ("unchanged", "Job", "j1", "a"), ("updated", "Job", "old", "a"), ("created", "Job", "j3", "a")]
    # a created job's view is the one a read gives
    with store.read() as conn:
        assert done[5][1] == store.get(conn, "Job", "j3")
    assert [(name, rv) for kind, name, *_, rv in stored(store) if kind == "Job"] == [
        ("old", 2), ("j1", 1), ("j2", 1), ("j3", 1)]
    with store.tx() as conn, pytest.raises(ObjectError) as err:
        store.apply_many(conn, [obj("Job", "x", queue="qa", command=["true"]),
                                obj("Job", "y", queue="nope", command=["true"])])
    assert err.value.errors == [("objects[1].spec.queue", "no Queue named 'nope'; apply it first")]
    with store.tx() as conn, pytest.raises(ObjectError) as err:  # another tenant's queue is a missing one
        store.apply_many(conn, [obj("Job", "x", queue="qb", command=["true"])], scope="a")
    assert err.value.errors == [("objects[0].spec.queue", "no Queue named 'qb'; apply it first")]
    store.close()


NAMES = st.sampled_from(["j1", "j2", "j3", "old"])
JOBS = st.builds(lambda name, queue, cmd: obj("Job", name, queue=queue, command=[cmd]),
                 NAMES, st.sampled_from(["qa", "qb", "qc", "nope"]), st.sampled_from(["true", "false"]))
OTHERS = st.sampled_from([obj("Queue", "qc", tenant="a"), obj("Queue", "qc", tenant="b"), obj("Tenant", "c")])


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(batch=st.lists(st.one_of(JOBS, JOBS, OTHERS), max_size=8), scope=st.sampled_from([None, "a"]))
def test_apply_many_is_apply_in_order(tmp_path_factory, batch, scope):
    tmp = tmp_path_factory.mktemp("p")
    one, many = fresh(tmp, "one"), fresh(tmp, "many")
    try:
        if scope is not None:
            batch = [o for o in batch if o.kind == "Job"]  # a tenant applies only Jobs
        expected, failure = [], None
        with one.tx() as conn:
            for i, o in enumerate(batch):
                try:
                    expected.append(one.apply(conn, o, scope))
                except (ObjectError, Conflict) as exc:
                    failure = (i, exc)
                    break
        try:
            with many.tx() as conn:
                got = many.apply_many(conn, batch, scope)
        except (ObjectError, Conflict) as exc:
            assert failure is not None, exc
            i, first = failure
            assert type(exc) is type(first)
            if isinstance(exc, ObjectError):
                assert exc.errors == [(f"objects[{i}].{f}", m) for f, m in first.errors]
            else:
                assert str(exc) == str(first)
            return
        assert failure is None, failure
        assert [(r, untimed(v)) for r, v in got] == [(r, untimed(v)) for r, v in expected]
        assert stored(many) == stored(one)
    finally:
        one.close()
        many.close()


def test_a_read_does_not_wait_for_the_writer(store):
    token = store.ensure_admin_token(None)
    found = []
    with store.tx() as conn:  # holds SQLite's write lock until the block ends
        conn.execute(insert(t.audit).values(at=0.0, who="w", action="a", target="t", result="r"))
        reader = threading.Thread(target=lambda: found.append(store.principal(token)))
        reader.start()
        reader.join(timeout=10)  # a BEGIN IMMEDIATE would wait here for the lock (up to 30 s)
        assert not reader.is_alive()
    assert found[0]["role"] == "admin"


def test_job_versions_and_jobs_by_id(store):
    with store.tx() as conn:
        for o in (obj("Tenant", "a"), obj("Queue", "q", tenant="a"), obj("Job", "j1", queue="q", command=["true"]),
                  obj("Job", "j2", queue="q", command=["true"])):
            store.apply(conn, o)
        j1, j2 = (store._row(conn, "Job", n)["id"] for n in ("j1", "j2"))
        store.update_job(conn, j2, "SUCCEEDED")  # no longer active
        store.update_job(conn, j1, cancelRequested=True)
    with store.read() as conn:  # one transaction: one change seq
        assert store.job_versions(conn, 0) == store.job_versions(conn, None) == ({j1: 2}, 1)
        assert store.job_versions(conn, 1) == ({}, 1)
        assert [r["name"] for r in store.jobs_by_id(conn, [j2, j1])] == ["j1", "j2"]
    with store.tx() as conn:
        store.update_job(conn, j1, "RUNNING")
        store.apply(conn, obj("Job", "j3", queue="q", command=["true"]))
    with store.tx() as conn:
        store.apply(conn, obj("Queue", "r", tenant="a"))  # a write that is not a job's
    with store.read() as conn:  # exactly what the later transactions wrote, and the last change seen
        j3 = store._row(conn, "Job", "j3")["id"]
        assert store.job_versions(conn, 1) == ({j1: 3, j3: 1}, 2)
        assert store.job_versions(conn, 2) == ({}, 2)


def test_start_records_its_recovery_time(store, tmp_path):
    rec = Reconciler(store, "fcfs+best-fit", tmp_path)
    assert rec.obs.recovery_seconds._value.get() == 0.0
    rec.start()
    try:
        assert rec.obs.recovery_seconds._value.get() > 0.0
    finally:
        rec.stop()


# -- the submit endpoints (submit.py reads their bodies itself) ------------------------------
ADMIN = "fast-path-admin"
AUTH = {"Authorization": f"Bearer {ADMIN}"}


def raw_job(name: str, queue: str = "qa", **spec) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"queue": queue, "command": ["true"], **spec}}


# valid and invalid objects: bad fields, unknown queues, a started job's change (409), other kinds
RAW = st.one_of(
    st.builds(raw_job, NAMES, st.sampled_from(["qa", "qb", "qc", "nope"]),
              command=st.sampled_from([["true"], ["false"], []]), tasks=st.sampled_from([1, 2, 0])),
    st.sampled_from([{**raw_job("qc"), "kind": "Queue", "spec": {"tenant": "a"}},
                     {**raw_job("qc"), "kind": "Queue", "spec": {"tenant": "x"}},
                     {**raw_job("g"), "kind": "Gadget"},
                     {**raw_job("j1"), "metadata": {"name": "no/slash"}},
                     {**raw_job("j2"), "spec": {"queue": "qa", "command": ["true"], "bogus": 1}}]))


def parses(raw: dict) -> bool:
    try:
        parse_object(raw)
    except ObjectError:
        return False
    return True


def expected_answer(store: Store, raw: dict) -> tuple[int, object]:
    """What the general path (parse_object, then Store.apply in a transaction) makes of `raw`:
    (status, untimed view) or (status, the error's fields or message)."""
    try:
        o = parse_object(raw)
        with store.tx() as conn:
            result, view = store.apply(conn, o)
    except ObjectError as exc:
        return 422, [{"field": f, "message": m} for f, m in exc.errors]
    except Conflict as exc:
        return 409, str(exc)
    return 201 if result == "created" else 200, (result, untimed(view))


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raws=st.lists(RAW, max_size=8))
def test_the_submit_endpoint_ends_as_the_general_path(tmp_path_factory, raws):
    tmp = tmp_path_factory.mktemp("api")
    served, direct = fresh(tmp, "served"), fresh(tmp, "direct")
    served.ensure_admin_token(ADMIN)
    with served.tx() as conn:  # "old" has started: changing its spec is a 409
        served.update_job(conn, served._row(conn, "Job", "old")["id"], "RUNNING")
    with direct.tx() as conn:
        direct.update_job(conn, direct._row(conn, "Job", "old")["id"], "RUNNING")
    raws = [*raws, raw_job("old", command=["false"])]
    try:
        with TestClient(create_app(served), raise_server_exceptions=False) as client:
            for raw in raws:
                r = client.post("/v1/objects", json=raw, headers=AUTH)
                status, want = expected_answer(direct, raw)
                assert r.status_code == status, (raw, r.text)
                got = r.json()
                if status < 300:
                    assert (got["result"], untimed(got["object"])) == want
                else:
                    assert got["detail"] == want
        assert stored(served) == stored(direct)
        # one audit row per call: the applied ones with their result, the refused ones with their status
        audit = [(r["action"], r["result"]) for r in served.audit_rows()]
        assert len(audit) == len(raws) and all(a in ("apply", "POST") for a, _ in audit)
    finally:
        served.close()
        direct.close()


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(raws=st.lists(RAW, max_size=8))
def test_a_batch_ends_as_its_objects_one_by_one(tmp_path_factory, raws):
    """A valid batch leaves what its objects sent one by one leave; an invalid one leaves nothing
    and names the first failing object's field, indexed."""
    tmp = tmp_path_factory.mktemp("batch")
    one, many = fresh(tmp, "one"), fresh(tmp, "many")
    for s in (one, many):
        s.ensure_admin_token(ADMIN)
    try:
        with TestClient(create_app(one), raise_server_exceptions=False) as c1, \
                TestClient(create_app(many), raise_server_exceptions=False) as c2:
            before = stored(many)
            r = c2.post("/v1/objects:batch", json={"objects": raws}, headers=AUTH)
            singles = [c1.post("/v1/objects", json=raw, headers=AUTH) for raw in raws]
            # every object is parsed before any is applied: the first unparsable one is named first
            refused = next((i for i, raw in enumerate(raws) if not parses(raw)),
                           next((i for i, s in enumerate(singles) if s.status_code >= 400), None))
            if refused is None:
                assert r.status_code == 200, r.text
                assert [(x["result"], untimed(x["object"])) for x in r.json()["results"]] == \
                    [(s.json()["result"], untimed(s.json()["object"])) for s in singles]
                assert stored(many) == stored(one)
            else:
                assert r.status_code == singles[refused].status_code, (refused, r.text)
                if r.status_code == 422:
                    assert r.json()["detail"][0]["field"].startswith(f"objects[{refused}]."), r.json()
                assert stored(many) == before
    finally:
        one.close()
        many.close()


def test_submissions_are_checked_token_key_role_body_in_that_order(store):
    store.ensure_admin_token(ADMIN)
    with store.tx() as conn:
        store.apply(conn, obj("Tenant", "a"))
        store.apply(conn, obj("Queue", "qa", tenant="a"))
        _, viewer = store.create_token(conn, "viewer", None, "v")
    bad_key = {"Idempotency-Key": "k" * 201}
    with TestClient(create_app(store), raise_server_exceptions=False) as c:
        def post(path, content, ctype="application/json", **headers):
            return c.post(path, content=content, headers={"Content-Type": ctype, **headers})
        for path in ("/v1/objects", "/v1/objects:batch"):
            assert post(path, b"not json").status_code == 401  # no token, whatever the body
            assert post(path, b"not json", **bad_key, Authorization="Bearer nope").status_code == 401
            r = post(path, b"not json", **bad_key, **AUTH)
            assert r.status_code == 422 and r.json()["detail"][0]["field"] == "header.Idempotency-Key"
            assert post(path, b"not json", Authorization=f"Bearer {viewer}").status_code == 403
            for content, ctype in ((b"not json", "application/json"), (b"", "application/json"), (b"{}", "text/plain"),
                                   (b"\xff", "application/json"), (b"[1, 2]", "application/json"),
                                   (b"[" * 100_000 + b"]" * 100_000, "application/json")):  # recursion, not a 500
                r = post(path, content, ctype, **AUTH)
                assert r.status_code == 422, (path, content, r.text)
                assert r.json()["detail"][0]["field"] == ("body" if path == "/v1/objects" or content != b"[1, 2]"
                                                          else "objects"), r.json()
        r = post("/v1/objects", json.dumps(raw_job("j", tasks=0)).encode(), "application/merge-patch+json", **AUTH)
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "spec.tasks"  # +json is JSON
        r = post("/v1/objects:batch", json.dumps({"objects": [raw_job("j"), raw_job("k", tasks=0)]}).encode(), **AUTH)
        assert r.status_code == 422 and r.json()["detail"] == [
            {"field": "objects[1].spec.tasks", "message": "Input should be greater than or equal to 1"}]
    refused = [(r["who"], r["role"], r["result"]) for r in store.audit_rows()]
    assert refused[:3] == [("anonymous", None, "refused 401"), ("anonymous", None, "refused 401"),
                           ("admin (ALTOSTRAT_ADMIN_TOKEN)", "admin", "refused 422")]
    assert refused[3] == ("v", "viewer", "refused 403")
    assert len(refused) == 2 * 10 + 2 and all(r.startswith("refused") for _, _, r in refused)


def test_a_pacer_spaces_woken_passes_by_their_cost():
    now = [100.0]
    pacer = Pacer(min_gap_s=0.01, max_gap_s=0.1, duty=0.1, clock=lambda: now[0])
    assert pacer.delay() == 0.0  # never ran: at once
    with pacer.timing():
        now[0] += 0.002  # a 2 ms pass: the next waits 20 ms after it
    assert pacer.delay() == pytest.approx(0.02)
    now[0] += 0.015
    assert pacer.delay() == pytest.approx(0.005)
    now[0] += 1.0
    assert pacer.delay() == 0.0  # woken after a quiet spell: at once
    with pacer.timing():
        now[0] += 0.0001  # a cheap pass: the least gap
    assert pacer.delay() == pytest.approx(0.01)
    with pacer.timing():
        now[0] += 5.0  # a full read: the longest gap, not 50 s
    assert pacer.delay() == pytest.approx(0.1)
