"""The store, the objects, the quota gate and the engine calls the control plane adds."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from alembic.script import ScriptDirectory
from helpers import check_state, cluster, job
from sqlalchemy import text

from altostrat.engine import REJECT, START, Engine
from altostrat.policy.registry import parse_policy
from altostrat.service import migrations, tables
from altostrat.service.objects import ObjectError, parse_object
from altostrat.service.quota import QueueQuotaGate
from altostrat.service.store import Conflict, sha256


def migration_head() -> str:
    return ScriptDirectory(str(Path(migrations.__file__).parent)).get_current_head()


def obj(kind: str, name: str, **spec) -> object:
    return parse_object({"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})


def test_sqlite_is_durable_and_the_migration_matches_the_tables(store):
    with store.engine.connect() as conn:
        assert conn.execute(text("PRAGMA journal_mode")).scalar() == "wal"
        assert conn.execute(text("PRAGMA synchronous")).scalar() == 2  # FULL
        assert conn.execute(text("SELECT version_num FROM alembic_version")).scalar() == migration_head()
        diff = compare_metadata(MigrationContext.configure(conn), tables.metadata)
    assert diff == []
    store.upgrade()  # a second upgrade is a no-op


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


def test_tokens_are_stored_only_as_hashes(store, tmp_path):
    token = store.ensure_admin_token(None)
    assert token is not None and len(token) >= 43  # 256 bits, base64
    assert store.ensure_admin_token(None) is None  # printed once: the next start makes none
    assert store.principal(token)["role"] == "admin" and store.principal(token + "x") is None
    with store.engine.connect() as conn:
        assert conn.execute(text("SELECT sha256 FROM tokens")).scalars().all() == [sha256(token)]
    store.close()
    assert token.encode() not in b"".join(p.read_bytes() for p in tmp_path.glob("altostrat.db*"))


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
