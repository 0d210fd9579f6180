"""The submit path's shortcuts keep apply()'s meaning: a batch applied by apply_many ends exactly
as one apply() after another; reads take no write lock; an incremental sync skips only what it
has seen at the same version; a start records how long its recovery took."""

from __future__ import annotations

import threading

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import insert

from altostrat.service import tables as t
from altostrat.service.objects import ObjectError, parse_object
from altostrat.service.reconciler import Reconciler
from altostrat.service.store import Conflict, Store, database_url

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


def fresh(tmp_path, name: str) -> Store:
    store = Store(database_url(tmp_path / name, None))
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
    with store.read() as conn:
        assert store.job_versions(conn, 0.0) == {j1: 2}
        assert store.job_versions(conn, 2e9) == {}
        assert [r["name"] for r in store.jobs_by_id(conn, [j2, j1])] == ["j1", "j2"]


def test_start_records_its_recovery_time(store, tmp_path):
    rec = Reconciler(store, "fcfs+best-fit", tmp_path)
    assert rec.obs.recovery_seconds._value.get() == 0.0
    rec.start()
    try:
        assert rec.obs.recovery_seconds._value.get() > 0.0
    finally:
        rec.stop()
