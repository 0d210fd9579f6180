"""`GET /metrics` and the JSON log, in-process: a reconciler driven by hand (no thread), so every
value is exact."""

from __future__ import annotations

import io
import json
import logging
import sys

import pytest
from fastapi.testclient import TestClient
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client.parser import text_string_to_metric_families

from altostrat.service.api import create_app
from altostrat.service.observability import JsonFormatter, configure_logging
from altostrat.service.reconciler import Reconciler
from altostrat.service.store import Store

ADMIN = "obs-admin-token"
SLEEP = [sys.executable, "-c", "import time; time.sleep(30)"]  # the default SIGTERM ends it


def obj(kind: str, name: str, **spec) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def samples(text: str) -> dict[tuple, float]:
    """(sample name, sorted labels) -> value, from the exposition format."""
    return {(s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text) for s in family.samples}


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    s.upgrade()
    s.ensure_admin_token(ADMIN)
    yield s
    s.close()


def test_metrics_after_one_sync_are_exact(store, tmp_path, caplog):
    rec = Reconciler(store, "fcfs+best-fit", tmp_path, grace_s=5)
    app = create_app(store, observer=rec.obs)
    auth = {"Authorization": f"Bearer {ADMIN}"}
    objects = [obj("Tenant", "t"), obj("Queue", "q", tenant="t"), obj("Queue", "r", tenant="t"),
               obj("Pool", "gpus", nodes=1, gpu={"model": "T4", "count": 4}, cpu=8, memoryGib=16),
               obj("Job", "a", queue="q", command=SLEEP, resources={"gpu": 2}),
               obj("Job", "b", queue="q", command=SLEEP, resources={"gpu": 1}),
               obj("Job", "e", queue="q", command=SLEEP, resources={"gpu": 0.5}),
               obj("Job", "c", queue="q", command=SLEEP, resources={"gpu": 2}),  # 0.5 GPU left: waits
               obj("Job", "d", queue="r", command=SLEEP, resources={"gpu": 8})]  # fits no node: rejected
    caplog.set_level(logging.INFO, logger="altostrat.jobs")
    with TestClient(app) as client:
        assert client.post("/v1/objects:batch", headers=auth, json={"objects": objects}).status_code == 200
        # a replay logs nothing again
        for _ in range(2):
            r = client.post("/v1/objects", headers={**auth, "Idempotency-Key": "k"},
                            json=obj("Job", "f", queue="r", command=["true"], resources={"gpu": 0}))
        assert r.headers["Idempotent-Replayed"] == "true"
        with store.tx() as conn:  # f is not the engine's concern here: cancel it before the sync
            store.request_cancel(conn, "f")
        try:
            rec.sync()  # the engine is built; a, b, e, c, d are submitted one call each
            got = samples(client.get("/metrics", headers=auth).text)
        finally:
            rec.stop()
        tenant = client.post("/v1/tokens", headers=auth, json={"role": "tenant", "tenant": "t"}).json()["token"]
        mine = samples(client.get("/metrics", headers={"Authorization": f"Bearer {tenant}"}).text)
        assert not any(name.startswith("altostrat_decision") for name, _ in mine)  # test_metrics_scope.py has more
        assert client.get("/metrics").status_code == 401

    assert {k: v for k, v in got.items() if k[0].startswith("altostrat_") and not k[0].endswith("_created")
            and not k[0].startswith("altostrat_decision_seconds_bucket")} == {
        ("altostrat_jobs_admitted_total", (("queue", "q"),)): 3.0,
        ("altostrat_jobs_ended_total", (("queue", "r"), ("state", "FAILED"))): 1.0,
        ("altostrat_jobs_ended_total", (("queue", "r"), ("state", "CANCELLED"))): 1.0,
        ("altostrat_decisions_total", (("kind", "start"),)): 3.0,
        ("altostrat_decisions_total", (("kind", "preempt"),)): 0.0,
        ("altostrat_decisions_total", (("kind", "reject"),)): 1.0,
        # four calls decided something (a, b, e: START; d: REJECT); c's decided nothing
        ("altostrat_decision_seconds_count", ()): 4.0,
        ("altostrat_decision_seconds_sum", ()): got[("altostrat_decision_seconds_sum", ())],
        ("altostrat_reconciler_errors_total", ()): 0.0,
        ("altostrat_recovery_seconds", ()): 0.0,  # set by Reconciler.start, which this test does not call
        ("altostrat_queue_pending_jobs", (("queue", "q"),)): 1.0,
        ("altostrat_queue_pending_jobs", (("queue", "r"),)): 0.0,
        ("altostrat_queue_running_jobs", (("queue", "q"),)): 3.0,
        ("altostrat_queue_running_jobs", (("queue", "r"),)): 0.0,
        ("altostrat_gpus_allocated", (("pool", "gpus"),)): 3.5,
        ("altostrat_gpus_capacity", (("pool", "gpus"),)): 4.0,
    }
    assert 0 < got[("altostrat_decision_seconds_sum", ())] < 4
    assert got[("altostrat_decision_seconds_bucket", (("le", "+Inf"),))] == 4.0

    events = [(r.event, r.job) for r in caplog.records if r.name == "altostrat.jobs"]
    assert events == [("submitted", n) for n in "abecdf"] + [
        ("started", "a"), ("started", "b"), ("started", "e"), ("failed", "d"), ("cancelled", "f"),
        ("interrupted", "a"), ("interrupted", "b"), ("interrupted", "e")]
    started = next(r for r in caplog.records if getattr(r, "event", None) == "started")
    assert (started.getMessage(), started.attempt, started.nodes, started.devices, started.queue) == \
        ("job a started (attempt 1 on gpus/0)", 1, ["gpus/0"], ["0,1"], "q")


def test_the_api_alone_serves_the_store_gauges(store):
    with TestClient(create_app(store)) as client:
        auth = {"Authorization": f"Bearer {ADMIN}"}
        client.post("/v1/objects:batch", headers=auth, json={"objects": [
            obj("Tenant", "t"), obj("Queue", "q", tenant="t"), obj("Job", "a", queue="q", command=["true"])]})
        r = client.get("/metrics", headers=auth)
    assert r.headers["content-type"].startswith("text/plain")
    got = samples(r.text)
    assert got[("altostrat_queue_pending_jobs", (("queue", "q"),))] == 1.0
    assert not any(name.startswith("altostrat_gpus") for name, _ in got)  # no engine, no pools to report


def test_json_formatter_writes_one_object_a_line_with_the_extra_fields():
    stream = io.StringIO()
    configure_logging("json", stream)
    try:
        logging.getLogger("altostrat.jobs").info("job %s %s", "a", "started", extra={"event": "started", "job": "a",
                                                                                       "attempt": 2})
        try:
            raise ValueError("boom\nsecond line")
        except ValueError:
            logging.getLogger("altostrat.reconciler").exception("reconciler stopped")
    finally:
        logging.getLogger().handlers.clear()
    lines = stream.getvalue().splitlines()
    assert len(lines) == 2
    first, second = map(json.loads, lines)
    assert set(first) == {"time", "level", "logger", "message", "event", "job", "attempt"}
    assert (first["level"], first["logger"], first["message"], first["event"], first["job"], first["attempt"]) == \
        ("INFO", "altostrat.jobs", "job a started", "started", "a", 2)
    assert first["time"].endswith("Z") and len(first["time"]) == len("2026-01-01T00:00:00.000Z")
    assert second["level"] == "ERROR" and second["exception"].endswith("ValueError: boom\nsecond line")


@given(st.text(), st.dictionaries(st.from_regex(r"[a-z][a-z_]{0,10}", fullmatch=True),
                                  st.one_of(st.text(), st.integers(), st.none(), st.lists(st.text()))))
def test_any_message_and_fields_make_one_json_line(message, fields):
    fields = {k: v for k, v in fields.items() if k not in vars(logging.makeLogRecord({})) and k != "message"}
    record = logging.makeLogRecord({"name": "x", "levelname": "INFO", "msg": message, **fields})
    line = JsonFormatter().format(record)
    assert "\n" not in line
    out = json.loads(line)
    core = {"time", "level", "logger", "message"}
    assert (out["level"], out["logger"], out["message"]) == ("INFO", "x", message)  # never an extra field's
    assert {k: out[k] for k in fields if k not in core} == {k: v for k, v in fields.items() if k not in core}
