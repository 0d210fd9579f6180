"""Priority preemption, live: a high-priority job preempts a running low-priority one, which
sees its checkpoint signal, stops, and later runs again to success (issue 4)."""

from __future__ import annotations

import json
import sys
import time

import pytest
from test_serve import TERMINAL, Server

pytestmark = pytest.mark.xdist_group("live-serve")

# the low job: on its first attempt it runs until signalled, notes the signal (its checkpoint)
# and exits; on a later attempt, finding the note, it finishes at once
LOW = ("import os, signal, sys, time\n"
       "note = os.path.join(os.environ['NOTES'], 'low.checkpoint')\n"
       "if os.path.exists(note): print('resumed'); sys.exit(0)\n"
       "def stop(sig, frame):\n"
       "    open(note, 'w').write(str(sig)); print('checkpointed'); sys.exit(0)\n"
       "signal.signal(signal.SIGTERM, stop)\n"
       "print('ready', flush=True)\n"
       "time.sleep(60)\n")
HIGH = "import time; time.sleep(0.5); print('high done')"


def doc(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def test_high_priority_preempts_low_which_checkpoints_and_resumes(tmp_path):
    notes = tmp_path / "notes"
    notes.mkdir()
    server = Server(tmp_path / "data", "--policy", "priority+first-fit+preempt")
    try:
        base = [doc("Tenant", "t", {}), doc("Queue", "q", {"tenant": "t"}),
                doc("Pool", "one", {"nodes": 1, "gpu": {"model": "T4", "count": 1}, "cpu": 4, "memoryGib": 8}),
                doc("Job", "low", {"queue": "q", "command": [sys.executable, "-c", LOW], "priority": 0,
                                   "resources": {"gpu": 1}, "env": {"NOTES": str(notes)}})]
        (tmp_path / "base.yaml").write_text("\n---\n".join(json.dumps(d) for d in base))
        server.cli("apply", "-f", str(tmp_path / "base.yaml"))
        deadline = time.monotonic() + 30
        while "ready" not in server.logs("low") and time.monotonic() < deadline:
            time.sleep(0.1)
        high = doc("Job", "high", {"queue": "q", "command": [sys.executable, "-c", HIGH], "priority": 10,
                                   "resources": {"gpu": 1}})
        (tmp_path / "high.yaml").write_text(json.dumps(high))
        server.cli("apply", "-f", str(tmp_path / "high.yaml"))
        deadline = time.monotonic() + 40
        while time.monotonic() < deadline:
            jobs = server.jobs()
            if len(jobs) == 2 and all(j["status"]["state"] in TERMINAL for j in jobs.values()):
                break
            time.sleep(0.1)
    finally:
        server.proc.kill()
        server.proc.wait()
    assert {n: j["status"]["state"] for n, j in jobs.items()} == {"low": "SUCCEEDED", "high": "SUCCEEDED"}
    assert (notes / "low.checkpoint").read_text() == "15"  # SIGTERM, its checkpoint signal
    low = jobs["low"]["status"]["tasks"]
    high = jobs["high"]["status"]["tasks"]
    assert [(t["attempt"], t["state"], t["exitCode"]) for t in low] == [(1, "STOPPED", 0), (2, "EXITED", 0)]
    # high ran after low's first attempt stopped and before its second started
    assert low[0]["endedAt"] <= high[0]["startedAt"] and high[0]["endedAt"] <= low[1]["startedAt"]
