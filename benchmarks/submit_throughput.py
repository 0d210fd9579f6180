"""Benchmark: job submission throughput of `altostrat serve` on SQLite (issue 4).

A real server on loopback with no Pool (jobs wait, so only admission is measured): 2,000
single submissions (`POST /v1/objects`) from 8 concurrent clients, then 20,000 jobs in
batches of 500 (`POST /v1/objects:batch`) from the same 8 clients. Each job is a committed
row before its response (write-ahead). Afterwards every job must be listed: none lost.
Slurm documents about 500 simple jobs/s sustained: targets >= 500/s single, >= 5,000/s batched.
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import write_result  # noqa: E402

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


def main() -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}"
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen([sys.executable, "-m", "altostrat.cli", "serve", "--port", str(port), "--data-dir", data],
                                  env={**os.environ, "ALTOSTRAT_ADMIN_TOKEN": TOKEN}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            while True:
                try:
                    httpx.get(f"{url}/healthz", timeout=1)
                    break
                except httpx.TransportError:
                    time.sleep(0.1)
            clients = [httpx.Client(base_url=url, headers=headers, timeout=60) for _ in range(CLIENTS)]
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
    figures = {
        "single_jobs": SINGLE,
        "single_jobs_per_s": SINGLE / single_s,
        "batched_jobs": BATCHES * BATCH,
        "batched_jobs_per_s": BATCHES * BATCH / batch_s,
        "clients": CLIENTS,
        "jobs_listed_after": listed,
        "jobs_lost": SINGLE + BATCHES * BATCH - listed,
    }
    out = write_result("submit_throughput", ".venv/bin/python benchmarks/submit_throughput.py", figures,
                       {"single_jobs_per_s": {"op": ">=", "value": 500}, "batched_jobs_per_s": {"op": ">=", "value": 5000},
                        "jobs_lost": {"op": "<=", "value": 0}})
    for k, v in out["figures"].items():
        print(f"{k:22} {v:,.1f}" if isinstance(v, float) else f"{k:22} {v}")
    print("met:", out["met"])


if __name__ == "__main__":
    main()
