"""Benchmark: job submission throughput of `altostrat serve` on SQLite and on PostgreSQL (issue 4).

For each store, a real server on loopback with no Pool (jobs wait, so only admission is
measured): 2,000 single submissions (`POST /v1/objects`) from 8 concurrent clients, then
20,000 jobs in batches of 500 (`POST /v1/objects:batch`) from the same 8 clients. Each job is
a committed row before its response (write-ahead). Afterwards every job must be listed: none
lost. SQLite is a file in a temporary data dir; PostgreSQL 15 a throw-away server on loopback
with fsync on (tests/pg.py, as the tests start it). Slurm documents about 500 simple jobs/s
sustained: targets >= 500/s single, >= 5,000/s batched, on both.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from common import write_result  # noqa: E402
from pg import Postgres  # noqa: E402

TOKEN = "submit-benchmark"
CLIENTS, SINGLE, BATCHES, BATCH = 8, 2000, 40, 500


def job(name: str) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"queue": "q", "command": ["true"], "resources": {"gpu": 1}}}


def timed(fn, items) -> float:
    t = time.perf_counter()
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(fn, items))
    return time.perf_counter() - t


def measure(db: str | None) -> dict[str, float]:
    """Single and batched submissions to a server on `db` (None: SQLite in its data dir)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen([sys.executable, "-m", "altostrat.cli", "serve", "--port", str(port),
                                   "--data-dir", data, *(("--db", db) if db else ())],
                                  env={**os.environ, "ALTOSTRAT_ADMIN_TOKEN": TOKEN}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    if server.poll() is not None:
                        raise SystemExit(f"the server on {db or 'SQLite'} exited with {server.returncode}")
                    time.sleep(0.1)
            clients = [httpx.Client(base_url=url, headers=headers, timeout=300) for _ in range(CLIENTS)]
            setup = [{"apiVersion": "altostrat/v1", "kind": "Tenant", "metadata": {"name": "bench"}},
                     {"apiVersion": "altostrat/v1", "kind": "Queue", "metadata": {"name": "q"}, "spec": {"tenant": "bench"}}]
            clients[0].post("/v1/objects:batch", json={"objects": setup}).raise_for_status()

            def single(i: int) -> None:
                clients[i % CLIENTS].post("/v1/objects", json=job(f"s-{i}")).raise_for_status()

            def batch(b: int) -> None:
                body = {"objects": [job(f"b-{b}-{k}") for k in range(BATCH)]}
                clients[b % CLIENTS].post("/v1/objects:batch", json=body).raise_for_status()

            single_s = timed(single, range(SINGLE))
            batch_s = timed(batch, range(BATCHES))
            listed = len(clients[0].get("/v1/jobs").json()["items"])
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {"single_jobs_per_s": SINGLE / single_s, "batched_jobs_per_s": BATCHES * BATCH / batch_s,
            "jobs_lost": SINGLE + BATCHES * BATCH - listed}


def main() -> None:
    figures: dict[str, float] = {"single_jobs": SINGLE, "batched_jobs": BATCHES * BATCH, "clients": CLIENTS}
    figures.update({f"sqlite_{k}": v for k, v in measure(None).items()})
    postgres = Postgres().start()
    try:
        figures.update({f"postgresql_{k}": v for k, v in measure(postgres.create_database()).items()})
    finally:
        postgres.stop()
    targets = {f"{db}_{figure}": {"op": op, "value": value} for db in ("sqlite", "postgresql")
               for figure, op, value in (("single_jobs_per_s", ">=", 500), ("batched_jobs_per_s", ">=", 5000),
                                         ("jobs_lost", "<=", 0))}
    out = write_result("submit_throughput", ".venv/bin/python benchmarks/submit_throughput.py", figures, targets)
    for k, v in out["figures"].items():
        print(f"{k:32} {v:,.1f}" if isinstance(v, float) else f"{k:32} {v}")
    print("met:", out["met"])


if __name__ == "__main__":
    main()
