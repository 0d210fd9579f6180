"""Benchmark 3: scheduling quality of every order policy on the full Philly trace.

Each registered order runs with best-fit placement on the philly-like cluster, with and
without EASY backfilling; avg and p99 JCT, avg wait and GPU utilization are reported as
ratios to fcfs measured in the same run (same inputs, same machine). Philly has no
priorities or deadlines, so `priority` and `edf` reduce to fcfs there: their ratios of 1.0
are a check, not a finding.
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

from common import ROOT, write_result

from altostrat.policy.registry import pieces
from altostrat.sim.run import RunRequest, run

NAME = "policy_quality"
DEFAULT_TRACE = ROOT.parent / "shared" / "data" / "traces" / "philly" / "philly.csv"
METRICS = ("avg_jct_s", "p99_jct_s", "avg_wait_s", "gpu_utilization")


def one(req: RunRequest) -> dict:
    return run(req)[0]


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--trace", type=Path, default=DEFAULT_TRACE)
    parser.add_argument("--workers", type=int, default=2)
    args = parser.parse_args(argv)

    import altostrat.policy  # noqa: F401  (registers the built-in pieces)

    orders = list(pieces("order"))
    policies = [f"{o}+best-fit{suffix}" for suffix in ("", "+backfill") for o in orders]
    requests = [RunRequest(f"philly:{args.trace}", "philly-like", p) for p in policies]
    with ProcessPoolExecutor(max_workers=args.workers) as pool:
        results = dict(zip(policies, pool.map(one, requests)))

    figures: dict[str, float] = {}
    for policy, out in results.items():
        base = results["fcfs+best-fit+backfill" if policy.endswith("+backfill") else "fcfs+best-fit"]["metrics"]
        key = policy.replace("+best-fit", "").replace("+", "_").replace("-", "_")
        m = out["metrics"]
        for metric in METRICS:
            figures[f"{key}_{metric}"] = m[metric]
            figures[f"{key}_{metric}_vs_fcfs"] = m[metric] / base[metric] if base[metric] else None
        figures[f"{key}_preemptions"] = m["preemptions"]
        figures[f"{key}_jain_fairness"] = m["jain_fairness"]
        figures[f"{key}_wall_s"] = out["run"]["wall_s"]
    command = "python benchmarks/policy_quality.py"
    targets = {"las_avg_jct_s_vs_fcfs": {"op": "<=", "value": 1.0}}
    return write_result(NAME, command, figures, targets)


if __name__ == "__main__":
    print(json.dumps(main()["figures"], indent=2))
