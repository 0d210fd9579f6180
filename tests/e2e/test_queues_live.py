"""Cohort borrowing on a live `serve`: queue A runs on queue B's idle GPUs, up to its borrowing
limit, and the cohort never holds more than its queues' quotas together (docs/service.md, "Queues")."""

from __future__ import annotations

import sys
import time

import httpx
import pytest

from helpers import start_serve

pytestmark = pytest.mark.xdist_group("live-serve")

TOKEN = "queues-e2e-token"
SLEEP = "import time; time.sleep(3.0)"  # long enough to describe b0 while a borrows


def doc(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def overlaps(spans: list[tuple[float, float]]) -> int:
    """The most spans open at one instant."""
    events = sorted([(s, 1) for s, _ in spans] + [(e, -1) for _, e in spans])
    most = now = 0
    for _, step in events:
        now += step
        most = max(most, now)
    return most


def test_a_queue_borrows_a_lenders_idle_gpus_and_the_cohort_total_holds(tmp_path):
    proc, url = start_serve(tmp_path / "data", TOKEN)
    try:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        objects = [doc("Tenant", "t", {}),
                   # a: 1 GPU of its own, may borrow 2 more; b lends its 2 while idle. The pool has 4.
                   doc("Queue", "a", {"tenant": "t", "quota": {"gpu": 1}, "cohort": "c", "borrowingLimit": {"gpu": 2}}),
                   doc("Queue", "b", {"tenant": "t", "quota": {"gpu": 2}, "cohort": "c"}),
                   doc("Pool", "box", {"gpu": {"model": "T4", "count": 4}, "cpu": 8, "memoryGib": 8})]
        objects += [doc("Job", f"a{i}", {"queue": "a", "command": [sys.executable, "-c", SLEEP], "resources": {"gpu": 1}})
                    for i in range(6)]
        assert client.post("/v1/objects:batch", json={"objects": objects}).status_code in (200, 201)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # while a borrows, b's job waits within b's own quota (no reclaim)
            jobs = {j["metadata"]["name"]: j for j in client.get("/v1/jobs").json()["items"]}
            if sum(j["status"]["state"] == "RUNNING" for j in jobs.values()) == 3:
                break
            time.sleep(0.05)
        r = client.post("/v1/objects", json=doc("Job", "b0", {"queue": "b", "command": [sys.executable, "-c", SLEEP],
                                                               "resources": {"gpu": 1}}))
        assert r.status_code == 201
        while time.monotonic() < deadline:  # until the engine has taken b0 in
            pending = client.get("/v1/jobs/b0:describe").json()["pending"]
            if pending["reason"] != "not-admitted":
                break
            time.sleep(0.05)
        # within b's own quota, but the cohort's 3 GPUs are all in use: a borrows b's 2
        assert pending["reason"] == "quota"
        assert pending["message"].startswith("queue b uses 0/2 GPUs; cohort c has 0 GPUs to lend (3/3 in use: "
                                             "queue a borrows 2)")
        while time.monotonic() < deadline:
            jobs = {j["metadata"]["name"]: j for j in client.get("/v1/jobs").json()["items"]}
            if all(j["status"]["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") for j in jobs.values()):
                break
            time.sleep(0.1)
        assert {n: j["status"]["state"] for n, j in jobs.items()} == {n: "SUCCEEDED" for n in jobs}
    finally:
        proc.kill()
        proc.wait()
    spans = {n: [(t["startedAt"], t["endedAt"]) for t in j["status"]["tasks"]] for n, j in jobs.items()}
    a_spans = [s for n, ss in spans.items() if n.startswith("a") for s in ss]
    assert overlaps(a_spans) == 3  # its quota 1 + its borrowing limit 2: it ran on b's idle GPUs
    assert overlaps([s for ss in spans.values() for s in ss]) <= 3  # the cohort: 1 + 2, though the pool has 4
    # when a's first wave ends, the lender starts first: b0 before a's fourth job
    assert spans["b0"][0][0] <= sorted(s for s, _ in a_spans)[3]
