"""Benchmark: recovery time of `altostrat serve` after `kill -9` with 2,000 jobs (issue 4).

A real server on loopback, one pool of 16 declared GPUs, 2,000 one-GPU jobs applied in four
batches: the first 8 sleep 90 s (still running at the kill, so the restart must adopt them),
the others end at once. Once 50 jobs have succeeded (the rest queued, a few starting or just
ended) the server is killed with SIGKILL and started again on the same data. Figures:

- `restart_to_healthz_s`: from the new process's spawn to the first 200 of /healthz (Python's
  start-up and imports, migrations, recovery, first scheduling pass: serve answers only after
  the reconciler has recovered);
- `recovery_s`: the reconciler's own part, `altostrat_recovery_seconds` from /metrics:
  settling the tasks the killed run left, adopting the live ones, and its first scheduling pass
  over the 2,000 jobs;
- `adopted_jobs`: the long jobs found running on their first attempt after the restart.

Then every job runs to its end, and each run of a command appends its job's name to one file:
none may be missing (lost) or appear twice (run twice), and every job must end SUCCEEDED.
"""

from __future__ import annotations

import os
import signal
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import start_serve, write_result  # noqa: E402

TOKEN = "recovery-benchmark"
JOBS, LONG, GPUS, DONE_BEFORE_KILL = 2000, 8, 16, 50


def metric(client: httpx.Client, name: str) -> float:
    for line in client.get("/metrics").text.splitlines():
        if line.startswith(name + " "):
            return float(line.split()[1])
    raise KeyError(name)


def states(client: httpx.Client) -> dict[str, dict]:
    return {j["metadata"]["name"]: j["status"] for j in client.get("/v1/jobs").json()["items"]}


def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        marks = Path(data) / "runs.txt"
        meta = lambda kind, name, spec=None: {"apiVersion": "altostrat/v1", "kind": kind,  # noqa: E731
                                              "metadata": {"name": name}, **({"spec": spec} if spec else {})}
        # `>>` appends with O_APPEND: one short line per run, never mixed with another's
        jobs = [meta("Job", f"job-{i:04d}", {"queue": "q", "resources": {"gpu": 1}, "command": [
            "sh", "-c", f'echo "$ALTOSTRAT_JOB" >> "$0"; sleep {90 if i < LONG else 0}', str(marks)]})
            for i in range(JOBS)]
        server, url, _ = start_serve(data, TOKEN)
        port = int(url.rsplit(":", 1)[1])
        try:
            client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=120)
            client.post("/v1/objects:batch", json={"objects": [
                meta("Tenant", "t"), meta("Queue", "q", {"tenant": "t"}),
                meta("Pool", "gpus", {"nodes": 1, "gpu": {"model": "T4", "count": GPUS}, "cpu": 64, "memoryGib": 64}),
            ]}).raise_for_status()
            for k in range(0, JOBS, 500):
                client.post("/v1/objects:batch", json={"objects": jobs[k:k + 500]}).raise_for_status()
            while sum(s["state"] == "SUCCEEDED" for s in states(client).values()) < DONE_BEFORE_KILL:
                time.sleep(0.05)
            before = states(client)
            server.send_signal(signal.SIGKILL)
            server.wait(timeout=30)

            server, url, restart_s = start_serve(data, TOKEN, port)
            recovery_s = metric(client, "altostrat_recovery_seconds")
            after = states(client)
            adopted = sum(after[f"job-{i:04d}"]["state"] == "RUNNING" and after[f"job-{i:04d}"]["attempts"] == 1
                          for i in range(LONG))
            drain_t = time.perf_counter()
            while True:
                final = states(client)
                if all(s["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") for s in final.values()):
                    break
                time.sleep(0.5)
            drain_s = time.perf_counter() - drain_t
        finally:
            server.terminate()
            server.wait(timeout=60)
        runs = Counter(marks.read_text().split())
    names = [j["metadata"]["name"] for j in jobs]
    figures = {
        "jobs": JOBS,
        "pending_at_kill": sum(s["state"] == "PENDING" for s in before.values()),
        "running_at_kill": sum(s["state"] == "RUNNING" for s in before.values()),
        "restart_to_healthz_s": restart_s,
        "recovery_s": recovery_s,
        "adopted_jobs": adopted,
        "drain_after_restart_s": drain_s,
        "jobs_listed_after": len(final),
        "jobs_not_succeeded": sum(final.get(n, {}).get("state") != "SUCCEEDED" for n in names),
        "jobs_lost": sum(runs[n] == 0 for n in names),
        "jobs_run_twice": sum(runs[n] > 1 for n in names),
        "cpus": os.cpu_count(),
    }
    out = write_result("recovery_time", ".venv/bin/python benchmarks/recovery_time.py", figures,
                       {"jobs_lost": {"op": "<=", "value": 0}, "jobs_run_twice": {"op": "<=", "value": 0},
                        "jobs_not_succeeded": {"op": "<=", "value": 0}, "adopted_jobs": {"op": ">=", "value": LONG}})
    for k, v in out["figures"].items():
        print(f"{k:24} {v:,.2f}" if isinstance(v, float) else f"{k:24} {v}")
    print("met:", out["met"])


if __name__ == "__main__":
    main()
