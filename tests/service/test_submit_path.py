"""What makes submissions cheap keeps their meaning: requests sharing one group commit end as
the same requests one after another; a sync reading changes by change sequence never misses a
committed job, whatever was rolled back; the rows a group commit hands to the reconciler are
the rows the store holds; a cached token stops working when its revocation commits; and the
submit endpoints take large bodies off the event loop and refuse oversized ones."""

from __future__ import annotations

import random
import threading

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altostrat.service import submit
from altostrat.service.api import create_app
from altostrat.service.objects import ObjectError
from altostrat.service.reconciler import Reconciler
from altostrat.service.database import database_url
from altostrat.service.principals import PrincipalCache
from altostrat.service.store import Conflict, NotFound, Store, sha256

from .test_fast_paths import ADMIN, AUTH, fresh, obj, stored, untimed
from .test_fast_paths import raw_job as job
from .test_group_commit import queued_behind_a_commit


# one request: apply an object or delete one; queues come and go, jobs name queues that may not exist
REQUEST = st.one_of(
    st.builds(lambda n, q: ("apply", obj("Job", n, queue=q, command=["true"])),
              st.sampled_from(["j1", "j2", "j3", "old"]), st.sampled_from(["qa", "qb", "qc", "qd"])),
    st.builds(lambda q, t: ("apply", obj("Queue", q, tenant=t)), st.sampled_from(["qc", "qd"]), st.sampled_from(["a", "b"])),
    st.builds(lambda q: ("delete", "Queue", q), st.sampled_from(["qc", "qd"])),
    st.builds(lambda n: ("delete", "Job", n), st.sampled_from(["j1", "old"])))


def outcome(store: Store, conn, request) -> tuple:
    if request[0] == "apply":
        result, view = store.apply(conn, request[1])
        return result, untimed(view)
    store.delete(conn, request[1], request[2])
    return ("deleted",)


def one_by_one(store: Store, requests: list) -> dict:
    """Each request in a transaction of its own: {index: outcome or error text}."""
    out = {}
    for n, request in enumerate(requests):
        try:
            with store.tx() as conn:
                out[n] = outcome(store, conn, request)
        except (ObjectError, Conflict, NotFound) as exc:
            out[n] = str(exc)
    return out


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(REQUEST, min_size=1, max_size=10))
def test_requests_in_one_group_commit_end_as_one_by_one(tmp_path_factory, requests):
    tmp = tmp_path_factory.mktemp("group")
    grouped, single = fresh(tmp, "grouped"), fresh(tmp, "single")
    try:
        def request(req):
            def fn(conn):
                try:
                    return outcome(grouped, conn, req)
                except (ObjectError, Conflict, NotFound) as exc:
                    raise ValueError(str(exc)) from None  # queued_behind_a_commit collects ValueErrors
            return fn
        results, errors = queued_behind_a_commit(grouped.group, {n: request(r) for n, r in enumerate(requests)})
        results.pop(-1)
        assert {**results, **errors} == one_by_one(single, requests)
        assert stored(grouped) == stored(single)
    finally:
        grouped.close()
        single.close()


def test_incremental_reads_by_change_seq_miss_no_committed_job(store):
    """Writers commit jobs in groups (some requests fail and roll back to their savepoint) while a
    reader reads only what changed after the last change it saw: it sees every job, each at its
    final version."""
    with store.tx() as conn:
        store.apply(conn, obj("Tenant", "a"))
        store.apply(conn, obj("Queue", "q", tenant="a"))
    seen: dict[int, int] = {}
    done = threading.Event()

    def read() -> None:
        cursor = None
        while True:
            last_round = done.is_set()
            with store.read() as conn:
                versions, cursor = store.job_versions(conn, cursor)
            seen.update(versions)
            if last_round:
                return

    def write(w: int) -> None:
        rng = random.Random(w)
        for k in range(40):
            def fn(conn, name=f"w{w}-{k}", fails=rng.random() < 0.2):
                store.apply(conn, obj("Job", name, queue="q", command=["true"]))
                if fails:
                    raise ValueError("undone")
                if rng.random() < 0.3:  # a second write of the same job in its transaction
                    store.update_job(conn, store._row(conn, "Job", name)["id"], reason="touched")
            try:
                store.group.run(fn)
            except ValueError:
                pass
    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for th in writers:
        th.start()
    for th in writers:
        th.join()
    done.set()
    reader.join()
    with store.read() as conn:
        final, _ = store.job_versions(conn, None)
    assert len(final) > 100 and seen == final


def test_rows_handed_to_the_reconciler_are_the_stored_rows(tmp_path, db_url):
    store = fresh(tmp_path, "handed", db_url)
    store.ensure_admin_token(ADMIN)
    rec = Reconciler(store, "fcfs+best-fit", tmp_path / "data", grace_s=1)
    try:
        with TestClient(create_app(store), raise_server_exceptions=False) as client:
            assert client.post("/v1/objects", json=job("one"), headers=AUTH).status_code == 201
            r = client.post("/v1/objects:batch", json={"objects": [job("two"), job("three", queue="qb")]}, headers=AUTH)
            assert r.status_code == 200
            assert client.post("/v1/objects", json=job("nope", queue="missing"), headers=AUTH).status_code == 422
        with store.read() as conn:
            rows = {r["id"]: r for r in store.jobs(conn)}
        assert sorted(r["name"] for r in rec.fresh.rows.values()) == ["one", "three", "two"]
        assert all(rec.fresh.rows[i] == rows[i] for i in rec.fresh.rows)
        rec.sync()  # the first read decodes every job; a later one takes what is handed over
        with TestClient(create_app(store), raise_server_exceptions=False) as client:
            assert client.post("/v1/objects", json=job("four"), headers=AUTH).status_code == 201
        four = next(iter(rec.fresh.rows))
        rec.sync(full=False)
        assert rec.fresh.rows == {} and rec.seen[four] == 1
        with store.read() as conn:
            assert store.job_versions(conn, rec.cursor) == ({}, rec.cursor)
    finally:
        store.close()


def test_a_cached_token_is_refused_once_its_revocation_commits(tmp_path):
    store = Store(database_url(tmp_path, None))
    store.upgrade()
    store.ensure_admin_token(ADMIN)
    with store.tx() as conn:
        token_id, token = store.create_token(conn, "viewer", None, "v")
    assert store.principal(token)["id"] == token_id and store.principals.get(sha256(token)) is not None
    with store.tx() as conn:
        store.revoke_token(conn, token_id)
        assert store.principal(token) is not None  # not committed yet: still live, and not cached again
        assert store.principals.found == {}
    assert store.principal(token) is None
    with store.tx() as conn:
        other_id, other = store.create_token(conn, "viewer", None, "w")
    with pytest.raises(RuntimeError), store.tx() as conn:  # a revocation rolled back: the token stays live
        store.revoke_token(conn, other_id)
        raise RuntimeError("rolled back")
    assert store.principal(other)["id"] == other_id and store.principals.get(sha256(other)) is not None
    store.close()


def test_a_lookup_that_overlaps_a_revocation_caches_nothing():
    cache = PrincipalCache()
    generation = cache.generation
    conn_info: dict = {}

    class Conn:
        info = conn_info
    cache.changing(Conn())
    cache.put("d", {"id": 1}, generation)  # a revocation is in flight
    assert cache.get("d") is None
    cache.settled(conn_info)
    cache.put("d", {"id": 1}, generation)  # read before the revocation settled: maybe stale
    assert cache.get("d") is None
    cache.put("d", {"id": 1}, cache.generation)
    assert cache.get("d") == {"id": 1}


def test_large_batches_are_parsed_off_the_loop_and_oversized_bodies_refused(tmp_path, monkeypatch):
    store = fresh(tmp_path, "big")
    store.ensure_admin_token(ADMIN)
    try:
        with TestClient(create_app(store), raise_server_exceptions=False) as client:
            objects = [job(f"big-{i:04d}", env={"PAD": "x" * 200}) for i in range(400)]
            r = client.post("/v1/objects:batch", json={"objects": objects}, headers=AUTH)
            assert len(r.request.content) > submit.INLINE_BODY and r.status_code == 200, r.text
            assert [x["result"] for x in r.json()["results"]] == ["created"] * 400
            monkeypatch.setattr(submit, "MAX_BODY", 1000)
            r = client.post("/v1/objects:batch", json={"objects": objects[:10]}, headers=AUTH)
            assert r.status_code == 422 and r.json()["detail"][0]["field"] == "body"
        assert sum(1 for row in stored(store) if row[0] == "Job") == 401  # "old" and the 400
        assert store.audit_rows()[-1]["result"] == "refused 422"
    finally:
        store.close()


def test_postgresql_analyzes_objects_as_group_commits_grow_it(pg_url, monkeypatch):
    """Until autovacuum runs, a fast-growing table's statistics say it is nearly empty; the store
    analyzes it each time the jobs its group commits created outnumber what it held at the last
    ANALYZE (and ANALYZE_MIN)."""
    from altostrat.service import store as store_module
    from sqlalchemy import text

    monkeypatch.setattr(store_module, "ANALYZE_MIN", 20)
    store = Store(database_url("unused", pg_url))
    store.upgrade()
    try:
        with store.tx() as conn:
            store.apply(conn, obj("Tenant", "a"))
            store.apply(conn, obj("Queue", "q", tenant="a"))

        def tuples() -> float:
            with store.read() as conn:
                return conn.execute(text("SELECT reltuples FROM pg_class WHERE relname = 'objects'")).scalar_one()
        assert tuples() < 0  # never analyzed
        for first, n in ((0, 15), (15, 10), (25, 30)):  # 15 (no), 25 (yes: 25 >= 20), 30 (yes: 30 >= 25)
            store.group.run(lambda conn, first=first, n=n: store.apply_many(
                conn, [obj("Job", f"j{k}", queue="q", command=["true"]) for k in range(first, first + n)]))
            if first == 0:
                assert tuples() < 0
        assert tuples() == 57  # the tenant, the queue and 55 jobs, as of the last ANALYZE
    finally:
        store.close()


def test_a_submission_with_a_malformed_content_length_is_answered_not_a_500(tmp_path):
    """uvicorn refuses such a request itself; the app, run by any ASGI server, checks what arrives."""
    import asyncio
    import json

    store = fresh(tmp_path, "asgi")
    store.ensure_admin_token(ADMIN)
    app = create_app(store)
    body = json.dumps(job("raw")).encode()
    sent: list[dict] = []

    async def receive():
        return {"type": "http.request", "body": body, "more_body": False}

    async def send(message):
        sent.append(message)
    scope = {"type": "http", "method": "POST", "path": "/v1/objects", "query_string": b"", "root_path": "",
             "headers": [(b"content-length", b"lots"), (b"content-type", b"application/json"),
                         (b"authorization", f"Bearer {ADMIN}".encode())]}
    try:
        asyncio.run(app(scope, receive, send))
        assert sent[0]["status"] == 201 and json.loads(sent[1]["body"])["result"] == "created"
    finally:
        store.close()
