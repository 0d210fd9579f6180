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
            mean[key], std[key] = _mean_std([r["metrics"][key] for r in group])
        merged.update(metrics=mean, metrics_std=std, seeds=[r["seed"] for r in group], runs=group)
        merged.pop("seed", None)
        out.append(merged)
    return out


def _mean_std(values: list) -> tuple:
    """Mean and spread over seeds; nested metrics (per_tenant) key by key, over the seeds that have the key."""
    if any(isinstance(v, dict) for v in values):
        keys = dict.fromkeys(k for v in values if v for k in v)
        pairs = {k: _mean_std([v[k] for v in values if v and k in v]) for k in keys}
        return {k: m for k, (m, _) in pairs.items()}, {k: s for k, (_, s) in pairs.items()}
    known = [v for v in values if v is not None]
    return (statistics.fmean(known) if known else None,
            statistics.pstdev(known) if len(known) > 1 else (0.0 if known else None))
