"""Crash safety, end to end, on SQLite and on PostgreSQL: `kill -9` the server while 200 jobs are
queued or running, restart it (twice), and every job ends exactly once: one successful attempt, one run of its command,
attempts of a job never overlapping, the pool's GPUs never handed out twice, nothing left
running. Most jobs sleep 0.1-0.5 s; one in 8 sleeps 4-8 s; and the first three of those wait
until the test releases them after the last restart, so that some surely still run when each
restarted server recovers, however slow the restart, and must be adopted. The second kill
falls shortly after the first restart, while adopted tasks run."""

from __future__ import annotations

import random
import signal
import sys
import time
from collections import defaultdict
from pathlib import Path

import httpx
import pytest
from test_serve import TOKEN, Server, db_args, overlaps

# live servers and their job processes run one test at a time (`make test` uses --dist loadgroup),
# so that timings are not fought over by another live test
pytestmark = pytest.mark.xdist_group("live-serve")

N_JOBS, GPUS, SEED = 200, 8, 20240611
GATED = (7, 15, 23)  # jobs that run until the test releases them
HEADERS = {"Authorization": f"Bearer {TOKEN}"}
TERMINAL = {"SUCCEEDED", "FAILED", "CANCELLED"}
# each run of a job's command notes its begin and end (name, attempt, devices, time) in one
# shared file, appended with O_APPEND so that concurrent lines never mix
JOB = ("import os, sys, time\n"
       "name, secs, marks = sys.argv[1], sys.argv[2], sys.argv[3]\n"
       "def note(what):\n"
       "    line = f\"{what} {name} {os.environ['ALTOSTRAT_ATTEMPT']} {os.environ['CUDA_VISIBLE_DEVICES']} {time.time()!r}\\n\"\n"
       "    fd = os.open(marks, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)\n"
       "    os.write(fd, line.encode())\n"
       "    os.close(fd)\n"
       "note('begin')\n"
       "if secs == 'gate':\n"
       "    give_up = time.time() + 180\n"
       "    while not os.path.exists(marks + '.release') and time.time() < give_up:\n"
       "        time.sleep(0.05)\n"
       "else:\n"
       "    time.sleep(float(secs))\n"
       "note('end')\n")


def objects(marks: Path, rng: random.Random) -> list[dict]:
    meta = lambda kind, name, spec=None: {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name},
                                          **({"spec": spec} if spec else {})}
    out = [meta("Tenant", "t"), meta("Queue", "q", {"tenant": "t"}),
           meta("Pool", "gpus", {"nodes": 1, "gpu": {"model": "T4", "count": GPUS}, "cpu": 64, "memoryGib": 64})]
    for i in range(N_JOBS):
        secs = "gate" if i in GATED else f"{rng.uniform(4.0, 8.0) if i % 8 == 7 else rng.uniform(0.1, 0.5):.3f}"
        out.append(meta("Job", f"job-{i:03d}", {"queue": "q", "resources": {"gpu": 1},
                                                "command": [sys.executable, "-I", "-c", JOB, f"job-{i:03d}", secs,
                                                            str(marks)]}))
    return out


def jobs(server: Server) -> dict[str, dict]:
    r = httpx.get(f"{server.url}/v1/jobs", headers=HEADERS, timeout=10)
    return {j["metadata"]["name"]: j["status"] for j in r.json()["items"]}


def kill(server: Server) -> str:
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(timeout=10)
    return server.output()


def still_running(marks: Path) -> list[int]:
    """Processes whose command line names the marks file: job commands still alive."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            if proc.name.isdigit() and str(marks).encode() in (proc / "cmdline").read_bytes():
                state = (proc / "stat").read_text().rsplit(")", 1)[1].split()[0]
                if state != "Z":
                    pids.append(int(proc.name))
        except OSError:
            continue
    return pids


@pytest.mark.parametrize("backend", ["sqlite", "postgresql"])
def test_kill_9_twice_with_200_jobs_every_job_ends_exactly_once(tmp_path, request, backend):
    rng = random.Random(SEED)
    data, marks = tmp_path / "data", tmp_path / "marks.txt"
    db = db_args(request, backend)
    server = Server(data, *db)
    kills, restarts, outputs = [], [], []
    try:
        r = httpx.post(f"{server.url}/v1/objects:batch", headers=HEADERS, timeout=30,
                       json={"objects": objects(marks, rng)})
        assert r.status_code == 200, r.text
        # first kill: once a random number of jobs are done, with others queued and running
        done_before_kill = rng.randint(20, 120)
        deadline = time.monotonic() + 60
        while True:
            states = [s["state"] for s in jobs(server).values()]
            if states.count("SUCCEEDED") >= done_before_kill or time.monotonic() > deadline:
                break
            time.sleep(0.05)
        time.sleep(rng.uniform(0.0, 0.3))
        kills.append(time.time())
        outputs.append(kill(server))
        assert states.count("RUNNING") >= 1 and states.count("PENDING") >= 1, states
        # second kill: soon after the restart, while adopted tasks still run
        server = Server(data, *db)
        restarts.append(time.time())  # it answers once it has recovered
        time.sleep(rng.uniform(0.2, 0.6))
        kills.append(time.time())
        outputs.append(kill(server))

        server = Server(data, *db)
        restarts.append(time.time())
        Path(f"{marks}.release").touch()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            final = jobs(server)
            if all(s["state"] in TERMINAL for s in final.values()):
                break
            time.sleep(0.1)
        outputs.append(server.stop())
    finally:
        if server.proc.poll() is None:
            server.proc.kill()
    assert not any("Traceback" in out for out in outputs), outputs

    assert len(final) == N_JOBS
    assert {name: s["state"] for name, s in final.items() if s["state"] != "SUCCEEDED"} == {}
    begins, ends = defaultdict(list), defaultdict(list)
    for line in marks.read_text().splitlines():
        what, name, attempt, devices, at = line.split()
        (begins if what == "begin" else ends)[name].append((int(attempt), devices, float(at)))
    adopted = 0
    for name, status in final.items():
        rows = status["tasks"]
        # every attempt recorded, in order; exactly one of them succeeded, the others never ran
        assert [r["attempt"] for r in rows] == list(range(1, status["attempts"] + 1)), (name, rows)
        ok = [r for r in rows if r["state"] == "EXITED" and r["exitCode"] == 0]
        assert len(ok) == 1 and all(r["state"] == "LOST" for r in rows if r is not ok[0]), (name, rows)
        # its command ran once, as that attempt
        assert len(begins[name]) == 1 and len(ends[name]) == 1, (name, begins[name], ends[name])
        assert begins[name][0][0] == ends[name][0][0] == ok[0]["attempt"], name
        # attempts of one job never overlap in time
        spans = [(r["startedAt"], r["endedAt"]) for r in rows if r["startedAt"] is not None]
        assert overlaps(spans) == 1, (name, rows)
        begin, end = begins[name][0][2], ends[name][0][2]
        adopted += any(begin < k and restart < end for k, restart in zip(kills, restarts))
    assert adopted >= len(GATED)  # commands still ran when the server recovered: adopted, not run again

    # the pool's 8 GPUs were never handed out twice, across the kills too
    runs = [(begins[n][0][2], ends[n][0][2], begins[n][0][1]) for n in final]
    assert overlaps([(b, e) for b, e, _ in runs]) <= GPUS
    for i, (b1, e1, d1) in enumerate(runs):
        for b2, e2, d2 in runs[i + 1:]:
            assert not (b1 < e2 and b2 < e1 and d1 == d2), (d1, b1, e1, b2, e2)
    assert still_running(marks) == []
