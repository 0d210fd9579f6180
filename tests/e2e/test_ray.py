"""`serve --executor ray`, live: one local Ray for the whole run (2 CPUs, 2 declared GPUs, no
dashboard, a small object store), real `serve` subprocesses as its drivers, real job commands.

A job flows submit -> run on Ray -> SUCCEEDED with its log and exit code, its Ray task holding
exactly the resources the engine placed; a failing one is retried, then FAILED; a cancel stops
a running one with its checkpoint signal; and a `kill -9` of the server kills its Ray tasks'
commands with it, the restarted server marking the attempt LOST and running the job again.
"""

from __future__ import annotations

import importlib.util
import json
import os
import re
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx
import pytest
from helpers import start_serve, until

# one worker runs every Ray test (`make test` uses --dist loadgroup): they share one Ray
pytestmark = pytest.mark.xdist_group("ray")

TOKEN = "ray-admin-token"
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
DECLARED_GPUS = 2


@pytest.fixture(scope="session")
def ray_address():
    """`ray start --head --block` with the issue's settings, on loopback; stopped (it and all it
    started) by SIGTERM at the end of the run."""
    if importlib.util.find_spec("ray") is None:
        pytest.fail("Ray is not installed: pip install -e '.[test]' (the test extra includes altostrat[ray])")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    # token authentication with a token of this run's, whatever ~/.ray holds: the cluster and
    # the serve subprocesses (which inherit the environment) agree
    auth = {"RAY_AUTH_MODE": "token", "RAY_AUTH_TOKEN": secrets.token_hex(32)}
    saved = {k: os.environ.get(k) for k in auth}
    os.environ.update(auth)
    temp = tempfile.mkdtemp(prefix="ray", dir="/tmp")  # short: Ray's socket paths have a length limit
    out = open(Path(temp) / "start.out", "w+")
    proc = subprocess.Popen([sys.executable, "-m", "ray.scripts.scripts", "start", "--head", "--block",
                             f"--port={port}", "--node-ip-address=127.0.0.1", "--num-cpus=2",
                             "--include-dashboard=false", f"--object-store-memory={100 * 2**20}",
                             f"--resources={json.dumps({'altostrat_gpu': DECLARED_GPUS})}", f"--temp-dir={temp}",
                             "--disable-usage-stats"], stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    try:
        deadline = time.monotonic() + 120
        while "Ray runtime started" not in Path(out.name).read_text():
            if proc.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"ray start failed: {Path(out.name).read_text()}")
            time.sleep(0.2)
        yield f"127.0.0.1:{port}"
    finally:
        proc.send_signal(signal.SIGTERM)  # --block: it stops the processes it started, then exits
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
        out.close()
        shutil.rmtree(temp, ignore_errors=True)
        for k, v in saved.items():
            if v is None:
                del os.environ[k]
            else:
                os.environ[k] = v


def serve(data_dir: Path, *args: str):
    out = tempfile.TemporaryFile("w+")
    proc, url = start_serve(data_dir, TOKEN, "--grace-s", "10", *args, out=out, timeout=90)
    return proc, url, out


def jobs(url: str) -> dict[str, dict]:
    r = httpx.get(f"{url}/v1/jobs", headers=HEADERS, timeout=10)
    return {j["metadata"]["name"]: j["status"] for j in r.json()["items"]}


def log(url: str, name: str, attempt: int | None = None) -> str:
    params = {} if attempt is None else {"attempt": attempt}
    return httpx.get(f"{url}/v1/jobs/{name}/logs", headers=HEADERS, params=params, timeout=10).text


def stop(proc: subprocess.Popen, out) -> str:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=60)
    out.seek(0)
    return out.read()


def doc(kind: str, name: str, spec: dict) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def apply(url: str, objects: list[dict]) -> None:
    r = httpx.post(f"{url}/v1/objects:batch", headers=HEADERS, json={"objects": objects}, timeout=30)
    assert r.status_code == 200, r.text


BASE = [doc("Tenant", "t", {}), doc("Queue", "q", {"tenant": "t"}),
        doc("Pool", "ray", {"nodes": 1, "gpu": {"model": "T4", "count": DECLARED_GPUS}, "cpu": 2, "memoryGib": 4})]
OK = "import os; print('devices', os.environ['CUDA_VISIBLE_DEVICES'], 'job', os.environ['ALTOSTRAT_JOB'])"
TRAP = ("import signal, sys, time\n"
        "signal.signal(signal.SIGUSR1, lambda *_: (print('got SIGUSR1, checkpointing', flush=True), sys.exit(0)))\n"
        "print('ready', flush=True)\n"
        "time.sleep(120)\n")


def test_jobs_run_succeed_fail_and_cancel_on_ray(ray_address, tmp_path):
    config = tmp_path / "serve.yaml"
    config.write_text(f"executor: ray\nray: {{address: '{ray_address}'}}\npolicy: fcfs+best-fit\n")
    proc, url, out = serve(tmp_path / "data", "--config", str(config))
    try:
        apply(url, [*BASE,
                    doc("Job", "ok", {"queue": "q", "command": [sys.executable, "-c", OK],
                                      "resources": {"gpu": 1, "cpu": 0.5, "memoryGib": 0.25}}),
                    doc("Job", "bad", {"queue": "q", "command": [sys.executable, "-c", "import sys; sys.exit(3)"],
                                       "resources": {"cpu": 0.5}, "retries": 1}),
                    doc("Job", "stop", {"queue": "q", "command": [sys.executable, "-c", TRAP],
                                        "resources": {"gpu": 1, "cpu": 0.5}, "checkpointSignal": "SIGUSR1"})])
        until("the stop job to run", lambda: "ready" in log(url, "stop"), timeout=90)
        r = httpx.post(f"{url}/v1/jobs/stop:cancel", headers=HEADERS, timeout=10)
        assert (r.status_code, r.json()["result"]) == (202, "cancelling"), r.text
        final = until("every job to end", lambda: (j := jobs(url)) and all(s["state"] in TERMINAL for s in j.values()) and j,
                      timeout=90)
        logs = {name: log(url, name) for name in final}
    finally:
        output = stop(proc, out)
    assert "Traceback" not in output, output
    assert (f"ray executor: tasks run on the Ray cluster at {ray_address} (CPU 2, altostrat_gpu 2), each requesting "
            "num_cpus, memory and GPUs as the altostrat_gpu resource as the engine placed it") in output, output

    ok = final["ok"]
    assert (ok["state"], ok["exitCode"], ok["attempts"]) == ("SUCCEEDED", 0, 1)
    [task] = ok["tasks"]
    assert (task["state"], task["exitCode"]) == ("EXITED", 0)
    text = logs["ok"]
    # the Ray task held what the engine placed: its cpu, its memory, one declared GPU, on the devices given
    assert re.search(r"^altostrat: ray task on node \w+ with CPU=0.5, altostrat_gpu=1, memory=268435456$", text, re.M), text
    assert f"devices {task['devices']} job ok" in text

    bad = final["bad"]
    assert (bad["state"], bad["exitCode"], bad["attempts"]) == ("FAILED", 3, 2)
    assert bad["reason"] == "task 0 exited with code 3 (attempt 2, 1 retry allowed)"
    assert [(t["attempt"], t["state"], t["exitCode"]) for t in bad["tasks"]] == [(1, "EXITED", 3), (2, "EXITED", 3)]

    cancelled = final["stop"]
    assert cancelled["state"] == "CANCELLED"
    assert [(t["state"], t["exitCode"]) for t in cancelled["tasks"]] == [("STOPPED", 0)]  # it exited on its signal
    assert "got SIGUSR1, checkpointing" in logs["stop"]


# notes each run's begin and end; its first attempt runs until killed, a later one ends at once
MARKED = ("import os, sys, time\n"
          "marks, attempt = sys.argv[1], os.environ['ALTOSTRAT_ATTEMPT']\n"
          "def note(what):\n"
          "    fd = os.open(marks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)\n"
          "    os.write(fd, f'{what} {attempt}\\n'.encode())\n"
          "    os.close(fd)\n"
          "note('begin')\n"
          "time.sleep(120 if attempt == '1' else 0.2)\n"
          "note('end')\n")


def commands_alive(marks: Path) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(marks).encode() in (proc / "cmdline").read_bytes():
                if (proc / "stat").read_text().rsplit(")", 1)[1].split()[0] != "Z":
                    pids.append(int(proc.name))
        except OSError:
            continue
    return pids


def test_kill_9_of_the_server_kills_its_ray_tasks_and_the_restart_runs_them_again(ray_address, tmp_path):
    data, marks = tmp_path / "data", tmp_path / "marks.txt"
    proc, url, out = serve(data, "--executor", "ray", "--ray-address", ray_address)
    try:
        apply(url, [*BASE, doc("Job", "long", {"queue": "q", "command": [sys.executable, "-c", MARKED, str(marks)],
                                              "resources": {"gpu": 1}})])
        until("attempt 1 to begin", lambda: marks.exists() and "begin 1" in marks.read_text(), timeout=90)
        proc.kill()  # kill -9: the driver is gone, and its Ray tasks with it
        proc.wait(timeout=10)
        until("the orphaned command to be killed", lambda: not commands_alive(marks))
        proc, url, out = serve(data, "--executor", "ray", "--ray-address", ray_address)
        final = until("the rerun", lambda: (j := jobs(url)) and j["long"]["state"] in TERMINAL and j, timeout=90)
    finally:
        stop(proc, out)
    long = final["long"]
    assert (long["state"], long["attempts"]) == ("SUCCEEDED", 2)
    assert [(t["attempt"], t["state"], t["exitCode"]) for t in long["tasks"]] == [(1, "LOST", None), (2, "EXITED", 0)]
    assert "failures" not in long  # a lost attempt uses up no retry
    assert marks.read_text().splitlines() == ["begin 1", "begin 2", "end 2"]  # attempt 1 never ended: killed
