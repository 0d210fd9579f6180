"""The store, the objects, the quota gate and the engine calls the control plane adds."""

from __future__ import annotations

import dataclasses
import threading
import time
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from helpers import check_state, cluster, job
from sqlalchemy import select, text

from altostrat.engine import REJECT, START, Engine
from altostrat.policy.registry import parse_policy
from altostrat.service import migrations, tables
from altostrat.service import tables as t
from altostrat.service.objects import ObjectError, parse_object
from altostrat.service.quota import QueueQuotaGate
from altostrat.service.database import DatabaseUnavailable, database_url
from altostrat.service.store import Conflict, NotFound, Store, sha256


def migration_head() -> str:
    return ScriptDirectory(str(Path(migrations.__file__).parent)).get_current_head()


def obj(kind: str, name: str, **spec) -> object:
    return parse_object({"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})


def test_the_store_is_durable_and_the_migration_matches_the_tables(store):
    with store.engine.connect() as conn:
        if store.engine.dialect.name == "sqlite":
            assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
            assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        else:  # a commit is flushed to disk before it returns
            assert [conn.execute(text(f"SHOW {s}")).scalar() for s in ("fsync", "synchronous_commit")] == ["on", "on"]
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == migration_head()
        diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert diff == []
    store.upgrade()  # a second upgrade is a no-op


def test_transactions_run_one_at_a_time(store):
    """A transaction begun while another is open waits for its commit (SQLite: BEGIN IMMEDIATE;
    PostgreSQL: the advisory lock), even for a connection of another Store (another process)."""
    other = Store(store.url)
    events, inside = [], threading.Event()

    def first():
        with store.tx() as conn:
            conn.execute(select(t.tokens.c.id)).all()
            inside.set()
            time.sleep(0.3)  # the second transaction begins meanwhile
            events.append("first commits")

    def second():
        inside.wait()
        with other.tx() as conn:
            events.append("second begins")
            conn.execute(select(t.tokens.c.id)).all()

    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    other.close()
    assert events == ["first commits", "second begins"]


def test_concurrent_applies_of_the_same_objects_from_two_stores_create_each_once(store):
    """Read-check-write (does the object exist? insert it) is serialised across processes: two
    Stores applying the same objects at once never both insert one (a unique-key error) nor
    lose one; each object is created by exactly one of them, once."""
    stores = [store, Store(store.url)]
    names = [f"t{i}" for i in range(20)]
    results: dict[int, list[str]] = {0: [], 1: []}
    errors = []
    start = threading.Barrier(2)

    def applier(k: int) -> None:
        start.wait()
        for name in names:
            try:
                with stores[k].tx() as conn:
                    results[k].append(stores[k].apply(conn, obj("Tenant", name))[0])
            except Exception as exc:  # noqa: BLE001  (reported below)
                errors.append(repr(exc))

    threads = [threading.Thread(target=applier, args=(k,)) for k in (0, 1)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    stores[1].close()
    assert errors == []
    assert [sorted(pair) for pair in zip(results[0], results[1])] == [["created", "unchanged"]] * len(names)
    with store.tx() as conn:
        assert [(v["metadata"]["name"], v["metadata"]["resourceVersion"]) for v in store.list(conn, "Tenant")] \
            == sorted(((n, 1) for n in names), key=lambda p: int(p[0][1:]))


def test_database_urls_name_psycopg_3_and_errors_never_show_the_password(tmp_path):
    assert database_url(tmp_path, None) == f"sqlite:///{tmp_path.resolve() / 'altostrat.db'}"
    for given, used in [("postgresql://u:p@h:5433/d", "postgresql+psycopg://u:p@h:5433/d"),
                        ("postgres://u@h/d", "postgresql+psycopg://u@h/d"),
                        ("postgresql+psycopg://u@h/d?sslmode=require", "postgresql+psycopg://u@h/d?sslmode=require"),
                        ("sqlite:////srv/a.db", "sqlite:////srv/a.db")]:
        assert database_url(tmp_path, given) == used
    for given, message in [("mysql://u:hunter2@h/d", "--db: mysql is not supported"),
                           ("postgresql+asyncpg://u:hunter2@h/d", "--db: postgresql+asyncpg is not supported"),
                           ("hunter2", "--db is not a database URL")]:
        with pytest.raises(DatabaseUnavailable) as e:
            database_url(tmp_path, given)
        assert str(e.value).startswith(message) and "hunter2" not in str(e.value)


def test_job_defaults_and_field_errors():
    j = obj("Job", "j", queue="q", command=["python", "-c", "pass"])
    assert (j.spec.tasks, j.spec.retries, j.spec.checkpoint_signal, j.spec.expected_duration_s) == (1, 0, "SIGTERM", 3600.0)
    assert obj("Job", "j", queue="q", command=["x"], checkpointSignal="USR1").spec.checkpoint_signal == "SIGUSR1"
    with pytest.raises(ObjectError) as e:
        obj("Job", "j", queue="", command=["x"], resources={"gpu": 2.5, "cpu": -1}, retries=-1)
    assert sorted(f for f, _ in e.value.errors) == ["spec.queue", "spec.resources.cpu", "spec.resources.gpu", "spec.retries"]
    pool = obj("Pool", "p", gpu={"model": "T4", "count": 2}, cpu=8, memoryGib=16)
    assert (pool.spec.nodes, pool.spec.gpu.count) == (1, 2)


def test_apply_checks_references_and_guards_running_jobs(store):
    with store.tx() as conn:
        with pytest.raises(ObjectError) as e:
            store.apply(conn, obj("Queue", "q", tenant="a"))
        assert e.value.errors == [("spec.tenant", "no Tenant named 'a'; apply it first")]
    with store.tx() as conn:
        store.apply(conn, obj("Tenant", "a"))
        store.apply(conn, obj("Queue", "q", tenant="a"))
        result, view = store.apply(conn, obj("Job", "j", queue="q", command=["true"]))
        assert result == "created" and view["metadata"]["tenant"] == "a" and view["status"]["state"] == "PENDING"
        job_id = store.jobs(conn)[0]["id"]
        store.update_job(conn, job_id, "RUNNING", attempts=1)
        store.add_tasks(conn, [dict(job_id=job_id, attempt=1, task=0, state="RUNNING", node="p/0", devices="0",
                                    log_path="x")])
    with store.tx() as conn:
        assert store.apply(conn, obj("Job", "j", queue="q", command=["true"]))[0] == "unchanged"
        with pytest.raises(Conflict, match="a started job's spec cannot change"):
            store.apply(conn, obj("Job", "j", queue="q", command=["false"]))
    with store.tx() as conn:
        store.apply(conn, obj("Pool", "p", cpu=4, memoryGib=8))
    with store.tx() as conn:
        with pytest.raises(Conflict, match="pool p has 1 task"):
            store.apply(conn, obj("Pool", "p", cpu=8, memoryGib=8))
        with pytest.raises(Conflict, match="pool p has 1 task"):
            store.delete(conn, "Pool", "p")
        store.apply(conn, obj("Tenant", "b"))
        with pytest.raises(ObjectError, match="cannot move to another tenant"):
            store.apply(conn, obj("Queue", "q", tenant="b"))


def test_update_job_merges_status_and_drops_none(store):
    with store.tx() as conn:
        store.apply(conn, obj("Tenant", "a"))
        store.apply(conn, obj("Queue", "q", tenant="a"))
        store.apply(conn, obj("Job", "j", queue="q", command=["true"]))
        job_id = store.jobs(conn)[0]["id"]
        store.update_job(conn, job_id, "PENDING", reason="waiting", notBefore=5.0)
        store.update_job(conn, job_id, "RUNNING", notBefore=None, attempts=1)
        row = store.job(conn, job_id)
    assert (row["state"], row["status"], row["resource_version"]) == ("RUNNING", {"reason": "waiting", "attempts": 1}, 3)


def stored_files(store, request) -> list[Path]:
    """The files that hold the store's database: SQLite's, or its PostgreSQL database's folder
    after a checkpoint (every committed row is then in them)."""
    if store.engine.dialect.name == "sqlite":
        return list(Path(store.engine.url.database).parent.glob("altostrat.db*"))
    with store.engine.connect() as conn:
        oid = conn.execute(text("SELECT oid FROM pg_database WHERE datname = current_database()")).scalar_one()
        conn.commit()
        conn.execute(text("CHECKPOINT"))
    files = [p for p in (request.getfixturevalue("postgres").data / "base" / str(oid)).iterdir() if p.is_file()]
    assert files
    return files


def test_large_numbers_round_trip_and_ids_beyond_the_columns_are_not_found(store):
    """64-bit process start times (after 248 days of uptime at 100 Hz), float times to the last
    bit, and a token id beyond PostgreSQL's 32-bit integer: not found, not an error."""
    now = 1_718_000_000.123456789
    with store.tx() as conn:
        store.apply(conn, obj("Tenant", "a"))
        store.apply(conn, obj("Queue", "q", tenant="a"))
        store.apply(conn, obj("Job", "j", queue="q", command=["true"]))
        job_id = store.jobs(conn)[0]["id"]
        [task] = store.add_tasks(conn, [dict(job_id=job_id, attempt=1, task=0, state="RUNNING", node="p/0", devices="0",
                                             log_path="x", pid=4_194_304, proc_start=2**40 + 7, started_at=now)])
    with store.tx() as conn:
        row = store.attempt_tasks(conn, job_id, 1)[0]
        assert (row["id"], row["pid"], row["proc_start"], row["started_at"]) == (task, 4_194_304, 2**40 + 7, now)
        for token_id in (2**31 - 1, 2**31, 2**63 - 1):
            with pytest.raises(NotFound, match=f"no token {token_id}"):
                store.revoke_token(conn, token_id)


def test_tokens_are_stored_only_as_hashes(store, request):
    token = store.ensure_admin_token(None)
    assert token is not None and len(token) >= 43  # 256 bits, base64
    assert store.ensure_admin_token(None) is None  # printed once: the next start makes none
    assert store.principal(token)["role"] == "admin" and store.principal(token + "x") is None
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT sha256 FROM tokens")).scalars().all() == [sha256(token)]
    files = stored_files(store, request)
    assert sha256(token).encode() in b"".join(p.read_bytes() for p in files)  # the search finds what is there
    store.close()
    assert token.encode() not in b"".join(p.read_bytes() for p in stored_files(store, request))


def test_quota_gate_holds_and_rejects_within_the_engine():
    gate = QueueQuotaGate({"small": {"quota": {"gpu": 1}}, "big": {}})
    policy = parse_policy("fcfs+best-fit")
    engine = Engine(cluster(("V100", 4, 1)), dataclasses.replace(policy, gates=(gate,)))
    a, b, c, wide = job("a", 0, 10), job("b", 0, 10), job("c", 0, 10), job("wide", 0, 10, gpus=2)
    for idx, (j, queue) in enumerate(((a, "small"), (b, "small"), (c, "big"), (wide, "small"))):
        j.idx = idx
        gate.queue_of[idx] = queue
    assert [(d.kind, d.job.id) for d in engine.submit(a, 0)] == [(START, "a")]
    assert engine.submit(b, 1) == []  # over its queue's quota although 3 GPUs are free
    assert [(d.kind, d.job.id) for d in engine.submit(c, 2)] == [(START, "c")]  # a held job blocks no one
    [d] = engine.submit(wide, 3)
    assert d.kind == REJECT and d.reason == "asks for more than queue small's quota (gpu 2 > 1)"
    assert [(d.kind, d.job.id) for d in engine.finish(a, 4)] == [(START, "b")]
    assert gate.used == {"small": [1000, 0, 0], "big": [1000, 0, 0]}
    check_state(engine.state, engine)


def test_withdraw_and_adopt_keep_the_state_exact():
    engine = Engine(cluster(("V100", 2, 1)), parse_policy("fcfs+best-fit"))
    a, b, c = job("a", 0, 10), job("b", 2, 10), job("c", 1, 10, gpus=2)
    for i, j in enumerate((a, b, c)):
        j.idx = i
    engine.adopt(a, ((0, (1,)),), start=0.0)  # exactly device 1, as the running process has it
    assert engine.state.nodes[0].gpu_free == [1000, 0]
    assert [d.job.id for d in engine.submit(c, 1)] == []
    assert [d.job.id for d in engine.submit(b, 2)] == []  # FCFS: b waits behind c
    assert [(d.kind, d.job.id) for d in engine.withdraw(c, 3)] == [(START, "b")]
    assert engine.running[b.idx].alloc == ((0, (0,)),)
    assert engine.tenant_jobs == {"default": 2} and not engine.pending
    assert engine.withdraw(a, 4) == [] and engine.state.nodes[0].gpu_free == [0, 1000]
    check_state(engine.state, engine)
