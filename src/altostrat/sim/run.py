"""One simulation run from spec strings to the JSON-ready result object."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable
from dataclasses import dataclass
from importlib.metadata import PackageNotFoundError, version

from altostrat.budgets import load_budgets
from altostrat.catalog import CatalogError
from altostrat.catalog.carbon import DEFAULT_START, CarbonModel
from altostrat.catalog.network import DEFAULT_BANDWIDTH_GBPS, NetworkModel
from altostrat.catalog.spot_history import load_spot_history, spot_billing
from altostrat.cluster.build import load_cluster
from altostrat.engine import PolicyContext
from altostrat.metrics.compute import compute_metrics
from altostrat.metrics.series import series
from altostrat.policy.registry import load_plugin, parse_policy
from altostrat.sim.fill import fill_workload, parse_arrivals, simulate_fill
from altostrat.sim.simulator import SimResult, simulate
from altostrat.spec.load import SpecError
from altostrat.workload.sources import TraceError, WorkloadContext, load_workload


def altostrat_version() -> str:
    try:
        return version("altostrat")
    except PackageNotFoundError:
        return "0+unknown"


def inputs_digest(jobs, state) -> str:
    """SHA-256 over the jobs and nodes as simulated, so equal digests mean equal inputs."""
    h = hashlib.sha256()
    for j in jobs:
        h.update(repr((j.id, j.submit, j.duration, j.tasks, j.gpu_milli, j.cpu_milli, j.mem_mib, j.gpu_models,
                       sorted(j.speeds.items()) if j.speeds else None, j.tenant, j.priority, j.deadline,
                       sorted(j.allowed_regions) if j.allowed_regions else None, j.spot, j.checkpoint_s,
                       j.dataset_gb, j.data_region)).encode())
    for nd in state.nodes:
        h.update(repr((nd.name, nd.pool, nd.gpu_model, nd.gpus, nd.cpu_milli, nd.mem_mib, nd.region, nd.tier,
                       nd.price_per_s, nd.cloud, nd.spot, nd.revocations_per_hour, nd.notice_s, nd.mean_down_s,
                       nd.elastic, nd.up, nd.boot_s, nd.idle_s, nd.instance_type)).encode())
    return h.hexdigest()


@dataclass
class RunRequest:
    workload: str
    cluster: str
    policy: str
    seed: int | None = None
    until: float | None = None
    warmup: float = 0.0
    skip_invalid: bool = False
    plugins: tuple[str, ...] = ()
    arrivals: str | None = None  # "fill:F": the FGD paper's fill experiment (sim/fill.py)
    start: str = DEFAULT_START  # the date-time trace time 0 maps to, for hourly carbon
    carbon_data: str | None = None  # a folder of Electricity Maps hourly files
    budgets: str | None = None  # a kind: Tenants file; default: the Workload YAML's spec.tenants
    network_data: str | None = None  # a folder of *_transmission_cost_matrix.csv; None: embedded prices
    bandwidth_gbps: float = DEFAULT_BANDWIDTH_GBPS  # per job's data transfer
    compression: str | None = None  # "RATIO:CPU_S_PER_GB"
    transfer_time_value: float = 0.0  # USD per hour of waiting for data, against egress dollars
    spot_prices: str | None = None  # a spot-history-2020-style folder: spot nodes billed at its prices

    def network(self) -> NetworkModel:
        return NetworkModel.from_options(self.network_data, self.bandwidth_gbps, self.compression,
                                         self.transfer_time_value)

    def spot_history(self) -> dict | None:
        """The --spot-prices series (catalog/spot_history.py), or None without the option."""
        if self.spot_prices is None:
            return None
        try:
            return load_spot_history(self.spot_prices)
        except CatalogError as exc:
            raise CatalogError(f"--spot-prices: {exc}") from None


def run(req: RunRequest, progress: Callable[[int, int], None] | None = None) -> tuple[dict, SimResult]:
    """Simulate and return (result object for --json, raw result for logs and plots)."""
    for plugin in req.plugins:
        load_plugin(plugin)
    policy = parse_policy(req.policy)
    carbon = CarbonModel(req.start, req.carbon_data)
    carbon.check()  # a bad --start or --carbon-data fails before the run, not after it
    network = req.network()
    budgets = load_budgets(req.budgets) if req.budgets is not None else None  # fails before a long trace load
    history = req.spot_history()
    cluster_name, state = load_cluster(req.cluster)
    spot = None if history is None else spot_billing(req.spot_prices, history, state.nodes)
    ctx = WorkloadContext(cluster=state, seed=req.seed, skip_invalid=req.skip_invalid)
    jobs = load_workload(req.workload, ctx)
    network.check_jobs(jobs)
    if budgets is None:
        budgets = ctx.budgets
    elif not {j.tenant for j in jobs} & set(budgets):  # a misspelt tenant would silently enforce nothing
        raise SpecError(f"--budgets {req.budgets}: none of its tenants ({', '.join(sorted(budgets))}) has a job in "
                        f"--workload {req.workload!r}; name the jobs' tenants, e.g. "
                        f"{', '.join(sorted({j.tenant for j in jobs})[:5])}")
    curve = None
    if req.arrivals is not None:
        if req.until is not None or req.warmup:
            raise SpecError("--until and --warmup do not apply to --arrivals fill (pods arrive one per second, never leave)")
        jobs = fill_workload(jobs, state.gpu_capacity_milli, parse_arrivals(req.arrivals), 1 if req.seed is None else req.seed)
        digest = inputs_digest(jobs, state)
        result, curve = simulate_fill(jobs, state, policy, progress=progress)
    else:
        if any(math.isnan(j.duration) for j in jobs):
            raise TraceError(f"--workload {req.workload!r}: its pods have no creation/deletion times, so they can only "
                             "be replayed with --arrivals fill:F (e.g. --arrivals fill:1.3)")
        prepare = getattr(policy.placement, "prepare", None)
        if prepare is not None:  # placements that model the target workload (fgd) see the whole trace
            prepare(jobs)
        digest = inputs_digest(jobs, state)
        context = PolicyContext(carbon=carbon, transfer_s=network.seconds_for, egress_usd=network.egress_usd,
                                budgets=budgets)
        result = simulate(jobs, state, policy, until=req.until, warmup=req.warmup, progress=progress, context=context,
                          seed=1 if req.seed is None else req.seed)
    out = {
        "workload": req.workload,
        "cluster": cluster_name,
        "policy": policy.name,
        "seed": req.seed,
        "version": altostrat_version(),
        "inputs_sha256": digest,
        "metrics": compute_metrics(result, carbon, network, budgets, spot),
        "run": {
            "events": result.events,
            "wall_s": result.wall_s,
            "jobs_per_s": len(jobs) / result.wall_s if result.wall_s > 0 else None,
        },
    }
    if req.carbon_data is not None:  # what the carbon figure depends on beyond the simulated inputs
        out["carbon"] = {"data": req.carbon_data, "start": req.start}
    if req.network_data is not None or req.compression is not None or req.bandwidth_gbps != DEFAULT_BANDWIDTH_GBPS \
            or req.transfer_time_value:  # what egress and transfer times depend on beyond the inputs
        out["network"] = {"data": req.network_data, "bandwidth_gbps": req.bandwidth_gbps,
                          "compression": req.compression, "time_value_usd_per_h": req.transfer_time_value}
    if req.budgets is not None:
        out["budgets"] = req.budgets
    if spot is not None:  # the calendar the prices were replayed on, and the spot pools left at flat prices
        out["spot_prices"] = spot.to_json()
    if curve is not None:
        out["arrivals"] = req.arrivals
        out["fill_curve"] = curve
    if ctx.skipped:
        out["skipped_rows"] = dict(ctx.skipped)
    if result.reject_reasons:
        reasons: dict[str, int] = {}
        for reason in result.reject_reasons.values():
            reasons[reason] = reasons.get(reason, 0) + 1
        out["unschedulable_reasons"] = reasons
    return out, result


def run_with_series(req: RunRequest) -> tuple[dict, dict]:
    """For worker processes: the result object and the plot series (both picklable)."""
    out, result = run(req)
    return out, series(result)


def dumps(obj) -> str:
    return json.dumps(obj, indent=2, allow_nan=False)
