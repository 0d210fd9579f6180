"""Benchmark 2: carbon saved by temporal shifting (`carbon-shift`) at 0, 6 and 24 h of slack.

Per grid zone with hourly data, a one-pool cluster in a cloud region of that zone and a
generated workload of deadline jobs (1-8 h, 1-8 GPUs, Poisson arrivals over four weeks,
deadline = submit + duration + slack), replayed in four seasons of 2023 with
`edf+best-fit+backfill+carbon-shift[forecaster=F]`. Figures per zone: carbon_kgco2e and the
part the jobs add above the idle cluster (`job_kgco2e`), their saving vs slack 0, and deadline
misses, with the `persistence` and `blend` forecasts and the `oracle` (true future, the upper
bound). Every run of a season has the same window (the metrics `until`), so the idle draw is
the same and the savings come from the hours the jobs ran in.

It also measures the forecasters' accuracy on the zones' 2023 series: MAE and MAPE of the
forecasts made at every hour for the next 1-24 hours.
"""

from __future__ import annotations

import argparse
import json
import random
import tempfile
import time
from pathlib import Path

import numpy as np
from common import ROOT, write_result

from altostrat.catalog.carbon import CarbonModel, parse_start
from altostrat.catalog.carbon_forecast import forecast
from altostrat.cluster.build import load_cluster
from altostrat.engine import PolicyContext
from altostrat.metrics.compute import compute_metrics
from altostrat.metrics.energy import carbon_kg
from altostrat.policy.registry import parse_policy
from altostrat.sim.eventlog import FINISH
from altostrat.sim.simulator import simulate
from altostrat.workload.job import Job, number_jobs

NAME = "carbon_shift"
DEFAULT_DIR = ROOT.parent / "shared" / "data" / "carbon" / "hourly"
# zone -> a cloud region of it (catalog/carbon.py REGION_ZONE)
ZONES = {"US-CAL-CISO": "us-west-1", "DE": "europe-west3", "GB": "eu-west-2", "JP-TK": "ap-northeast-1",
         "AU-NSW": "australia-southeast1"}
SEASONS = ("2023-01-09T00:00Z", "2023-04-03T00:00Z", "2023-07-03T00:00Z", "2023-10-02T00:00Z")  # Mondays
SLACKS_H = (0, 6, 24)
FORECASTERS = ("persistence", "blend", "oracle")
H = 3600.0
DAYS = 28
NODES, GPUS = 8, 8  # 64 H100s
LOAD = 0.3  # offered GPU load: low enough that edf meets every deadline at slack 0
SIZES = ((1, 0.4), (2, 0.3), (4, 0.2), (8, 0.1))


def workload(seed: int) -> list[tuple[float, float, int]]:
    """(submit s, duration s, GPUs) of Poisson arrivals over DAYS days, the first at 0."""
    rng = random.Random(seed)
    mean_gpu_h = 4.5 * sum(g * p for g, p in SIZES)
    rate = LOAD * NODES * GPUS / mean_gpu_h / H  # jobs per second
    out, t = [], 0.0
    while t < DAYS * 24 * H:
        gpus = rng.choices([g for g, _ in SIZES], [p for _, p in SIZES])[0]
        out.append((t, rng.uniform(1, 8) * H, gpus))
        t += rng.expovariate(rate)
    return out


def jobs_with_slack(specs, slack_h: float) -> list[Job]:
    return number_jobs([Job(f"j{i}", s, d, tasks=g, cpu_milli=4000, mem_mib=32768, deadline=s + d + slack_h * H)
                        for i, (s, d, g) in enumerate(specs)])


def late(result) -> int:
    log = result.log
    done = {j: t for t, k, j in zip(log.time, log.kind, log.job) if k == FINISH}
    return sum(1 for j in result.jobs if done.get(j.idx, float("inf")) > j.deadline)


def simulate_one(cluster: str, specs, slack_h: float, policy: str, model: CarbonModel, until: float):
    state = load_cluster(cluster)[1]
    result = simulate(jobs_with_slack(specs, slack_h), state, parse_policy(policy), until=until,
                      context=PolicyContext(carbon=model))
    return compute_metrics(result, model)["carbon_kgco2e"], late(result)


def idle_kg(cluster: str, model: CarbonModel, until: float) -> float:
    """The cluster's carbon with nothing running over the same window: what no schedule changes."""
    result = simulate([], load_cluster(cluster)[1], parse_policy("fcfs"), until=until)
    return carbon_kg(result, 0.0, until, model)


def accuracy(directory: Path, zone_region: dict[str, str], year: int = 2023, horizon: int = 24) -> dict[str, float]:
    """MAE (gCO2e/kWh) and MAPE (%) of each forecaster at every hour of `year`, for the next `horizon` hours."""
    out = {}
    h0 = int(parse_start(f"{year}-01-01T00:00Z")) // 3600
    h1 = int(parse_start(f"{year + 1}-01-01T00:00Z")) // 3600
    for zone, region in zone_region.items():
        series = CarbonModel(hourly_dir=str(directory)).series(region)
        end = min(h1, series.first_hour + len(series.values) - horizon - 1)
        truth = np.stack([series.values[d + 1 - series.first_hour:d + 1 + horizon - series.first_hour]
                          for d in range(h0, end)])
        for method in ("persistence", "blend"):
            pred = np.stack([forecast(series, d, horizon + 1, method)[1:] for d in range(h0, end)])
            err = np.abs(pred - truth)
            out[f"{zone}_{method}_mae"] = float(err.mean())
            out[f"{zone}_{method}_mape_pct"] = float(100 * (err / np.maximum(truth, 1.0)).mean())
    for method in ("persistence", "blend"):
        out[f"mean_{method}_mae"] = float(np.mean([out[f"{z}_{method}_mae"] for z in zone_region]))
        out[f"mean_{method}_mape_pct"] = float(np.mean([out[f"{z}_{method}_mape_pct"] for z in zone_region]))
    return out


def main(argv=None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--dir", type=Path, default=DEFAULT_DIR)
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args(argv)
    wall0 = time.perf_counter()

    figures = accuracy(args.dir, ZONES)
    until = (DAYS + 2) * 24 * H  # every job done: arrivals end by day 28, delays are <= 24 h, runs <= 8 h
    misses = {"baseline": 0, "shifted": 0}
    judged = {"baseline": 0, "shifted": 0}  # job runs whose deadline was judged
    with tempfile.TemporaryDirectory() as tmp:
        for zone, region in ZONES.items():
            cluster = Path(tmp) / f"{zone}.yaml"
            cluster.write_text("apiVersion: altostrat/v1\nkind: Cluster\nmetadata: {name: " + zone + "}\nspec:\n"
                               f"  pools:\n    - {{name: h100, nodes: {NODES}, gpu: {{model: H100, count: {GPUS}}}, "
                               f"cpu: 128, memoryGib: 1024, region: {region}}}\n")
            total: dict[tuple, float] = {}
            idle = 0.0
            for s, start in enumerate(SEASONS):
                model = CarbonModel(start, str(args.dir))
                specs = workload(args.seed + s)
                idle += idle_kg(str(cluster), model, until)
                for slack in SLACKS_H:
                    for f in FORECASTERS if slack else ("none",):
                        policy = "edf+best-fit+backfill" + (f"+carbon-shift[forecaster={f}]" if slack else "")
                        kg, missed = simulate_one(str(cluster), specs, slack, policy, model, until)
                        total[slack, f] = total.get((slack, f), 0.0) + kg
                        misses["shifted" if slack else "baseline"] += missed
                        judged["shifted" if slack else "baseline"] += len(specs)
                        figures[f"{zone}_slack{slack}_{f}_deadline_misses"] = (
                            figures.get(f"{zone}_slack{slack}_{f}_deadline_misses", 0) + missed)
            base = total[0, "none"]
            figures[f"{zone}_slack0_kgco2e"] = base
            figures[f"{zone}_idle_kgco2e"] = idle
            for slack in SLACKS_H[1:]:
                for f in FORECASTERS:
                    kg = total[slack, f]
                    figures[f"{zone}_slack{slack}_{f}_kgco2e"] = kg
                    figures[f"{zone}_slack{slack}_{f}_saving_pct"] = 100 * (1 - kg / base)
                    figures[f"{zone}_slack{slack}_{f}_job_saving_pct"] = 100 * (1 - (kg - idle) / (base - idle))
    for slack in SLACKS_H[1:]:
        for f in FORECASTERS:
            figures[f"mean_slack{slack}_{f}_job_saving_pct"] = float(
                np.mean([figures[f"{z}_slack{slack}_{f}_job_saving_pct"] for z in ZONES]))
    figures["zones"] = len(ZONES)
    figures["deadline_misses_baseline"] = misses["baseline"]
    figures["deadline_misses_shifted"] = misses["shifted"]
    figures["job_runs_baseline"] = judged["baseline"]
    figures["job_runs_shifted"] = judged["shifted"]
    figures["blend_over_persistence_mae"] = figures["mean_blend_mae"] / figures["mean_persistence_mae"]
    figures["wall_s"] = time.perf_counter() - wall0
    command = "python benchmarks/carbon_shift.py" + ("" if args.seed == 1 else f" --seed {args.seed}")
    # deadline misses are reported, not targeted: the gate never holds a job past its latest
    # safe start, but a released job may still find the cluster full (docs/economics.md)
    targets = {
        "zones": {"op": ">=", "value": 4},
        "mean_slack24_blend_job_saving_pct": {"op": ">=", "value": 0},
        "blend_over_persistence_mae": {"op": "<=", "value": 1.0},
    }
    return write_result(NAME, command, figures, targets)


if __name__ == "__main__":
    print(json.dumps(main()["figures"], indent=2))
