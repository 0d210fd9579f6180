"""`altostrat serve --log-format json` with real jobs: every line it writes is a JSON object,
one job's life cycle reads off its log, and `/metrics` counts what happened."""

from __future__ import annotations

import json
import sys
import time

import httpx
from prometheus_client.parser import text_string_to_metric_families
from test_serve import TERMINAL, TOKEN, Server

HEADERS = {"Authorization": f"Bearer {TOKEN}"}
# fails its first attempt (it leaves a mark), succeeds its second
FLAKY = "import os, sys; m = 'mark'; first = not os.path.exists(m); open(m, 'a').close(); sys.exit(3 if first else 0)"


def meta(kind: str, name: str, spec: dict | None = None) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, **({"spec": spec} if spec else {})}


def test_json_log_and_metrics_of_a_real_run(tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    objs = [meta("Tenant", "t"), meta("Queue", "q", {"tenant": "t"}),
            meta("Pool", "gpus", {"nodes": 1, "gpu": {"model": "T4", "count": 2}, "cpu": 8, "memoryGib": 16})]
    objs += [meta("Job", f"ok-{i}", {"queue": "q", "resources": {"gpu": 1},
                                     "command": [sys.executable, "-c", "import time; time.sleep(0.2)"]})
             for i in range(3)]
    objs.append(meta("Job", "flaky", {"queue": "q", "retries": 1, "workingDir": str(work),
                                      "command": [sys.executable, "-c", FLAKY]}))
    server = Server(tmp_path / "data", "--log-format", "json")
    try:
        assert httpx.post(f"{server.url}/v1/objects:batch", headers=HEADERS, json={"objects": objs},
                          timeout=10).status_code == 200
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            items = httpx.get(f"{server.url}/v1/jobs", headers=HEADERS, timeout=5).json()["items"]
            if all(j["status"]["state"] in TERMINAL for j in items):
                break
            time.sleep(0.1)
        text = httpx.get(f"{server.url}/metrics", headers=HEADERS, timeout=5).text
        out = server.stop()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    assert {j["metadata"]["name"]: j["status"]["state"] for j in items} == dict.fromkeys(
        ["ok-0", "ok-1", "ok-2", "flaky"], "SUCCEEDED")

    records = [json.loads(line) for line in out.splitlines()]  # every line: stdout and stderr alike
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    assert [r["message"] for r in records if r["logger"] == "altostrat.serve"][-1] == "stopped"
    flaky = [(r["event"], r.get("attempt")) for r in records if r.get("job") == "flaky"]
    assert flaky == [("submitted", None), ("started", 1), ("retried", 1), ("started", 2), ("succeeded", 2)]
    retried = next(r for r in records if r.get("event") == "retried")
    assert (retried["exit_code"], retried["queue"], retried["reason"]) == \
        (3, "q", "attempt 1 failed: task 0 exited with code 3; retry 1 of 1 in 1 s")

    got = {(s.name, tuple(sorted(s.labels.items()))): s.value
           for family in text_string_to_metric_families(text) for s in family.samples}
    assert got[("altostrat_jobs_admitted_total", (("queue", "q"),))] == 5  # flaky started twice
    assert got[("altostrat_jobs_ended_total", (("queue", "q"), ("state", "SUCCEEDED")))] == 4
    assert got[("altostrat_decisions_total", (("kind", "start"),))] == 5
    assert got[("altostrat_queue_running_jobs", (("queue", "q"),))] == 0
    assert got[("altostrat_queue_pending_jobs", (("queue", "q"),))] == 0
    assert got[("altostrat_gpus_allocated", (("pool", "gpus"),))] == 0
    assert got[("altostrat_gpus_capacity", (("pool", "gpus"),))] == 2
    assert 1 <= got[("altostrat_decision_seconds_count", ())] <= 5  # a call may start several jobs
