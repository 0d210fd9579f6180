"""Benchmark: submit-to-start latency of `altostrat serve` on an idle pool (issue 4).

A real server on loopback with one idle GPU; 50 jobs submitted one after another, each once
the previous one has ended, so the pool is idle at every submission. Each job's command
writes the wall time it starts at (`date +%s.%N`, the clock time.time() reads) to a file; the
latency is that time minus the moment the submit call returned. It covers the reconciler's
wake-up and sync, the engine's decision, two commits (the attempt, then the task's pid) and
the start of the task wrapper that crash safety needs before the command runs.
"""

from __future__ import annotations

import sys
import tempfile
import time
from pathlib import Path

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import percentile, start_serve, write_result  # noqa: E402

TOKEN = "latency-benchmark"
JOBS = 50


def main() -> None:
    with tempfile.TemporaryDirectory() as data:
        server, url, _ = start_serve(data, TOKEN)
        try:
            client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {TOKEN}"}, timeout=30)
            meta = lambda kind, name, spec=None: {"apiVersion": "altostrat/v1", "kind": kind,  # noqa: E731
                                                  "metadata": {"name": name}, **({"spec": spec} if spec else {})}
            client.post("/v1/objects:batch", json={"objects": [
                meta("Tenant", "t"), meta("Queue", "q", {"tenant": "t"}),
                meta("Pool", "idle", {"nodes": 1, "gpu": {"model": "T4", "count": 1}, "cpu": 4, "memoryGib": 4}),
            ]}).raise_for_status()
            latencies = []
            for i in range(JOBS):
                mark = Path(data) / f"start-{i}"
                job = meta("Job", f"lat-{i}", {"queue": "q", "resources": {"gpu": 1},
                                               "command": ["sh", "-c", 'date +%s.%N > "$0"', str(mark)]})
                client.post("/v1/objects", json=job).raise_for_status()
                returned = time.time()
                while client.get(f"/v1/jobs/lat-{i}").json()["status"]["state"] != "SUCCEEDED":
                    time.sleep(0.01)  # the pool is idle again before the next submission
                latencies.append(float(mark.read_text()) - returned)
        finally:
            server.terminate()
            server.wait(timeout=60)
    latencies.sort()
    ms = [x * 1000 for x in latencies]
    figures = {"jobs": JOBS, "submit_to_start_p50_ms": percentile(ms, 50), "submit_to_start_p95_ms": percentile(ms, 95),
               "submit_to_start_max_ms": ms[-1], "submit_to_start_min_ms": ms[0]}
    # the issue sets no target for this figure; it is recorded for comparison
    out = write_result("submit_latency", ".venv/bin/python benchmarks/submit_latency.py", figures, {})
    for k, v in out["figures"].items():
        print(f"{k:24} {v:,.1f}" if isinstance(v, float) else f"{k:24} {v}")


if __name__ == "__main__":
    main()
