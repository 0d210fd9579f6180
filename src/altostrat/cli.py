"""The `altostrat` command line."""

from __future__ import annotations

import dataclasses
import sys
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path
from typing import Annotated, Optional

import typer
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table

from altostrat.catalog import CatalogError
from altostrat.catalog.carbon import DEFAULT_START, CarbonModel
from altostrat.catalog.network import DEFAULT_BANDWIDTH_GBPS
from altostrat.compare import aggregate_seeds
from altostrat.policy.registry import PolicyError, split_top
from altostrat.report.html import SUMMARY_COLUMNS, fmt, write_report
from altostrat.sim.run import RunRequest, dumps, run, run_with_series
from altostrat.service.cli import register as register_service
from altostrat.spec.load import SpecError
from altostrat.workload.sources import TraceError

app = typer.Typer(help="Altostrat: allocate cloud resources to AI workloads, proven on real traces.", no_args_is_help=True)
policies_app = typer.Typer(help="Scheduling policy pieces.", no_args_is_help=True)
app.add_typer(policies_app, name="policies")
workloads_app = typer.Typer(help="Workload traces and generators.", no_args_is_help=True)
app.add_typer(workloads_app, name="workloads")
catalog_app = typer.Typer(help="Cloud instance types and their prices.", no_args_is_help=True)
app.add_typer(catalog_app, name="catalog")
err = Console(stderr=True)
out = Console(width=None if sys.stdout.isatty() else 200)  # pipes get the whole table

USER_ERRORS = (PolicyError, SpecError, TraceError, CatalogError, FileNotFoundError)

WorkloadOpt = Annotated[str, typer.Option("--workload", "-w", help="synthetic[:opts], philly:PATH, … or a Workload YAML")]
ClusterOpt = Annotated[str, typer.Option("--cluster", "-c", help="philly-like, gavel-108, … or a Cluster YAML")]
SeedOpt = Annotated[Optional[int], typer.Option(help="seed for generators (overrides seed= in the workload)")]
SkipOpt = Annotated[bool, typer.Option("--skip-invalid", help="skip malformed trace rows and report their counts")]
PluginOpt = Annotated[Optional[list[str]], typer.Option("--plugin", help="module:object registering extra policy pieces")]
StartOpt = Annotated[str, typer.Option(help="the UTC date-time trace time 0 maps to, for hourly carbon")]
CarbonDataOpt = Annotated[Optional[str], typer.Option(
    "--carbon-data", help="folder of Electricity Maps *_hourly.csv files; default: static intensity per region")]
NetworkDataOpt = Annotated[Optional[str], typer.Option(
    "--network-data", help="folder of <cloud>_transmission_cost_matrix.csv egress prices; default: embedded per-cloud table")]
BandwidthOpt = Annotated[float, typer.Option("--bandwidth-gbps", help="Gbit/s a job's dataset moves at")]
CompressionOpt = Annotated[Optional[str], typer.Option(
    help="RATIO:CPU_S_PER_GB: datasets may move compressed RATIO times, costing CPU_S_PER_GB seconds per GB")]
TimeValueOpt = Annotated[float, typer.Option(
    "--transfer-time-value", help="USD an hour of waiting for data is worth when choosing how to move it")]
SpotPricesOpt = Annotated[Optional[str], typer.Option(
    "--spot-prices", help="a spot price history folder (spot-history-2020 layout): spot nodes pay its prices over time")]
BudgetsOpt = Annotated[Optional[str], typer.Option(
    "--budgets", help="a kind: Tenants YAML: tenants' budgets and weights (default: the Workload YAML's spec.tenants)")]
ArrivalsOpt = Annotated[Optional[str], typer.Option(
    help="fill:F = the FGD paper's fill experiment: pods topped up to F x GPU capacity arrive one by one, never leave")]


def fail(exc: Exception) -> None:
    err.print(f"[bold red]error:[/] {exc}", highlight=False)
    raise typer.Exit(2)


@app.command()
def simulate(
    workload: WorkloadOpt = "synthetic",
    cluster: ClusterOpt = "philly-like",
    policy: Annotated[str, typer.Option(help="ORDER[+PLACEMENT][+backfill][+preempt][+recover][+GATE…], e.g. las+consolidate")] = "fcfs+best-fit",
    seed: SeedOpt = None,
    until: Annotated[Optional[float], typer.Option(help="stop the clock at T seconds")] = None,
    warmup: Annotated[float, typer.Option(help="ignore jobs submitted before T seconds in metrics")] = 0.0,
    events: Annotated[Optional[Path], typer.Option(help="write the event log to FILE (.parquet or .csv)")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")] = False,
    skip_invalid: SkipOpt = False,
    plugin: PluginOpt = None,
    arrivals: ArrivalsOpt = None,
    start: StartOpt = DEFAULT_START,
    carbon_data: CarbonDataOpt = None,
    network_data: NetworkDataOpt = None,
    bandwidth_gbps: BandwidthOpt = DEFAULT_BANDWIDTH_GBPS,
    compression: CompressionOpt = None,
    transfer_time_value: TimeValueOpt = 0.0,
    budgets: BudgetsOpt = None,
    spot_prices: SpotPricesOpt = None,
) -> None:
    """Replay a workload on a cluster under one policy and report its metrics."""
    if events is not None and events.suffix not in (".parquet", ".csv"):
        fail(ValueError(f"--events {events}: name a .parquet or .csv file"))
    req = RunRequest(workload, cluster, policy, seed, until, warmup, skip_invalid, tuple(plugin or ()), arrivals,
                     start, carbon_data, network_data=network_data, bandwidth_gbps=bandwidth_gbps,
                     compression=compression, transfer_time_value=transfer_time_value, budgets=budgets,
                     spot_prices=spot_prices)
    try:
        if sys.stderr.isatty() and not as_json:
            with _progress() as bar:
                task = bar.add_task("simulating", total=None)
                result, raw = run(req, progress=lambda done, total: bar.update(task, completed=done, total=total))
        else:
            result, raw = run(req)
    except USER_ERRORS as exc:
        fail(exc)
    if events is not None:
        from altostrat.sim.export import write_events

        write_events(raw, events)
    if as_json:
        print(dumps(result))
        return
    _print_table([result])
    r = result["run"]
    out.print(f"{r['events']:,} events in {r['wall_s']:.2f} s ({r['jobs_per_s']:,.0f} jobs/s)")
    if "fill_curve" in result:
        end = result["fill_curve"][-1]
        out.print(f"fill: pods asking {end['arrived_fraction']:.0%} of GPU capacity arrived; "
                  f"{end['allocated_gpu_fraction']:.1%} allocated, {end['unallocated_gpu_fraction']:.1%} unallocated")


def _progress() -> Progress:
    return Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=err)


def _print_table(results: list[dict]) -> None:
    """One row per metric, one column per policy: fits a terminal for the usual few policies."""
    table = Table(title="policy comparison" if len(results) > 1 else None)
    table.add_column("metric", style="bold", no_wrap=True)
    for r in results:
        table.add_column(escape(r["policy"]), justify="right", overflow="fold")  # [params] are not markup
    for key, label in SUMMARY_COLUMNS:
        table.add_row(label, *(fmt(r["metrics"].get(key)) for r in results))
    out.print(table)


@app.command()
def compare(
    policies: Annotated[str, typer.Option(help="comma-separated policies; commas inside [] belong to a policy")],
    out_dir: Annotated[Path, typer.Option("--out", help="directory for results.json and report.html")],
    workload: WorkloadOpt = "synthetic",
    cluster: ClusterOpt = "philly-like",
    seeds: Annotated[int, typer.Option(min=1, help="run each policy with seeds 1..N (mean and spread)")] = 1,
    seed: SeedOpt = None,
    until: Annotated[Optional[float], typer.Option(help="stop the clock at T seconds")] = None,
    warmup: Annotated[float, typer.Option(help="ignore jobs submitted before T seconds in metrics")] = 0.0,
    workers: Annotated[int, typer.Option(min=1, help="parallel processes")] = 2,
    skip_invalid: SkipOpt = False,
    plugin: PluginOpt = None,
    arrivals: ArrivalsOpt = None,
    start: StartOpt = DEFAULT_START,
    carbon_data: CarbonDataOpt = None,
    network_data: NetworkDataOpt = None,
    bandwidth_gbps: BandwidthOpt = DEFAULT_BANDWIDTH_GBPS,
    compression: CompressionOpt = None,
    transfer_time_value: TimeValueOpt = 0.0,
    budgets: BudgetsOpt = None,
    spot_prices: SpotPricesOpt = None,
) -> None:
    """Run several policies on the same workload and cluster; write results.json and report.html."""
    names = [p for p in split_top(policies, ",") if p]
    if not names:
        fail(PolicyError("--policies is empty; e.g. --policies fcfs,sjf,las"))
    base_seed = seed if seed is not None else 1
    seed_list = [base_seed + k for k in range(seeds)] if (seeds > 1 or seed is not None) else [None]
    base = RunRequest(workload, cluster, names[0], seed_list[0], until, warmup, skip_invalid, tuple(plugin or ()),
                      arrivals, start, carbon_data, network_data=network_data, bandwidth_gbps=bandwidth_gbps,
                      compression=compression, transfer_time_value=transfer_time_value, budgets=budgets,
                      spot_prices=spot_prices)
    requests = [dataclasses.replace(base, policy=name, seed=s) for name in names for s in seed_list]
    try:  # validate every input once, in this process, before spending workers on them
        from altostrat.policy.registry import load_plugin, parse_policy

        for p in plugin or ():
            load_plugin(p)
        for name in names:
            parse_policy(name)
        if arrivals is not None:
            from altostrat.sim.fill import parse_arrivals

            parse_arrivals(arrivals)
        CarbonModel(start, carbon_data).check()
        requests[0].network()
        if budgets is not None:
            from altostrat.budgets import load_budgets

            load_budgets(budgets)
        requests[0].spot_history()
    except USER_ERRORS as exc:
        fail(exc)
    results: list[tuple[dict, dict]] = [None] * len(requests)  # type: ignore[list-item]
    try:
        with _progress() as bar, ProcessPoolExecutor(max_workers=min(workers, len(requests))) as pool:
            task = bar.add_task("policies", total=len(requests))
            futures = {pool.submit(run_with_series, req): i for i, req in enumerate(requests)}
            for fut in futures:
                results[futures[fut]] = fut.result()
                bar.advance(task)
    except USER_ERRORS as exc:
        fail(exc)
    runs = [r for r, _ in results]
    per_policy = aggregate_seeds(names, runs, seeds_given=len(seed_list))
    series = {names[i // len(seed_list)]: results[i][1] for i in range(0, len(results), len(seed_list))}
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "results.json").write_text(dumps(per_policy))
    write_report(out_dir / "report.html", per_policy, series, title="Altostrat policy comparison")
    _print_table(per_policy)
    out.print(f"wrote {out_dir / 'results.json'} and {out_dir / 'report.html'}")


@app.command()
def tco(
    workload: WorkloadOpt = "synthetic",
    cluster: ClusterOpt = "philly-like",
    years: Annotated[float, typer.Option(help="horizon: the simulated window's mean rate, repeated")] = 3.0,
    as_json: Annotated[bool, typer.Option("--json", help="print exactly one JSON object on stdout")] = False,
    policy: Annotated[str, typer.Option(help="the policy that makes the busy-node curve")] = "fcfs+best-fit+backfill",
    seed: SeedOpt = None,
    carbon_data: CarbonDataOpt = None,
    start: StartOpt = DEFAULT_START,
    boot_s: Annotated[float, typer.Option(help="seconds from node request to its first task (billed)")] = 180.0,
    scale_down_s: Annotated[float, typer.Option(help="idle seconds before a dynamic node is released")] = 600.0,
    reserved_term: Annotated[Optional[int], typer.Option(help="commitment years, 1 or 3 (default: 3 if --years >= 3)")] = None,
    reserved_discount: Annotated[Optional[float], typer.Option(help="off on-demand (default 0.37 for 1 year, 0.55 for 3)")] = None,
    spot_fraction: Annotated[Optional[float], typer.Option(
        help="fraction of jobs on spot (default: the workload's spot flags, or 0.5 when it sets none)")] = None,
    spot_revocations_per_hour: Annotated[Optional[float], typer.Option(
        help="spot revocations per node-hour (default: calibrated per cloud, else 0.1)")] = None,
    window: Annotated[str, typer.Option(
        help="arrivals: first to last submit (steady state, the default); run: to the last job's end")] = "arrivals",
    skip_invalid: SkipOpt = False,
) -> None:
    """Project cost, energy, carbon and work per watt of a workload under four provisioning scenarios."""
    from altostrat.tco.project import TcoRequest, tco as project_tco

    req = TcoRequest(workload, cluster, policy, years, seed, start, carbon_data, boot_s, scale_down_s, reserved_term,
                     reserved_discount, spot_fraction, spot_revocations_per_hour, skip_invalid, window)
    try:
        result = project_tco(req)
    except USER_ERRORS as exc:
        fail(exc)
    if as_json:
        print(dumps(result))
        return
    table = Table(title=f"TCO over {years:g} years: {workload} on {cluster}")
    for col in ("scenario", "TCO USD", "monthly USD", "energy MWh", "carbon tCO2e", "perf/W", "TCO vs static",
                "energy vs static"):
        table.add_column(col, justify="left" if col == "scenario" else "right")
    for s in result["scenarios"]:
        table.add_row(s["name"], f"{s['tco_usd']:,.0f}", f"{s['monthly_usd']:,.0f}", fmt(s["energy_mwh"]),
                      fmt(s["carbon_tco2e"]), "–" if s["perf_per_watt"] is None else f"{s['perf_per_watt']:.3g} {s['perf_unit']}",
                      f"{s['tco_vs_static']:.1%}", "–" if s["energy_vs_static"] is None else f"{s['energy_vs_static']:.1%}")
    out.print(table)


@policies_app.command("list")
def policies_list(plugin: PluginOpt = None) -> None:
    """Every registered order and placement piece, its parameters and its source."""
    import altostrat.policy  # noqa: F401
    from altostrat.policy.registry import KINDS, Backfill, Preemption, Recovery, load_plugin, pieces

    try:
        for p in plugin or ():
            load_plugin(p)
    except USER_ERRORS as exc:
        fail(exc)
    table = Table(title="policy pieces: ORDER[+PLACEMENT][+backfill][+preempt][+recover][+GATE…]")
    for col in ("kind", "name", "parameters", "source"):
        table.add_column(col)

    def params(cls) -> str:
        return ", ".join(f"{f.name}={f.default}" for f in dataclasses.fields(cls) if f.init) or "–"

    for kind in KINDS:
        for name, cls in pieces(kind).items():
            table.add_row(kind, name, params(cls), cls.source)
    table.add_row("option", "backfill", params(Backfill), "EASY backfilling (Lifka 1995); protects the blocked head")
    table.add_row("option", "preempt", params(Preemption), "whole-gang preemption of jobs ordered after the blocked one")
    table.add_row("option", "recover", params(Recovery), "where a job goes after its spot node is revoked")
    out.print(table)


@workloads_app.command("inspect")
def workloads_inspect(
    spec: Annotated[str, typer.Argument(help="synthetic[:opts], philly:PATH, gavel:PATH, csv:PATH#MAPPING, … or a Workload YAML")],
    cluster: Annotated[str, typer.Option("--cluster", "-c", help="cluster that synthetic load= is relative to")] = "philly-like",
    seed: SeedOpt = None,
    skip_invalid: SkipOpt = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the statistics as one JSON object")] = False,
) -> None:
    """A trace's statistics: jobs, span, GPU demand mix, duration percentiles, arrival rate."""
    from altostrat.cluster.build import load_cluster
    from altostrat.workload.inspect import trace_stats
    from altostrat.workload.sources import WorkloadContext, load_workload

    try:
        ctx = WorkloadContext(cluster=load_cluster(cluster)[1], seed=seed, skip_invalid=skip_invalid)
        stats = trace_stats(load_workload(spec, ctx), ctx.skipped)
    except USER_ERRORS as exc:
        fail(exc)
    if as_json:
        print(dumps({"workload": spec, **stats.to_dict()}))
        return
    table = Table(title=f"workload {spec}")
    table.add_column("statistic", style="bold")
    table.add_column("value", justify="right")
    rate = stats.arrival_rate_per_h
    timed = stats.timed
    rows = [
        ("jobs", f"{stats.jobs:,}"),
        ("span", f"{stats.span_s:,.0f} s ({stats.span_days:,.1f} days)" if timed
         else "– (no times: usable with --arrivals fill:F)"),
        ("arrival rate", "–" if rate is None else f"{rate:,.1f} jobs/h"),
        ("duration p50 / p90 / p99",
         f"{stats.duration_p50_s:,.0f} / {stats.duration_p90_s:,.0f} / {stats.duration_p99_s:,.0f} s" if timed else "–"),
        ("tenants", f"{stats.tenants:,}"),
        ("GPU-hours", f"{stats.gpu_hours:,.0f}" if timed else "–"),
        *((f"jobs with {k} GPU{'' if k == '1' else 's'}" if k[0].isdigit() else f"{k} jobs",
           f"{share:.2%} ({round(share * stats.jobs):,})") for k, share in stats.gpu_mix.items()),
        ("skipped rows", f"{stats.skipped_rows:,}"),
        *((f"  skipped: {reason}", f"{n:,}") for reason, n in stats.skipped_reasons.items()),
    ]
    for row in rows:
        table.add_row(*row)
    out.print(table)


@catalog_app.command("list")
def catalog_list(
    catalog: Annotated[Optional[Path], typer.Option(help="a vms.csv-format .csv or a catalog .yaml (default: embedded)")] = None,
    gpu: Annotated[Optional[str], typer.Option(help="GPU model, e.g. V100 or a100-80gb; cpu for CPU-only types")] = None,
    cloud: Annotated[Optional[str], typer.Option(help="aws, gcp, azure, …")] = None,
    region: Annotated[Optional[str], typer.Option(help="e.g. us-east-1")] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the types as one JSON object")] = False,
) -> None:
    """Instance types with their shapes and USD/hour prices (on-demand and spot)."""
    import dataclasses

    from altostrat.catalog import load_catalog

    try:
        cat = load_catalog(catalog)
        types = cat.find(cloud=cloud, region=region, gpu_model=gpu)
    except USER_ERRORS as exc:
        fail(exc)
    if as_json:
        print(dumps({"catalog": cat.origin, "adjusted": cat.adjusted,
                     "instance_types": [dataclasses.asdict(it) for it in types]}))
        return
    table = Table(title=f"catalog {cat.origin}: {len(types):,} of {len(cat):,} types", caption="prices in USD per hour")
    for col in ("cloud", "instance type", "region", "vCPUs", "memory GiB", "GPUs", "GPU GiB", "on-demand", "spot"):
        table.add_column(col, justify="right" if col in ("vCPUs", "memory GiB", "GPU GiB", "on-demand", "spot") else "left")
    for it in types:
        table.add_row(it.cloud, it.name, it.region, str(it.vcpus), fmt(it.memory_gib),
                      f"{it.gpu_count} x {it.gpu_model}" if it.gpu_model else "–", fmt(it.gpu_memory_gib),
                      f"{it.price_hr:.4f}", "–" if it.spot_price_hr is None else f"{it.spot_price_hr:.4f}")
    out.print(table)
    for reason, n in cat.adjusted.items():
        out.print(f"{reason}: {n:,} rows")


@catalog_app.command("spot-history")
def catalog_spot_history(
    directory: Annotated[Path, typer.Argument(help="a folder with aws/ and/or azure/, laid out as prices/spot-history-2020")],
    as_json: Annotated[bool, typer.Option("--json", help="print the series as one JSON object")] = False,
) -> None:
    """Spot price series per cloud, instance type and region: records, span, min/mean/max USD/hour."""
    from datetime import datetime, timezone

    from altostrat.catalog.spot_history import load_spot_history

    try:
        history = load_spot_history(directory)
    except USER_ERRORS as exc:
        fail(exc)
    rows = []
    for (cloud, instance, region), series in history.items():
        low, mean, high = series.summary()
        span = [datetime.fromtimestamp(t, timezone.utc).isoformat().replace("+00:00", "Z") for t in (series.start, series.end)]
        rows.append({"cloud": cloud, "instance_type": instance, "region": region, "records": series.records,
                     "start": span[0], "end": span[1], "min_usd_hr": low, "mean_usd_hr": mean, "max_usd_hr": high})
    if as_json:
        print(dumps({"directory": str(directory), "series": rows}))
        return
    table = Table(title=f"spot price history {directory}: {len(rows)} series",
                  caption="USD per hour; a region's price is its cheapest zone's; mean weighted by time over the span")
    for col in ("cloud", "instance type", "region", "records", "from", "to", "min", "mean", "max"):
        table.add_column(col, justify="right" if col in ("records", "min", "mean", "max") else "left")
    for r in rows:
        table.add_row(r["cloud"], r["instance_type"], r["region"], f"{r['records']:,}", r["start"][:16], r["end"][:16],
                      *(f"{r[k]:.4f}" for k in ("min_usd_hr", "mean_usd_hr", "max_usd_hr")))
    out.print(table)
@app.command()
def plan(
    workload: Annotated[Path, typer.Argument(help="a Workload YAML (docs/specs.md)")],
    objective: Annotated[str, typer.Option(help="what to minimise: cost, time or carbon")] = "cost",
    budget: Annotated[Optional[float], typer.Option(min=0, help="total USD the plan may spend")] = None,
    max_risk: Annotated[Optional[float], typer.Option("--max-risk", min=0, help="leave out options whose compliance risk R(x) is above R")] = None,
    tenant_budget: Annotated[Optional[list[str]], typer.Option("--tenant-budget", help="TENANT=USD, a tenant's cap; repeat per tenant")] = None,
    catalog: Annotated[Optional[Path], typer.Option(help="a vms.csv-format .csv or a catalog .yaml (default: embedded)")] = None,
    carbon_data: CarbonDataOpt = None,
    start: StartOpt = DEFAULT_START,
    network_data: NetworkDataOpt = None,
    bandwidth_gbps: BandwidthOpt = DEFAULT_BANDWIDTH_GBPS,
    top: Annotated[int, typer.Option(min=1, help="options shown per job")] = 3,
    as_json: Annotated[bool, typer.Option("--json", help="print the plan as one JSON object")] = False,
) -> None:
    """Choose each job's cloud, region, instance type, nodes, spot or on-demand and start window (docs/plan.md)."""
    from altostrat.catalog import load_catalog
    from altostrat.plan import PlanError, make_plan
    from altostrat.plan.render import plan_table, totals_line
    from altostrat.spec.load import load_one

    try:
        caps = {}
        for item in tenant_budget or ():
            name, _, usd = item.partition("=")
            try:
                caps[name] = float(usd)
            except ValueError:
                raise PlanError(f"--tenant-budget {item!r}: write TENANT=USD, e.g. research=500") from None
        carbon = CarbonModel(start, carbon_data)
        carbon.check()
        result = make_plan(load_one(workload, "Workload").spec.jobs, objective, budget, max_risk,
                           load_catalog(catalog), carbon, caps, network_data=network_data,
                           bandwidth_gbps=bandwidth_gbps)
    except (*USER_ERRORS, PlanError) as exc:
        fail(exc)
    if as_json:
        print(dumps(result.to_json()))
        return
    out.print(plan_table(result, top))
    out.print(totals_line(result))


register_service(app)


def main() -> None:  # pragma: no cover
    app()


if __name__ == "__main__":  # pragma: no cover
    main()
