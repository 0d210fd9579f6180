"""Benchmark 1: simulator throughput on the full Philly trace.

Runs the real simulator (engine, indexes, event log, metrics) with `fcfs+best-fit` and
`las+consolidate` on ../shared/data/traces/philly/philly.csv and the philly-like cluster,
and, side by side in the same process, a bare FCFS event loop over the same jobs that
only counts free GPUs (no nodes, no policies, no log): the floor that DESIGN.md quotes
(~190,000 jobs/s). The ratio bare / ours is the price of the abstractions.
"""

from __future__ import annotations

import argparse
import heapq
import sys
import time
from pathlib import Path

from common import ROOT, write_result

from altostrat.cluster.build import load_cluster
from altostrat.metrics.compute import compute_metrics
from altostrat.policy.registry import parse_policy
from altostrat.sim.simulator import simulate
from altostrat.workload.sources import WorkloadContext, load_workload

NAME = "sim_throughput"
POLICIES = ("fcfs+best-fit", "las+consolidate")
DEFAULT_TRACE = ROOT.parent / "shared" / "data" / "traces" / "philly" / "philly.csv"


def bare_fcfs(jobs, capacity: int) -> int:
    """Strict FCFS over a pool of `capacity` GPUs; returns events processed."""
    free = capacity
    heap: list[tuple[float, int]] = []
    queue: list[int] = []
    head = 0
    events = 0
    i, n = 0, len(jobs)
    while i < n or heap:
        if heap and (i >= n or heap[0][0] <= jobs[i].submit):
            now, gpus = heapq.heappop(heap)
            free += gpus
        else:
            now = jobs[i].submit
            queue.append(i)
            i += 1
        events += 1
        while head < len(queue):
            job = jobs[queue[head]]
            if job.tasks > free:
                break
            free -= job.tasks
            heapq.heappush(heap, (now + job.duration, job.tasks))
            head += 1
    return events


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--repeat", type=int, default=3, help="runs per variant; the best is kept")
    args = parser.parse_args(argv)

    jobs = load_workload(f"philly:{args.trace}", WorkloadContext())
    figures: dict[str, float] = {"jobs": len(jobs)}
    _, probe = load_cluster("philly-like")
    capacity = probe.gpu_capacity_milli // 1000

    best = float("inf")
    for _ in range(args.repeat):
        t0 = time.perf_counter()
        events = bare_fcfs(jobs, capacity)
        best = min(best, time.perf_counter() - t0)
    figures["bare_fcfs_jobs_per_s"] = len(jobs) / best
    figures["bare_fcfs_events"] = events

    for name in POLICIES:
        key = name.replace("+", "_").replace("-", "_")
        best_wall = float("inf")
        for _ in range(args.repeat):
            _, state = load_cluster("philly-like")
            result = simulate(jobs, state, parse_policy(name))
            if result.wall_s < best_wall:
                best_wall, best_result = result.wall_s, result
        t0 = time.perf_counter()
        metrics = compute_metrics(best_result)
        figures[f"{key}_metrics_s"] = time.perf_counter() - t0
        figures[f"{key}_jobs_per_s"] = len(jobs) / best_wall
        figures[f"{key}_events_per_s"] = best_result.events / best_wall
        figures[f"{key}_wall_s"] = best_wall
        figures[f"{key}_jobs_completed"] = metrics["jobs_completed"]
        figures[f"{key}_bare_over_ours"] = figures["bare_fcfs_jobs_per_s"] / figures[f"{key}_jobs_per_s"]

    command = "python benchmarks/sim_throughput.py" + ("" if args.trace == DEFAULT_TRACE else f" --trace {args.trace}")
    targets = {"fcfs_best_fit_jobs_per_s": {"op": ">=", "value": 20_000}}
    return write_result(NAME, command, figures, targets)


if __name__ == "__main__":
    result = main()
    print(result)
    sys.exit(0)
