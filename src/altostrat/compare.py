"""Folding per-seed runs of a comparison into one object per policy."""

from __future__ import annotations

import statistics


def aggregate_seeds(policies: list[str], runs: list[dict], seeds_given: int) -> list[dict]:
    """One object per policy; with several seeds, metrics are means plus `metrics_std`."""
    if seeds_given == 1:
        return runs
    out = []
    for k, _ in enumerate(policies):
        group = runs[k * seeds_given:(k + 1) * seeds_given]
        merged = dict(group[0])
        mean, std = {}, {}
        for key in group[0]["metrics"]:
            values = [r["metrics"][key] for r in group if r["metrics"][key] is not None]
            mean[key] = statistics.fmean(values) if values else None
            std[key] = statistics.pstdev(values) if len(values) > 1 else (0.0 if values else None)
        merged.update(metrics=mean, metrics_std=std, seeds=[r["seed"] for r in group], runs=group)
        merged.pop("seed", None)
        out.append(merged)
    return out
