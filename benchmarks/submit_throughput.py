"""Benchmark: job submission throughput of `altostrat serve` on SQLite and on PostgreSQL (issue 4).

For each store, a real server on loopback with no Pool (jobs wait, so only admission is
measured): 2,000 single submissions (`POST /v1/objects`) from 8 concurrent clients, then
20,000 jobs in batches of 500 (`POST /v1/objects:batch`) from the same 8 clients. Each job is
a committed row before its response (write-ahead). Afterwards every job must be listed: none
lost. SQLite is a file in a temporary data dir; PostgreSQL 15 a throw-away server on loopback
with fsync on (tests/pg.py, as the tests start it). Slurm documents about 500 simple jobs/s
sustained: targets >= 500/s single, >= 5,000/s batched, on both. Each store is measured REPEATS
times on a fresh server and database; a figure is the median run's, with the slowest and the
fastest beside it (`_min`, `_max`). The server's CPU time per job (user + system, from /proc)
is reported too: unlike the rates, it hardly depends on what else the machine runs, so it
compares two versions on a busy machine.
"""

from __future__ import annotations

import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(ROOT / "benchmarks"), str(ROOT / "tests")]

from common import start_serve, write_result  # noqa: E402
from pg import Postgres  # noqa: E402

TOKEN = "submit-benchmark"
CLIENTS, SINGLE, BATCHES, BATCH, REPEATS = 8, 2000, 40, 500, 3


def job(name: str) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"queue": "q", "command": ["true"], "resources": {"gpu": 1}}}


def cpu_s(pid: int) -> float:
    """CPU seconds (user + system) a process has used, its threads included."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def timed(fn, items, pid: int) -> tuple[float, float]:
    """(wall seconds, server CPU seconds) of fn over items from CLIENTS threads."""
    t, cpu = time.perf_counter(), cpu_s(pid)
    with ThreadPoolExecutor(CLIENTS) as pool:
        list(pool.map(fn, items))
    return time.perf_counter() - t, cpu_s(pid) - cpu


def measure(db: str | None) -> dict[str, float]:
    """Single and batched submissions to a server on `db` (None: SQLite in its data dir)."""
    headers = {"Authorization": f"Bearer {TOKEN}"}
    with tempfile.TemporaryDirectory() as data:
        server, url, _ = start_serve(data, TOKEN, extra=("--db", db) if db else ())
        try:
            clients = [httpx.Client(base_url=url, headers=headers, timeout=300) for _ in range(CLIENTS)]
            setup = [{"apiVersion": "altostrat/v1", "kind": "Tenant", "metadata": {"name": "bench"}},
                     {"apiVersion": "altostrat/v1", "kind": "Queue", "metadata": {"name": "q"}, "spec": {"tenant": "bench"}}]
            clients[0].post("/v1/objects:batch", json={"objects": setup}).raise_for_status()

            def single(i: int) -> None:
                clients[i % CLIENTS].post("/v1/objects", json=job(f"s-{i}")).raise_for_status()

            def batch(b: int) -> None:
                body = {"objects": [job(f"b-{b}-{k}") for k in range(BATCH)]}
                clients[b % CLIENTS].post("/v1/objects:batch", json=body).raise_for_status()

            single_s, single_cpu = timed(single, range(SINGLE), server.pid)
            batch_s, batch_cpu = timed(batch, range(BATCHES), server.pid)
            listed = len(clients[0].get("/v1/jobs").json()["items"])
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {"single_jobs_per_s": SINGLE / single_s, "batched_jobs_per_s": BATCHES * BATCH / batch_s,
            "single_server_cpu_ms_per_job": single_cpu / SINGLE * 1000,
            "batched_server_cpu_ms_per_job": batch_cpu / (BATCHES * BATCH) * 1000,
            "jobs_lost": SINGLE + BATCHES * BATCH - listed}


def repeated(db: str, database: Callable[[], str | None]) -> dict[str, float]:
    """Median, slowest and fastest of REPEATS measurements, each on a fresh database, prefixed `db_`."""
    runs = [measure(database()) for _ in range(REPEATS)]
    out = {}
    for figure in runs[0]:
        values = sorted(run[figure] for run in runs)
        out[f"{db}_{figure}"] = statistics.median(values)
        if figure.endswith("_per_s"):
            out[f"{db}_{figure}_min"], out[f"{db}_{figure}_max"] = values[0], values[-1]
    out[f"{db}_jobs_lost"] = max(run["jobs_lost"] for run in runs)
    return out


def main() -> None:
    figures: dict[str, float] = {"single_jobs": SINGLE, "batched_jobs": BATCHES * BATCH, "clients": CLIENTS,
                                 "repeats": REPEATS}
    figures.update(repeated("sqlite", lambda: None))
    postgres = Postgres().start()
    try:
        figures.update(repeated("postgresql", postgres.create_database))
    finally:
        postgres.stop()
    targets = {f"{db}_{figure}": {"op": op, "value": value} for db in ("sqlite", "postgresql")
               for figure, op, value in (("single_jobs_per_s", ">=", 500), ("batched_jobs_per_s", ">=", 5000),
                                         ("jobs_lost", "<=", 0))}
    out = write_result("submit_throughput", ".venv/bin/python benchmarks/submit_throughput.py", figures, targets)
    for k, v in out["figures"].items():
        print(f"{k:40} {v:,.1f}" if isinstance(v, float) else f"{k:40} {v}")
    print("met:", out["met"])


if __name__ == "__main__":
    main()
