"""Spot revocation: notice periods per cloud, the default hazard rates and down times, and
the calibration that derives them from availability logs.

The notice a cloud gives before it takes a spot VM back is documented by each provider:
AWS EC2 Spot sends a two-minute interruption notice; Google Compute Engine gives
preemptible and Spot VMs 30 seconds; Azure Spot VMs get at least 30 seconds through
Scheduled Events.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import NamedTuple

from altostrat.catalog.catalog import CatalogError

NOTICE_S: dict[str, float] = {"aws": 120.0, "gcp": 30.0, "azure": 30.0}

# Revocations per node-hour and mean seconds from a revocation until the same node shape
# can be had again in the same zone, per cloud: calibrate() over the March 2020 logs of
# ../shared/data/prices/spot-availability-2020 (training_on_a_dime: AWS us-east-1b/c spot
# p2/p3, GCP us-west1-b, us-east1-c, us-central1-c preemptible K80/P100/V100), rounded
# as round_stat() does; tests/catalog/test_spot.py recomputes them from the data.
# Azure has no logs: we assume the mean of the AWS and GCP figures (see docs/economics.md).
REVOCATIONS_PER_HOUR: dict[str, float] = {"aws": 0.0861, "gcp": 0.6743}
MEAN_DOWN_S: dict[str, float] = {"aws": 6254.0, "gcp": 1492.0}
REVOCATIONS_PER_HOUR["azure"] = round((REVOCATIONS_PER_HOUR["aws"] + REVOCATIONS_PER_HOUR["gcp"]) / 2, 4)
# Also the down time of a pool on a cloud with no logs whose rate the pool states itself.
UNMEASURED_DOWN_S = MEAN_DOWN_S["azure"] = float(round((MEAN_DOWN_S["aws"] + MEAN_DOWN_S["gcp"]) / 2))


class SpotHazard(NamedTuple):
    per_hour: float  # revocations per node-hour while up
    notice_s: float  # warning before a revocation
    mean_down_s: float  # mean time a revoked node stays unavailable


def spot_hazard(cloud: str | None, per_hour: float | None, notice_s: float | None) -> SpotHazard:
    """The hazard of a spot pool: the pool's own rate and notice where given, else the cloud's."""
    if per_hour is None:
        if cloud not in REVOCATIONS_PER_HOUR:
            raise CatalogError(f"no default spot revocation rate for cloud {cloud!r}; set revocationsPerHour on the pool "
                               f"(defaults exist for {', '.join(sorted(REVOCATIONS_PER_HOUR))})")
        per_hour = REVOCATIONS_PER_HOUR[cloud]
    if notice_s is None:
        notice_s = NOTICE_S.get(cloud or "", 30.0)
    return SpotHazard(per_hour, notice_s, MEAN_DOWN_S.get(cloud or "", UNMEASURED_DOWN_S))


# -- calibration from availability logs ----------------------------------------------------

@dataclass(frozen=True, slots=True)
class SpotStat:
    """What the logs show for one cloud (gpu_model None) or one cloud and GPU model."""

    cloud: str
    gpu_model: str | None
    node_hours: float  # instance-hours up, see calibrate()
    revocations: int
    per_hour: float  # revocations / node_hours (0 when no node-hours)
    down_periods: int  # revocations followed by a re-creation within the log
    mean_down_s: float | None  # None when no down period ended within the log


def round_stat(stat: SpotStat) -> tuple[float, float | None]:
    """(per_hour, mean_down_s) to the precision embedded above: 4 decimals and whole seconds."""
    return round(stat.per_hour, 4), None if stat.mean_down_s is None else float(round(stat.mean_down_s))


_STAMP = re.compile(r"\[(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?Z)\] (.*)")
_CREATED = re.compile(r"Created instance (\S+) with (\d+) GPU\(s\) of type (\S+) in zone (\S+)")
_RUNNING = re.compile(r"Instance (\S+) running in zone (\S+)")
_NOT_RUNNING = re.compile(r"Instance (\S+) not running in zone (\S+)")
_OTHER = re.compile(r"Instance \S+ creation failed|Instance with \d+ GPU\(s\) of type \S+ creation failed"
                    r"|Successfully deleted instance \S+")
_FORMS = ("'Created instance X with N GPU(s) of type T in zone Z', 'Instance X running in zone Z', "
          "'Instance X not running in zone Z', 'Instance X creation failed', "
          "'Instance with N GPU(s) of type T creation failed' or 'Successfully deleted instance X'")


def gpu_name(raw: str) -> str:
    """The catalog's GPU model name of a log's GPU type: nvidia-tesla-v100 and v100 are V100."""
    return raw.removeprefix("nvidia-tesla-").upper()


@dataclass(slots=True)
class _Life:
    slot: tuple[str, str, int]  # (zone, GPU model, GPUs): what the logger keeps trying to hold
    created: float
    last_seen: float  # last time it was seen running


class _Tally:
    __slots__ = ("up_s", "revocations", "down_s", "down_periods")

    def __init__(self) -> None:
        self.up_s = 0.0
        self.revocations = 0
        self.down_s = 0.0  # completed and censored down periods together
        self.down_periods = 0  # completed only

    def stat(self, cloud: str, gpu_model: str | None) -> SpotStat:
        hours = self.up_s / 3600.0
        return SpotStat(cloud, gpu_model, hours, self.revocations, self.revocations / hours if hours else 0.0,
                        self.down_periods, self.down_s / self.down_periods if self.down_periods else None)


def _cloud_of(path: Path) -> str:
    if not path.is_file():
        raise CatalogError(f"{path}: no such file")
    cloud = path.name.partition("_")[0]
    if cloud not in NOTICE_S:
        raise CatalogError(f"{path}: the file name must start with its cloud and '_' "
                           f"({', '.join(c + '_' for c in sorted(NOTICE_S))}), e.g. aws_persistent_2020-03-15.out")
    return cloud


def _read_log(path: Path, tally: Callable[[str], _Tally]) -> None:
    """Replay one log into the tallies of its cloud's GPU models (see calibrate())."""
    live: dict[str, _Life] = {}  # instance -> its current life
    revoked: dict[tuple[str, str, int], float] = {}  # slot -> estimated time of its last revocation
    t = None
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, start=1):
            where = f"{path}:{line_no}"
            line = line.rstrip("\r\n")
            if not line.strip():
                continue
            m = _STAMP.fullmatch(line)
            if m is None:
                raise CatalogError(f"{where}: expected '[YYYY-MM-DDTHH:MM:SS.000Z] message', got {line[:80]!r}")
            now = datetime.fromisoformat(m[1].replace("Z", "+00:00")).timestamp()
            if t is not None and now < t:
                raise CatalogError(f"{where}: time {m[1]} is before the line above; the log must be in time order")
            t, text = now, m[2]
            if c := _CREATED.fullmatch(text):
                name, gpus, model, zone = c[1], int(c[2]), gpu_name(c[3]), c[4]
                if name in live:
                    raise CatalogError(f"{where}: instance {name} created again while it is up (no 'not running' "
                                       "line since it was created)")
                slot = (zone, model, gpus)
                if slot in revoked:
                    down = tally(model)
                    down.down_s += t - revoked.pop(slot)
                    down.down_periods += 1
                live[name] = _Life(slot, t, t)
            elif r := _RUNNING.fullmatch(text):
                life = live.get(r[1])
                if life is None:
                    raise CatalogError(f"{where}: instance {r[1]} is running but no 'Created instance {r[1]}' line "
                                       "precedes it in this file")
                if r[2] != life.slot[0]:
                    raise CatalogError(f"{where}: instance {r[1]} is running in zone {r[2]} but was created in "
                                       f"{life.slot[0]}")
                life.last_seen = t
            elif n := _NOT_RUNNING.fullmatch(text):
                life = live.pop(n[1], None)
                if life is None:
                    continue  # the check after a failed creation: nothing was up
                if n[2] != life.slot[0]:
                    raise CatalogError(f"{where}: instance {n[1]} is reported in zone {n[2]} but was created in "
                                       f"{life.slot[0]}")
                at = (life.last_seen + t) / 2  # revoked somewhere between the two checks
                up = tally(life.slot[1])
                up.up_s += at - life.created
                up.revocations += 1
                revoked[life.slot] = at
            elif not _OTHER.fullmatch(text):
                raise CatalogError(f"{where}: unknown message {text[:80]!r}; expected one of {_FORMS}")
    for life in live.values():  # still up when the log ends: up as far as it was seen
        tally(life.slot[1]).up_s += life.last_seen - life.created
    for (_, model, _), at in revoked.items():  # still down when the log ends: censored
        tally(model).down_s += t - at


def calibrate(paths: Iterable[str | Path]) -> list[SpotStat]:
    """Revocation rates and down times from availability logs, per cloud and per cloud and GPU model.

    Each file is `<cloud>_<name>.out`, written by a logger that keeps one instance of each
    (zone, GPU model, GPU count) slot up, checks each about every 10 minutes, and re-creates
    a slot's instance when it is found not running. For each instance, from its `Created`
    line:

    - a `not running` line for it is a revocation, placed at the midpoint between its last
      `running` check (or its creation) and that line; its up time runs from creation to that
      point. A `not running` line for an instance that is not up (the check after a failed
      creation) is no revocation. An instance still up at the end of its file counts as up
      from creation to its last `running` check.
    - the slot is then down from the revocation until the next `Created` line of the same
      slot in the same file. A slot still down when its file ends is censored at the file's
      last line.

    node_hours sums up times; per_hour = revocations / node_hours; mean_down_s is the sum of
    all down times, censored ones included, over the number of completed down periods: both
    are the maximum-likelihood estimates of exponential up and down times under censoring.
    Rows: one per cloud (gpu_model None) and one per cloud and GPU model, sorted.
    """
    tallies: dict[tuple[str, str | None], _Tally] = {}
    for path in map(Path, paths):
        cloud = _cloud_of(path)
        _read_log(path, lambda model, cloud=cloud: tallies.setdefault((cloud, model), _Tally()))
    for cloud in sorted({c for c, _ in tallies}):
        total = tallies[(cloud, None)] = _Tally()
        for (c, model), part in list(tallies.items()):
            if c == cloud and model is not None:
                for key in _Tally.__slots__:
                    setattr(total, key, getattr(total, key) + getattr(part, key))
    return [tallies[key].stat(*key) for key in sorted(tallies, key=lambda k: (k[0], k[1] or ""))]
