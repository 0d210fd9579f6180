"""Recovery at start-up, on task rows as a crashed service leaves them, with real processes:
a task still running is adopted with its devices, one that ended is concluded from its exit
file, one without a record is lost (its job runs again, no retry used up), and a preempted
job's leftover task is stopped before the job's next attempt starts."""

from __future__ import annotations

import sys
import time

from altostrat.service import executor as ex
from altostrat.service.objects import parse_object
from altostrat.service.reconciler import Reconciler
from altostrat.service.store import EXITED, PENDING, RUNNING, STARTING, STOPPING, Store

SLEEP = "import time; time.sleep({})"
TRAP = ("import signal, sys, time\nsignal.signal(signal.SIGTERM, lambda *_: sys.exit(0))\n"
        "print('ready', flush=True)\ntime.sleep(30)\n")


def obj(kind: str, name: str, **spec) -> object:
    return parse_object({"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec})


def crashed_run(store: Store, tmp_path, name: str, state: str, row_state: str, code: str | None,
                devices: str = "0", retries: int = 0) -> tuple[int, object]:
    """A job with attempt 1 recorded as a crashed service left it; `code` is run as its task
    (None: never spawned)."""
    with store.tx() as conn:
        store.apply(conn, obj("Job", name, queue="q", command=[sys.executable, "-c", "pass"], resources={"gpu": 1},
                              retries=retries))
        job_id = store._row(conn, "Job", name)["id"]
        store.update_job(conn, job_id, state, attempts=1, startedAt=time.time())
        log = ex.log_path(tmp_path, name, job_id, 1, 0)
        log.parent.mkdir(parents=True, exist_ok=True)
        proc = pid = start = None
        if code is not None:
            proc = ex.spawn([sys.executable, "-c", code], ex.task_env({}, {}), tmp_path, 0, log)
            pid, start = proc.pid, ex.proc_start(proc.pid)
            ex.release(proc)
        store.add_tasks(conn, [dict(job_id=job_id, attempt=1, task=0, state=row_state, node="gpus/0", devices=devices,
                                    log_path=str(log), pid=pid, proc_start=start,
                                    started_at=None if code is None else time.time())])
    return job_id, proc


def test_recover_adopts_concludes_and_loses(store, tmp_path):
    with store.tx() as conn:
        store.apply(conn, obj("Tenant", "t"))
        store.apply(conn, obj("Queue", "q", tenant="t"))
        store.apply(conn, obj("Pool", "gpus", nodes=1, gpu={"model": "T4", "count": 4}, cpu=8, memoryGib=16))
    running, p1 = crashed_run(store, tmp_path, "running", RUNNING, RUNNING, SLEEP.format(1.0), devices="2")
    done, p2 = crashed_run(store, tmp_path, "done", RUNNING, RUNNING, "pass", devices="1")
    failed, p3 = crashed_run(store, tmp_path, "failed", RUNNING, RUNNING, "import sys; sys.exit(3)", devices="3")
    lost, _ = crashed_run(store, tmp_path, "lost", RUNNING, STARTING, None, retries=1)
    preempted, p5 = crashed_run(store, tmp_path, "preempted", PENDING, STOPPING, TRAP, devices="0")
    for p in (p2, p3):
        p.wait(timeout=20)  # ended while no service ran, their wrappers' exit files written
    log = ex.log_path(tmp_path, "preempted", preempted, 1, 0)
    deadline = time.monotonic() + 20
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)  # its checkpoint signal must find its handler in place

    rec = Reconciler(store, "fcfs+best-fit", tmp_path, grace_s=5)
    rec.recover()
    with store.tx() as conn:
        jobs = {j["name"]: j for j in store.jobs(conn, ("PENDING", "RUNNING", "SUCCEEDED", "FAILED"))}
        rows = {j: store.attempt_tasks(conn, jobs[j]["id"], 1)[0] for j in jobs}
    assert jobs["done"]["state"] == "SUCCEEDED" and rows["done"]["state"] == EXITED and rows["done"]["exit_code"] == 0
    assert jobs["failed"]["state"] == "FAILED" and rows["failed"]["exit_code"] == 3
    assert jobs["failed"]["status"]["reason"] == "task 0 exited with code 3 (attempt 1, 0 retries allowed)"
    assert rows["lost"]["state"] == "LOST" and jobs["lost"]["state"] == PENDING
    assert "failures" not in jobs["lost"]["status"]
    assert jobs["lost"]["status"]["reason"].startswith("attempt 1 was lost (task(s) 0 ended with no exit status")
    rec.sync()  # builds the engine: it adopts the running job and places the pending ones
    with store.tx() as conn:
        rows = {j: store.attempt_tasks(conn, jobs[j]["id"], 1)[0] for j in jobs}
        jobs = {j["name"]: j for j in store.jobs(conn, ("PENDING", "RUNNING", "SUCCEEDED", "FAILED"))}
    # adopted: still RUNNING on exactly its recorded device, a process of this service's to reap
    assert jobs["running"]["state"] == "RUNNING" and rows["running"]["state"] == RUNNING
    assert rec.engine.running[running].alloc == ((0, (2,)),)
    assert {t.job_id for t in rec.tasks.values()} == {running, preempted}
    # the preempted job's leftover got its checkpoint signal again; its next attempt waits for it
    assert rows["preempted"]["state"] == STOPPING
    # both pending jobs are placed at once, but neither runs before the leftover task exits
    assert {rec.live[preempted].attempt, rec.live[lost].attempt} == {2}
    deadline = time.monotonic() + 20
    while rec.tasks and time.monotonic() < deadline:
        rec._reap()
        time.sleep(0.02)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        rec._reap()
        with store.tx() as conn:
            states = {j["name"]: j["state"] for j in store.jobs(conn, ("PENDING", "RUNNING", "SUCCEEDED", "FAILED"))}
        if states == {"running": "SUCCEEDED", "done": "SUCCEEDED", "failed": "FAILED", "lost": "SUCCEEDED",
                      "preempted": "SUCCEEDED"}:
            break
        time.sleep(0.02)
    with store.tx() as conn:
        by_name = {j["metadata"]["name"]: j["status"] for j in store.list(conn, "Job")}
    assert states["running"] == "SUCCEEDED" and by_name["running"]["attempts"] == 1
    assert [(t["attempt"], t["state"], t["exitCode"]) for t in by_name["preempted"]["tasks"]] == [
        (1, "STOPPED", 0), (2, "EXITED", 0)]
    assert by_name["preempted"]["tasks"][1]["startedAt"] >= by_name["preempted"]["tasks"][0]["endedAt"]
    assert [(t["attempt"], t["state"]) for t in by_name["lost"]["tasks"]] == [(1, "LOST"), (2, "EXITED")]
    assert "failures" not in by_name["lost"]
    for p in (p1, p5):
        p.wait(timeout=20)
