"""Benchmark: the live service against its digital twin (issue 4, "fidelity").

100 jobs whose run times are known sleeps (0.5-3 s, seeded; every fifth a 2-GPU gang) are
applied at once to a real `altostrat serve` (local executor, a pool of 8 declared GPUs,
`fcfs+best-fit`), and the same jobs are replayed in the simulator from their accepted times
(`altostrat.service.twin`). Figures: the mean-JCT error (target <= 5 %), per-job end-time
error percentiles, whether both started the jobs in the same order, and the service's
submit-to-start latency on the idle pool (the first wave).
"""

from __future__ import annotations

import os
import random
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import percentile, write_result  # noqa: E402

from altostrat.service.client import Client, ClientError  # noqa: E402
from altostrat.service.twin import live_times, mean_jct_error, replay  # noqa: E402

JOBS, GPUS, POLICY = 100, 8, "fcfs+best-fit"
TOKEN = "fidelity-benchmark"


def objects(durations: dict[str, float]) -> list[dict]:
    out = [{"apiVersion": "altostrat/v1", "kind": "Tenant", "metadata": {"name": "bench"}},
           {"apiVersion": "altostrat/v1", "kind": "Queue", "metadata": {"name": "q"},
            "spec": {"tenant": "bench", "quota": {"gpu": 1000}}},
           {"apiVersion": "altostrat/v1", "kind": "Pool", "metadata": {"name": "box"},
            "spec": {"nodes": 1, "gpu": {"model": "T4", "count": GPUS}, "cpu": 64, "memoryGib": 64}}]
    for i, (name, d) in enumerate(durations.items()):
        out.append({"apiVersion": "altostrat/v1", "kind": "Job", "metadata": {"name": name},
                    "spec": {"queue": "q", "command": ["sleep", str(d)], "resources": {"gpu": 1},
                             "tasks": 2 if i % 5 == 4 else 1}})
    return out


def main() -> None:
    rng = random.Random(11)
    durations = {f"job-{i:03d}": round(rng.uniform(0.5, 3.0), 2) for i in range(JOBS)}
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    with tempfile.TemporaryDirectory() as data:
        server = subprocess.Popen([sys.executable, "-m", "altostrat.cli", "serve", "--port", str(port), "--data-dir", data],
                                  env={**os.environ, "ALTOSTRAT_ADMIN_TOKEN": TOKEN}, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        try:
            client = Client(f"http://127.0.0.1:{port}", TOKEN)
            while True:
                try:
                    client.list("pools")
                    break
                except ClientError:
                    time.sleep(0.1)
            objs = objects(durations)
            client.apply(objs, [o["metadata"]["name"] for o in objs])
            while True:
                jobs = client.list("jobs")
                if all(j["status"]["state"] in ("SUCCEEDED", "FAILED", "CANCELLED") for j in jobs):
                    break
                time.sleep(0.2)
            pools = client.list("pools")
        finally:
            server.terminate()
            server.wait(timeout=30)
    failed = [j["metadata"]["name"] for j in jobs if j["status"]["state"] != "SUCCEEDED"]
    if failed:
        sys.exit(f"jobs did not succeed: {failed}")
    live, twin = live_times(jobs), replay(jobs, pools, POLICY, durations)
    t0 = min(j["metadata"]["createdAt"] for j in jobs)
    submitted = {j["metadata"]["name"]: j["metadata"]["createdAt"] - t0 for j in jobs}
    end_error = sorted(abs(live[n][1] - twin[n][1]) for n in live)
    first_wave = [live[n][0] - submitted[n] for n in live if twin[n][0] == submitted[n]]
    figures = {
        "jobs": JOBS,
        "mean_jct_error": mean_jct_error(live, twin, submitted),
        "end_error_p50_s": percentile(end_error, 50),
        "end_error_p99_s": percentile(end_error, 99),
        "same_start_order": float(sorted(live, key=lambda n: live[n][0]) == sorted(twin, key=lambda n: twin[n][0])),
        "idle_submit_to_start_p50_s": percentile(sorted(first_wave), 50),
        "idle_submit_to_start_max_s": max(first_wave),
        "live_makespan_s": max(e for _, e in live.values()),
        "twin_makespan_s": max(e for _, e in twin.values()),
    }
    out = write_result("fidelity", ".venv/bin/python benchmarks/fidelity.py", figures,
                       {"mean_jct_error": {"op": "<=", "value": 0.05}})
    for k, v in out["figures"].items():
        print(f"{k:28} {v:.4f}" if isinstance(v, float) else f"{k:28} {v}")
    print("met:", out["met"])


if __name__ == "__main__":
    main()
