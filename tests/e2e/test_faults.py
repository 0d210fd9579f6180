"""Faults, end to end: 10 % of job processes crash at random (a non-zero exit or SIGKILL, at a
random moment); each job ends SUCCEEDED after its retry or FAILED with its reason, none
stuck. Which attempt crashes, and how, follows from a seeded draw that the job's program and
this test make with the same code, so every job's outcome is known exactly."""

from __future__ import annotations

import sys
import time

import httpx
import pytest
from test_serve import TOKEN, Server

# live servers and their job processes run one test at a time (`make test` uses --dist loadgroup),
# so that timings are not fought over by another live test
pytestmark = pytest.mark.xdist_group("live-serve")

N_JOBS, GPUS, RETRIES, SEED = 100, 8, 1, 7
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
FATE = ("import random\n"
        "def fate(seed, name, attempt):\n"
        "    '''(seconds to run, None or how it crashes: -9 for SIGKILL, else an exit code)'''\n"
        "    rnd = random.Random(f'{seed}:{name}:{attempt}')\n"
        "    secs = rnd.uniform(0.05, 0.3)\n"
        "    if rnd.random() >= 0.1:\n"
        "        return secs, None\n"
        "    return secs * rnd.random(), -9 if rnd.random() < 0.5 else rnd.randint(1, 100)\n")
JOB = FATE + ("import os, signal, sys, time\n"
              "secs, crash = fate(int(sys.argv[1]), sys.argv[2], int(os.environ['ALTOSTRAT_ATTEMPT']))\n"
              "time.sleep(secs)\n"
              "if crash == -9:\n"
              "    os.kill(os.getpid(), signal.SIGKILL)\n"
              "sys.exit(crash or 0)\n")


def test_crashing_processes_end_succeeded_after_retry_or_failed_with_reason(tmp_path):
    scope: dict = {}
    exec(FATE, scope)
    expected = {}
    for i in range(N_JOBS):
        name = f"job-{i:03d}"
        crashes = [scope["fate"](SEED, name, a)[1] for a in range(1, RETRIES + 2)]
        good = next((a for a, c in enumerate(crashes, 1) if c is None), None)
        expected[name] = ("SUCCEEDED", good, 0) if good else ("FAILED", RETRIES + 1, crashes[-1])
    outcomes = [e[0] for e in expected.values()]
    assert outcomes.count("FAILED") >= 1 and sum(e[1] > 1 for e in expected.values() if e[0] == "SUCCEEDED") >= 3

    meta = lambda kind, name, spec=None: {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name},
                                          **({"spec": spec} if spec else {})}
    objs = [meta("Tenant", "t"), meta("Queue", "q", {"tenant": "t"}),
            meta("Pool", "gpus", {"nodes": 1, "gpu": {"model": "T4", "count": GPUS}, "cpu": 64, "memoryGib": 64})]
    objs += [meta("Job", name, {"queue": "q", "resources": {"gpu": 1}, "retries": RETRIES,
                                "command": [sys.executable, "-I", "-c", JOB, str(SEED), name]}) for name in expected]
    server = Server(tmp_path / "data")
    try:
        r = httpx.post(f"{server.url}/v1/objects:batch", headers=HEADERS, json={"objects": objs}, timeout=30)
        assert r.status_code == 200, r.text
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            items = httpx.get(f"{server.url}/v1/jobs", headers=HEADERS, timeout=10).json()["items"]
            final = {j["metadata"]["name"]: j["status"] for j in items}
            if all(s["state"] in TERMINAL for s in final.values()):
                break
            time.sleep(0.1)
        server.stop()
    finally:
        if server.proc.poll() is None:
            server.proc.kill()

    got = {name: (s["state"], s["attempts"], s["exitCode"]) for name, s in final.items()}
    assert got == expected
    for name, s in final.items():
        assert [(t["attempt"], t["state"]) for t in s["tasks"]] == [(a, "EXITED") for a in range(1, s["attempts"] + 1)]
        assert s.get("failures", 0) == s["attempts"] - (s["state"] == "SUCCEEDED")
        if s["state"] == "FAILED":
            code = expected[name][2]
            assert s["reason"] == f"task 0 exited with code {code} (attempt 2, 1 retry allowed)"
