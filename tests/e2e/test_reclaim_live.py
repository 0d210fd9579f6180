"""Reclaim on a live `serve` under a preempting policy: queue b borrows queue a's GPUs, a submits,
the newest borrowed b job gets its checkpoint signal and gives way, a's job runs, and the b job
resumes later; every job succeeds (docs/service.md, "Queues")."""

from __future__ import annotations

import sys
import time

import httpx
import pytest

from helpers import start_serve

pytestmark = pytest.mark.xdist_group("live-serve")

TOKEN = "reclaim-e2e-token"
# a b job: on SIGTERM it notes the signal (its checkpoint) and exits; a later attempt that finds
# the note ends at once; unsignalled it runs 6 s
BORROWER = ("import os, signal, sys, time\n"
            "note = os.path.join(os.environ['NOTES'], os.environ['ALTOSTRAT_JOB'])\n"
            "if os.path.exists(note): print('resumed'); sys.exit(0)\n"
            "def stop(sig, frame):\n"
            "    open(note, 'w').write(str(sig)); print('checkpointed', flush=True); sys.exit(0)\n"
            "signal.signal(signal.SIGTERM, stop)\n"
            "print('ready', flush=True)\n"
            "time.sleep(6)\n")
TERMINAL = ("SUCCEEDED", "FAILED", "CANCELLED")


def doc(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def test_a_lender_reclaims_its_lent_gpu_by_preempting_the_newest_borrowed_job(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    proc, url = start_serve(tmp_path / "data", TOKEN, "--policy", "fcfs+first-fit+preempt")
    try:
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
        # a lends its 2 GPUs while idle; b holds 1 of its own and borrows 2. The pool has 3.
        objects = [doc("Tenant", "t", {}),
                   doc("Queue", "a", {"tenant": "t", "quota": {"gpu": 2}, "cohort": "c"}),
                   doc("Queue", "b", {"tenant": "t", "quota": {"gpu": 1}, "cohort": "c"}),
                   doc("Pool", "box", {"gpu": {"model": "T4", "count": 3}, "cpu": 8, "memoryGib": 8})]
        objects += [doc("Job", f"b{i}", {"queue": "b", "command": [sys.executable, "-c", BORROWER],
                                         "resources": {"gpu": 1}, "env": {"NOTES": str(notes)}}) for i in range(3)]
        assert client.post("/v1/objects:batch", json={"objects": objects}).status_code in (200, 201)
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:  # all three run, their checkpoint handlers set
            if all("ready" in client.get(f"/v1/jobs/b{i}/logs").text for i in range(3)):
                break
            time.sleep(0.1)
        else:
            raise AssertionError("b's jobs did not all start")
        r = client.post("/v1/objects", json=doc("Job", "a0", {"queue": "a", "resources": {"gpu": 1},
                                                               "command": [sys.executable, "-c", "print('a done')"]}))
        assert r.status_code == 201
        while time.monotonic() < deadline:
            jobs = {j["metadata"]["name"]: j for j in client.get("/v1/jobs").json()["items"]}
            if len(jobs) == 4 and all(j["status"]["state"] in TERMINAL for j in jobs.values()):
                break
            time.sleep(0.1)
    finally:
        proc.kill()
        proc.wait()
    assert {n: j["status"]["state"] for n, j in jobs.items()} == dict.fromkeys(("a0", "b0", "b1", "b2"), "SUCCEEDED")
    # exactly one borrowed job gave way, b2 (the newest of equal priority), on SIGTERM, its checkpoint signal
    assert sorted(p.name for p in notes.iterdir()) == ["b2"]
    assert (notes / "b2").read_text() == "15"
    tasks = {n: j["status"]["tasks"] for n, j in jobs.items()}
    assert [(t["attempt"], t["state"], t["exitCode"]) for t in tasks["b2"]] == [(1, "STOPPED", 0), (2, "EXITED", 0)]
    for name in ("b0", "b1"):  # b's own GPU and the other borrowed one: never preempted
        assert [(t["attempt"], t["state"]) for t in tasks[name]] == [(1, "EXITED")]
    [a0] = tasks["a0"]
    # a0 started on the GPU b2 gave back, once b2 had stopped; b2 ran again after a0 started
    assert tasks["b2"][0]["endedAt"] <= a0["startedAt"] <= tasks["b2"][1]["startedAt"]
    assert a0["startedAt"] < min(tasks[n][0]["endedAt"] for n in ("b0", "b1"))  # before any b job ended on its own
