"""`altostrat serve` as a user runs it: a real server process, real job processes, the CLI client."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest

# live servers and their job processes run one test at a time (`make test` uses --dist loadgroup),
# so that timings are not fought over by another live test
pytestmark = pytest.mark.xdist_group("live-serve")

ALTOSTRAT = [sys.executable, "-m", "altostrat.cli"]
TOKEN = "e2e-admin-token"
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
OK = "import os, time; time.sleep(0.3); print('ok', os.environ['CUDA_VISIBLE_DEVICES'])"

OBJECTS = f"""
apiVersion: altostrat/v1
kind: Tenant
metadata: {{name: team-a}}
---
apiVersion: altostrat/v1
kind: Queue
metadata: {{name: research}}
spec: {{tenant: team-a, quota: {{gpu: 4}}}}
---
apiVersion: altostrat/v1
kind: Pool
metadata: {{name: local}}
spec: {{nodes: 1, gpu: {{model: T4, count: 2}}, cpu: 8, memoryGib: 16}}
""" + "".join(f"""---
apiVersion: altostrat/v1
kind: Job
metadata: {{name: ok-{i}}}
spec: {{queue: research, command: [{json.dumps(sys.executable)}, -c, {json.dumps(OK)}], resources: {{gpu: 1}}}}
""" for i in range(3)) + f"""---
apiVersion: altostrat/v1
kind: Job
metadata: {{name: bad}}
spec: {{queue: research, command: [{json.dumps(sys.executable)}, -c, "import sys; print('failing'); sys.exit(3)"],
        resources: {{gpu: 1}}, retries: 1}}
"""


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def db_args(request, backend: str) -> tuple[str, ...]:
    """serve's arguments for a store on `backend`: SQLite in the data dir (none), or a fresh
    PostgreSQL database of the test's server (tests/pg.py)."""
    return ("--db", request.getfixturevalue("pg_url")) if backend == "postgresql" else ()


class Server:
    def __init__(self, data_dir: Path, *args: str) -> None:
        self.args = args
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = {**os.environ, "ALTOSTRAT_ADMIN_TOKEN": TOKEN}
        # a file, not a pipe: a pipe nobody reads during the test would block the server's log once full
        self.out = tempfile.TemporaryFile("w+")
        self.proc = subprocess.Popen([*ALTOSTRAT, "serve", "--port", str(self.port), "--data-dir", str(data_dir),
                                      "--grace-s", "2", *args], env=env, stdout=self.out, stderr=subprocess.STDOUT,
                                     text=True)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.1)
        self.proc.kill()
        self.proc.wait()
        raise AssertionError(f"server did not come up: {self.output()}")

    def output(self) -> str:
        """What the server wrote to stdout and stderr so far."""
        self.out.seek(0)
        return self.out.read()

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        env = {**os.environ, "ALTOSTRAT_SERVER": self.url, "ALTOSTRAT_TOKEN": TOKEN}
        return subprocess.run([*ALTOSTRAT, *args], capture_output=True, text=True, env=env, check=check, timeout=60)

    def jobs(self) -> dict[str, dict]:
        r = httpx.get(f"{self.url}/v1/jobs", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5)
        return {j["metadata"]["name"]: j for j in r.json()["items"]}

    def logs(self, job: str) -> str:
        return httpx.get(f"{self.url}/v1/jobs/{job}/logs", headers={"Authorization": f"Bearer {TOKEN}"}, timeout=5).text

    def stop(self) -> str:
        self.proc.send_signal(signal.SIGTERM)
        self.proc.wait(timeout=20)
        out = self.output()
        assert self.proc.returncode == 0, out
        return out


@pytest.fixture
def server(request, tmp_path):
    """A live server on SQLite; parametrized indirectly with "postgresql", on PostgreSQL."""
    srv = Server(tmp_path / "data", *db_args(request, getattr(request, "param", "sqlite")))
    yield srv
    if srv.proc.poll() is None:
        srv.proc.kill()
        srv.proc.wait()


def overlaps(intervals: list[tuple[float, float]]) -> int:
    """The most intervals open at one instant."""
    edges = sorted([(s, 1) for s, _ in intervals] + [(e, -1) for _, e in intervals], key=lambda x: (x[0], x[1]))
    most = now = 0
    for _, step in edges:
        now += step
        most = max(most, now)
    return most


@pytest.mark.parametrize("server", ["sqlite", "postgresql"], indirect=True)
def test_jobs_flow_through_serve_and_survive_a_restart(server, tmp_path):
    spec = tmp_path / "objects.yaml"
    spec.write_text(OBJECTS)
    applied = server.cli("apply", "-f", str(spec))
    assert applied.stdout.splitlines() == ["tenant/team-a created", "queue/research created", "pool/local created",
                                           "job/ok-0 created", "job/ok-1 created", "job/ok-2 created", "job/bad created"]
    seen: dict[str, list[str]] = {}
    deadline = time.monotonic() + 40
    while time.monotonic() < deadline:
        jobs = server.jobs()
        for name, job in jobs.items():
            states = seen.setdefault(name, [])
            if not states or states[-1] != job["status"]["state"]:
                states.append(job["status"]["state"])
        if all(j["status"]["state"] in TERMINAL for j in jobs.values()):
            break
        time.sleep(0.05)
    order = ["PENDING", "RUNNING", "SUCCEEDED"]
    for name in ("ok-0", "ok-1", "ok-2"):
        assert seen[name][-1] == "SUCCEEDED", seen
        assert [order.index(s) for s in seen[name]] == sorted(order.index(s) for s in seen[name]), seen[name]
    assert any("RUNNING" in s for s in seen.values()) and any("PENDING" in s for s in seen.values())

    final = json.loads(server.cli("get", "jobs", "-o", "json").stdout)
    by_name = {j["metadata"]["name"]: j for j in final}
    bad = by_name["bad"]["status"]
    assert bad["state"] == "FAILED" and bad["exitCode"] == 3 and bad["attempts"] == 2
    assert [(t["attempt"], t["exitCode"]) for t in bad["tasks"]] == [(1, 3), (2, 3)]
    assert "exited with code 3" in bad["reason"]
    # the retry waited for its backoff (1 s) after the first attempt ended
    assert bad["tasks"][1]["startedAt"] - bad["tasks"][0]["endedAt"] >= 1.0

    tasks = [t for j in final for t in j["status"]["tasks"]]
    assert len(tasks) == 5 and all(t["state"] == "EXITED" for t in tasks)
    assert overlaps([(t["startedAt"], t["endedAt"]) for t in tasks]) == 2  # the pool's 2 GPUs, never more
    for a in tasks:  # tasks running at once hold distinct devices
        for b in tasks:
            if a is not b and a["startedAt"] < b["endedAt"] and b["startedAt"] < a["endedAt"]:
                assert a["devices"] != b["devices"]
    assert {t["devices"] for t in tasks} == {"0", "1"}
    for name in ("ok-0", "ok-1", "ok-2"):
        assert server.logs(name) == f"ok {by_name[name]['status']['tasks'][0]['devices']}\n"
    assert server.cli("logs", "bad").stdout == "failing\n"

    table = server.cli("get", "jobs").stdout.splitlines()
    assert table[0].split() == ["NAME", "QUEUE", "STATE", "ATTEMPTS", "EXIT", "REASON"]
    assert table[1].split()[:5] == ["ok-0", "research", "SUCCEEDED", "1", "0"]

    out = server.stop()
    assert "listening on" in out and out.rstrip().endswith("stopped") and "Traceback" not in out
    store_line = next(line for line in out.splitlines() if line.startswith("store: "))
    assert store_line.startswith("store: postgresql+psycopg://postgres@" if server.args else "store: sqlite:///")

    # same data dir: everything is still there and nothing runs again
    again = Server(tmp_path / "data", *server.args)
    try:
        time.sleep(1.0)  # a few reconciler turns
        assert list(again.jobs().values()) == final
        assert again.cli("get", "queues").stdout.split() == ["NAME", "TENANT", "QUOTA", "WEIGHT",
                                                             "research", "team-a", "gpu=4", "1"]
        again.stop()
    finally:
        if again.proc.poll() is None:
            again.proc.kill()


def test_cli_errors_are_one_line_messages(server, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("apiVersion: altostrat/v1\nkind: Job\nmetadata: {name: j}\nspec: {queue: nowhere, command: [x]}\n")
    r = server.cli("apply", "-f", str(bad), check=False)
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert f"{bad} (document 1): spec.queue: no Queue named 'nowhere'; apply it first" in r.stderr
    r = server.cli("get", "jobs", "missing", check=False)
    assert r.returncode == 2 and r.stderr.strip() == "error: 404 no Job named 'missing'"
    env = {**os.environ, "ALTOSTRAT_SERVER": server.url, "ALTOSTRAT_TOKEN": "wrong"}
    r = subprocess.run([*ALTOSTRAT, "get", "jobs"], capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 2 and r.stderr.startswith("error: 401 ")


TRAP = ("import signal, sys, time\n"
        "def stop(sig, frame):\n"
        "    print('checkpointing on', signal.Signals(sig).name, flush=True)\n"
        "    sys.exit(0)\n"
        "signal.signal(signal.SIGUSR1, stop)\n"
        "print('started', flush=True)\n"
        "time.sleep(60)\n")


def test_cancel_sends_the_checkpoint_signal(server, tmp_path):
    spec = tmp_path / "objects.yaml"
    spec.write_text(OBJECTS.split("---\napiVersion: altostrat/v1\nkind: Job")[0] + f"""---
apiVersion: altostrat/v1
kind: Job
metadata: {{name: long}}
spec: {{queue: research, command: [{json.dumps(sys.executable)}, -c, {json.dumps(TRAP)}], checkpointSignal: SIGUSR1}}
""")
    server.cli("apply", "-f", str(spec))
    deadline = time.monotonic() + 20
    while server.jobs()["long"]["status"]["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    while "started" not in server.logs("long") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert server.cli("cancel", "long").stdout == "job/long cancelling\n"
    while server.jobs()["long"]["status"]["state"] != "CANCELLED" and time.monotonic() < deadline:
        time.sleep(0.05)
    status = server.jobs()["long"]["status"]
    assert status["state"] == "CANCELLED" and status["tasks"][0]["exitCode"] == 0  # it exited on the signal
    assert server.cli("logs", "long").stdout == "started\ncheckpointing on SIGUSR1\n"
    assert server.cli("delete", "job", "long").stdout == "job/long deleted\n"
    assert "long" not in server.jobs()


def test_describe_says_why_a_job_waits_and_when_it_should_start(server, tmp_path):
    sleeper = json.dumps([sys.executable, "-c", "import time; time.sleep(60)"])
    spec = tmp_path / "objects.yaml"
    spec.write_text(f"""
apiVersion: altostrat/v1
kind: Tenant
metadata: {{name: team-a}}
---
apiVersion: altostrat/v1
kind: Queue
metadata: {{name: research}}
spec: {{tenant: team-a}}
---
apiVersion: altostrat/v1
kind: Pool
metadata: {{name: local}}
spec: {{nodes: 1, gpu: {{model: T4, count: 1}}, cpu: 8, memoryGib: 16}}
---
apiVersion: altostrat/v1
kind: Job
metadata: {{name: long}}
spec: {{queue: research, command: {sleeper}, resources: {{gpu: 1}}, expectedDurationS: 100}}
---
apiVersion: altostrat/v1
kind: Job
metadata: {{name: waits}}
spec: {{queue: research, command: [\"true\"], resources: {{gpu: 1}}, expectedDurationS: 10}}
""")
    server.cli("apply", "-f", str(spec))
    deadline = time.monotonic() + 20
    while server.jobs()["long"]["status"]["state"] != "RUNNING" and time.monotonic() < deadline:
        time.sleep(0.05)
    started = server.jobs()["long"]["status"]["startedAt"]

    waits = json.loads(server.cli("describe", "job", "waits", "-o", "json").stdout)
    pending = waits["pending"]
    assert (waits["state"], pending["reason"], pending["queuePosition"], pending["pendingJobs"]) == \
        ("PENDING", "capacity", 0, 1)
    assert pending["message"] == "needs 1 GPU, 1 CPU, 0 GiB at once; free now: T4: 0 GPU, 7 CPU, 16 GiB"
    assert abs(pending["estimatedStart"] - (started + 100)) < 2  # long's expected 100 s, from its start

    table = server.cli("describe", "job", "waits").stdout
    assert "Reason:    capacity: needs 1 GPU" in table and "Position:  0 of 1 pending" in table
    running = server.cli("describe", "job", "long").stdout.splitlines()
    assert running[:3] == ["Name:      long", "Queue:     research (tenant team-a)", "State:     RUNNING"]
    assert running[4].split() == ["ATTEMPT", "TASK", "NODE", "DEVICES", "STATE", "EXIT", "STARTED", "ENDED"]
    assert running[5].split()[:5] == ["1", "0", "local/0", "0", "RUNNING"]

    wrong = server.cli("describe", "tenant", "team-a", check=False)
    assert wrong.returncode == 2 and wrong.stderr.strip() == \
        "error: describe tenant: jobs, queues, pools and services are described; use `altostrat get tenant NAME`"
    missing = server.cli("describe", "job", "nope", check=False)
    assert missing.returncode == 2 and missing.stderr.strip() == "error: 404 no Job named 'nope'"
    server.cli("cancel", "long")
    server.stop()
