"""A live `altostrat serve`: a Service scaled by its reported load, its replicas restarted and
removed; and `altostrat get -w` following a job from PENDING to SUCCEEDED."""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
from pathlib import Path

import httpx
import pytest
from helpers import start_serve, until

# live servers and their job processes run one test at a time (`make test` uses --dist loadgroup)
pytestmark = pytest.mark.xdist_group("live-serve")

TOKEN = "services-e2e-token"
# a replica notes its pid (so that the test can kill it), then serves until stopped
REPLICA = "import os, time; open(os.environ['ALTOSTRAT_JOB'] + '.pid', 'w').write(str(os.getpid())); time.sleep(600)"


def obj(kind: str, name: str, **spec) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"


@pytest.fixture
def serve(tmp_path):
    proc, url = start_serve(tmp_path / "data", TOKEN)
    http = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=10)
    http.url = url
    yield http
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=60)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
    assert proc.returncode == 0


def test_a_service_scales_with_its_load_restarts_a_killed_replica_and_goes_with_its_replicas(serve, tmp_path):
    work = tmp_path / "work"
    work.mkdir()
    objects = [obj("Tenant", "t"), obj("Queue", "q", tenant="t"), obj("Pool", "local", cpu=8, memoryGib=16),
               obj("Service", "web", queue="q", command=[sys.executable, "-c", REPLICA], workingDir=str(work),
                   minReplicas=1, maxReplicas=3, targetLoad=10, scaleDownDelayS=3)]
    assert serve.post("/v1/objects:batch", json={"objects": objects}).status_code == 200

    def status() -> dict:
        return serve.get("/v1/services/web").json()["status"]

    def replicas() -> dict[str, dict]:
        return {j["metadata"]["name"]: j for j in serve.get("/v1/jobs").json()["items"]
                if j["metadata"]["labels"].get("altostrat.service") == "web"}

    def states() -> dict[str, str]:
        return {n: j["status"]["state"] for n, j in replicas().items()}

    def pid(replica: str) -> int:
        return int(until(f"{replica}'s pid", lambda: (work / f"{replica}.pid").exists()
                         and (work / f"{replica}.pid").read_text()))

    until("one ready replica", lambda: status().get("ready") == 1)
    assert states() == {"web-1": "RUNNING"} and status()["desired"] == 1

    r = serve.post("/v1/services/web:load", json={"value": 25})  # ceil(25 / 10) = 3
    assert r.status_code == 200, r.text
    until("three ready replicas", lambda: status().get("ready") == 3)
    assert states() == {"web-1": "RUNNING", "web-2": "RUNNING", "web-3": "RUNNING"}

    os.kill(pid("web-2"), signal.SIGKILL)  # a replica dies: a new replica Job replaces it
    until("web-2's replacement", lambda: states().get("web-4") == "RUNNING")
    s = status()
    assert states()["web-2"] == "FAILED" and replicas()["web-2"]["status"]["exitCode"] == -9
    assert (s["restarts"], s["lastExit"]["replica"], s["lastExit"]["exitCode"]) == (1, "web-2", -9)
    until("three ready replicas again", lambda: status().get("ready") == 3)

    assert serve.post("/v1/services/web:load", json={"value": 5}).status_code == 200
    lowered = status()["loadReportedAt"]
    until("the scale-down", lambda: status().get("desired") == 1)
    until("the surplus replicas' end", lambda: states() == {"web-1": "RUNNING", "web-2": "FAILED",
                                                            "web-3": "CANCELLED", "web-4": "CANCELLED"})
    s = until("the status after the scale-down", lambda: (s := status())["terminating"] == 0 and s)
    assert s["lastScaleTime"] - lowered >= 3  # not before the scale-down delay
    assert (s["ready"], s["replicas"], s["restarts"]) == (1, 1, 1)  # the controller's own stops are no restarts
    assert not alive(pid("web-3")) and not alive(pid("web-4"))

    last = pid("web-1")
    assert serve.delete("/v1/services/web").status_code == 200
    until("every replica gone", lambda: replicas() == {})
    until("web-1's process gone", lambda: not alive(last))


def test_get_watch_follows_a_job_until_interrupted(serve):
    setup = [obj("Tenant", "t"), obj("Queue", "q", tenant="t")]
    assert serve.post("/v1/objects:batch", json={"objects": setup}).status_code == 200
    env = {**os.environ, "ALTOSTRAT_SERVER": serve.url, "ALTOSTRAT_TOKEN": TOKEN}
    cli = [sys.executable, "-m", "altostrat.cli"]
    missing = subprocess.run([*cli, "get", "job", "nope", "-w"], env=env, capture_output=True, text=True, timeout=60)
    assert (missing.returncode, missing.stderr) == (2, "error: 404 no Job named 'nope'\n")

    # Ctrl-C's SIGINT as a terminal delivers it: a shell that starts the tests in the background
    # leaves SIGINT ignored, and an ignored SIGINT stays ignored across exec
    watcher = subprocess.Popen([*cli, "get", "jobs", "-w"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True,
                               preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    lines: queue.Queue = queue.Queue()
    threading.Thread(target=lambda: [lines.put(line.rstrip("\n")) for line in watcher.stdout], daemon=True).start()
    seen: list[str] = []

    def saw(text: str) -> bool:
        while not lines.empty():
            seen.append(lines.get())
        return any(text in line for line in seen)

    try:
        until("the watch's start", lambda: saw("no objects yet"))
        # no Pool yet: the job waits PENDING until one is applied
        job = obj("Job", "hello", queue="q", command=[sys.executable, "-c", "import time; time.sleep(2)"])
        assert serve.post("/v1/objects", json=job).status_code == 201
        until("PENDING", lambda: saw("PENDING"))
        assert serve.post("/v1/objects", json=obj("Pool", "local", cpu=4, memoryGib=8)).status_code == 201
        until("SUCCEEDED", lambda: saw("SUCCEEDED"))
        watcher.send_signal(signal.SIGINT)  # Ctrl-C
        assert watcher.wait(timeout=30) == 0
        assert "Traceback" not in watcher.stderr.read()
    finally:
        if watcher.poll() is None:
            watcher.kill()
            watcher.wait()
    rows = [line.split() for line in seen if "hello" in line]
    assert seen[1].split()[:4] == ["EVENT", "NAME", "QUEUE", "STATE"]
    assert [r[0] for r in rows][0] == "ADDED" and all(r[0] == "MODIFIED" for r in rows[1:])
    states = [r[3] for r in rows]
    assert states[0] == "PENDING" and states[-1] == "SUCCEEDED" and "RUNNING" in states
    assert states.index("RUNNING") < states.index("SUCCEEDED")
    assert all(s in ("PENDING", "RUNNING", "SUCCEEDED") for s in states)
