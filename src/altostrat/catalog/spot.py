"""Spot revocation: notice periods per cloud and the default hazard rates.

The notice a cloud gives before it takes a spot VM back is documented by each provider:
AWS EC2 Spot sends a two-minute interruption notice; Google Compute Engine gives
preemptible and Spot VMs 30 seconds; Azure Spot VMs get at least 30 seconds through
Scheduled Events.
"""

from __future__ import annotations

from altostrat.catalog.catalog import CatalogError

NOTICE_S: dict[str, float] = {"aws": 120.0, "gcp": 30.0, "azure": 30.0}

# Revocations per node-hour and mean seconds until a revoked node is back, per cloud:
# calibrated from ../shared/data/prices/spot-availability-2020 (see calibrate()).
REVOCATIONS_PER_HOUR: dict[str, float] = {}
MEAN_DOWN_S: dict[str, float] = {}


def spot_hazard(cloud: str | None, per_hour: float | None, notice_s: float | None) -> tuple[float, float]:
    """(revocations per node-hour, notice seconds) of a spot pool, defaults filled in."""
    if per_hour is None:
        if cloud not in REVOCATIONS_PER_HOUR:
            raise CatalogError(f"no default spot revocation rate for cloud {cloud!r}; set revocationsPerHour on the pool "
                               f"(defaults exist for {', '.join(sorted(REVOCATIONS_PER_HOUR)) or 'no cloud yet'})")
        per_hour = REVOCATIONS_PER_HOUR[cloud]
    if notice_s is None:
        notice_s = NOTICE_S.get(cloud or "", 30.0)
    return per_hour, notice_s
