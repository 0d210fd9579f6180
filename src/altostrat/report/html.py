"""The self-contained HTML report of a comparison (plotly.js embedded, opens offline)."""

from __future__ import annotations

import html
from pathlib import Path

import plotly.graph_objects as go
from plotly.io import to_html

SUMMARY_COLUMNS = (
    ("avg_jct_s", "avg JCT (s)"), ("p99_jct_s", "p99 JCT (s)"), ("avg_wait_s", "avg wait (s)"),
    ("makespan_s", "makespan (s)"), ("gpu_utilization", "GPU util"), ("unallocated_gpu_fraction", "unalloc. GPU"),
    ("deadline_violation_rate", "deadline misses"), ("preemptions", "preemptions"), ("jain_fairness", "Jain"),
    ("jobs_completed", "completed"), ("jobs_unschedulable", "unschedulable"), ("jobs_unfinished", "unfinished"),
    ("cost_usd", "cost (USD)"), ("energy_kwh", "energy (kWh)"), ("carbon_kgco2e", "carbon (kgCO2e)"),
    ("egress_usd", "egress (USD)"),
)


def fmt(value) -> str:
    if value is None:
        return "–"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:,.0f}"
    return f"{value:,}" if isinstance(value, int) else str(value)


def _figure(title: str, xaxis: str, yaxis: str, traces: list, log_x: bool = False) -> go.Figure:
    fig = go.Figure(traces)
    fig.update_layout(title=title, xaxis_title=xaxis, yaxis_title=yaxis, template="plotly_white", height=380,
                      margin=dict(l=60, r=20, t=50, b=50))
    if log_x:
        fig.update_xaxes(type="log")
    return fig


def write_report(path: Path, results: list[dict], series: dict[str, dict], title: str) -> None:
    rows = []
    for r in results:
        m = r["metrics"]
        cells = "".join(f"<td>{fmt(m.get(key))}</td>" for key, _ in SUMMARY_COLUMNS)
        rows.append(f"<tr><th>{html.escape(r['policy'])}</th>{cells}</tr>")
    head = "".join(f"<th>{html.escape(label)}</th>" for _, label in SUMMARY_COLUMNS)
    hours = 3600.0
    figs = [
        _figure("JCT CDF", "job completion time (s)", "fraction of jobs",
                [go.Scatter(x=s["jct_s"], y=s["jct_cdf"], name=p, mode="lines") for p, s in series.items()], log_x=True),
        _figure("GPU utilization over time", "time (h)", "allocated / capacity",
                [go.Scatter(x=[t / hours for t in s["time_s"]], y=s["gpu_utilization"], name=p, mode="lines")
                 for p, s in series.items()]),
        _figure("Queue length over time", "time (h)", "pending jobs",
                [go.Scatter(x=[t / hours for t in s["time_s"]], y=s["queue_length"], name=p, mode="lines")
                 for p, s in series.items()]),
    ]
    plots = "".join(
        to_html(fig, full_html=False, include_plotlyjs=(i == 0)) for i, fig in enumerate(figs)
    )
    first = results[0] if results else {}
    page = f"""<!doctype html>
<html><head><meta charset="utf-8"><title>{html.escape(title)}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem; color: #222; }}
table {{ border-collapse: collapse; font-size: 0.9rem; }}
th, td {{ border-bottom: 1px solid #ddd; padding: 0.35rem 0.6rem; text-align: right; }}
tr th:first-child {{ text-align: left; }}
</style></head><body>
<h1>{html.escape(title)}</h1>
<p>workload <code>{html.escape(str(first.get('workload')))}</code> on cluster
<code>{html.escape(str(first.get('cluster')))}</code>; inputs sha256
<code>{html.escape(str(first.get('inputs_sha256', ''))[:16])}</code>; altostrat {html.escape(str(first.get('version')))}</p>
<table><thead><tr><th>policy</th>{head}</tr></thead><tbody>{''.join(rows)}</tbody></table>
{plots}
</body></html>
"""
    path.write_text(page)
