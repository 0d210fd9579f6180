"""Spot price history: how spot and low-priority GPU prices moved over time, per region.

Reads the layout of ../shared/data/prices/spot-history-2020 (see its SOURCES.md entry):

- `aws/<region>/[<date>.]<instance>.json`: raw `aws ec2 describe-spot-price-history`
  output. Each Availability Zone has its own price steps; files collected on different
  dates overlap, so identical records repeat across files and are counted once. A region's
  price at a time is that of its cheapest zone then: a scheduler free to pick the zone
  would take it. The region's series starts once every zone has a price (the API also
  returns each zone's last change before the asked window, so zones start at different
  times, and the cheapest before all have started is unknown). Only Linux/UNIX records are read (the history is per product).
- `azure/<region>.csv`: one row a day (`M/D/YYYY`, taken as 00:00 UTC) and one column per
  VM size, prices as `$0.24552`, empty where the size was not offered; sizes must be listed
  in `azure/instance_mapping.csv` and become `Standard_<size>` with `_` for spaces. A
  row's price covers its whole day, so such a series is observed until the end of its last day.

Every series is a step function: a price holds from its record's time until the next
record's, and the last price holds on after it.

`spot_billing` binds the series to a run's spot nodes (`--spot-prices DIR`): the metrics then
bill those nodes at the history's price while they are up (docs/economics.md, "Spot price history").
"""

from __future__ import annotations

import bisect
import csv
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from altostrat.catalog.catalog import CatalogError

# Azure file stems -> Azure region names
AZURE_REGIONS = {"us_east": "eastus", "us_north_central": "northcentralus", "us_south_central": "southcentralus"}
AWS_PRODUCT = "Linux/UNIX"
_AWS_FILE = re.compile(r"(?:\d{4}-\d\d-\d\d\.)?(.+)\.json")
_MAPPING_HEADER = ["Instance", "GPU type", "# GPUs"]
DAY_S = 86400.0


@dataclass(frozen=True, slots=True)
class PriceSeries:
    """USD per hour as a step function of time (epoch seconds)."""

    times: tuple[float, ...]  # ascending: when each step starts
    prices: tuple[float, ...]  # the price from times[i] until times[i + 1]; the last one holds on
    records: int  # source records behind the series (after duplicates are removed)
    end: float  # observed up to here: the last record's time (AWS), the end of the last day (Azure)

    @property
    def start(self) -> float:
        return self.times[0]

    def _step(self, t: float) -> int:
        if t < self.times[0]:
            raise CatalogError(f"time {_iso(t)} is before the price history starts ({_iso(self.times[0])})")
        return bisect.bisect_right(self.times, t) - 1

    def price_at(self, t: float) -> float:
        return self.prices[self._step(t)]

    def mean_over(self, t0: float, t1: float) -> float:
        """The time-weighted mean price over [t0, t1]; the price at t0 when t1 == t0."""
        if t1 < t0:
            raise ValueError(f"mean_over: t1 ({t1}) is before t0 ({t0})")
        i = self._step(t0)
        if t1 == t0:
            return self.prices[i]
        total, t = 0.0, t0
        while i + 1 < len(self.times) and self.times[i + 1] < t1:
            total += self.prices[i] * (self.times[i + 1] - t)
            t = self.times[i + 1]
            i += 1
        total += self.prices[i] * (t1 - t)
        return total / (t1 - t0)

    def summary(self) -> tuple[float, float, float]:
        """(min, time-weighted mean over start..end, max) of the price; the price itself for one step."""
        mean = self.prices[0] if self.end == self.start else self.mean_over(self.start, self.end)
        return min(self.prices), mean, max(self.prices)


def _iso(t: float) -> str:
    return datetime.fromtimestamp(t, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def _steps(zones: Sequence[dict[float, float]], records: int, end: float | None = None) -> PriceSeries:
    """The cheapest of several zones' step functions, from when every zone has a price
    (before that the cheapest is unknown), with repeated prices merged."""
    order = [sorted(z.items()) for z in zones]
    start = max(steps[0][0] for steps in order)
    pos, now = [0] * len(order), [0.0] * len(order)
    times: list[float] = []
    prices: list[float] = []
    for t in sorted({start} | {t for z in zones for t in z if t > start}):
        for k, steps in enumerate(order):
            while pos[k] < len(steps) and steps[pos[k]][0] <= t:
                now[k] = steps[pos[k]][1]
                pos[k] += 1
        price = min(now)
        if not prices or price != prices[-1]:
            times.append(t)
            prices.append(price)
    return PriceSeries(tuple(times), tuple(prices), records, max(steps[-1][0] for steps in order) if end is None else end)


def _aws_region(folder: Path, seen: dict[tuple, tuple[float, Path]]) -> None:
    """Read one region's files into seen: (instance, zone, time) -> (price, file)."""
    region = folder.name
    for path in sorted(folder.glob("*.json")):
        instance = _AWS_FILE.fullmatch(path.name)[1]
        try:
            doc = json.loads(path.read_text(encoding="utf-8"))
        except json.JSONDecodeError as exc:
            raise CatalogError(f"{path}:{exc.lineno}: not JSON ({exc.msg})") from None
        history = doc.get("SpotPriceHistory") if isinstance(doc, dict) else None
        if not isinstance(history, list):
            raise CatalogError(f"{path}: field 'SpotPriceHistory': missing or not a list; expected the output of "
                               "aws ec2 describe-spot-price-history")
        for i, rec in enumerate(history):
            where = f"{path}: SpotPriceHistory[{i}]"
            if not isinstance(rec, dict):
                raise CatalogError(f"{where}: not an object")
            missing = [k for k in ("AvailabilityZone", "InstanceType", "SpotPrice", "Timestamp") if k not in rec]
            if missing:
                raise CatalogError(f"{where}: field {missing[0]!r} missing")
            if rec.get("ProductDescription", AWS_PRODUCT) != AWS_PRODUCT:
                continue
            if rec["InstanceType"] != instance:
                raise CatalogError(f"{where}.InstanceType: {rec['InstanceType']!r}, but the file name says {instance!r}")
            zone = rec["AvailabilityZone"]
            if not isinstance(zone, str) or not zone.startswith(region):
                raise CatalogError(f"{where}.AvailabilityZone: {zone!r} is not in region {region} (the folder name)")
            try:
                price = float(rec["SpotPrice"])
            except (TypeError, ValueError):
                price = -1.0
            if not price > 0 or price == float("inf"):
                raise CatalogError(f"{where}.SpotPrice: {rec['SpotPrice']!r} is not a price > 0 in USD per hour")
            try:
                t = datetime.fromisoformat(str(rec["Timestamp"]).replace("Z", "+00:00")).timestamp()
            except ValueError:
                raise CatalogError(f"{where}.Timestamp: {rec['Timestamp']!r} is not an ISO 8601 time") from None
            key = (instance, zone, t)
            if key in seen and seen[key][0] != price:
                raise CatalogError(f"{where}: {zone} at {rec['Timestamp']} costs {price}, but {seen[key][1]} "
                                   f"says {seen[key][0]}; remove the wrong file")
            seen[key] = (price, path)


def _load_aws(directory: Path) -> dict[tuple[str, str, str], PriceSeries]:
    out = {}
    for folder in sorted(p for p in directory.iterdir() if p.is_dir()):
        seen: dict[tuple, tuple[float, Path]] = {}
        _aws_region(folder, seen)
        by_instance: dict[str, dict[str, dict[float, float]]] = {}
        for (instance, zone, t), (price, _) in seen.items():
            by_instance.setdefault(instance, {}).setdefault(zone, {})[t] = price
        for instance, zones in by_instance.items():
            out[("aws", instance, folder.name)] = _steps(list(zones.values()), sum(map(len, zones.values())))
    return out


def _azure_names(path: Path) -> dict[str, str]:
    """VM sizes of instance_mapping.csv -> Azure instance type names."""
    if not path.is_file():
        raise CatalogError(f"{path}: no such file; the Azure prices need it to name their VM sizes")
    names = {}
    with open(path, newline="", encoding="utf-8") as f:
        rows = csv.reader(f)
        header = next(rows, [])
        if header != _MAPPING_HEADER:
            raise CatalogError(f"{path}:1: header must be {','.join(_MAPPING_HEADER)} (got {','.join(header)})")
        for line, row in enumerate(rows, start=2):
            if len(row) != 3 or not row[0].strip() or not row[2].strip().isdigit():
                raise CatalogError(f"{path}:{line}: expected 'size,GPU model,GPU count', e.g. 'NC6,K80,1'")
            names[row[0].strip()] = "Standard_" + row[0].strip().replace(" ", "_")
    return names


def _load_azure(directory: Path) -> dict[tuple[str, str, str], PriceSeries]:
    names = _azure_names(directory / "instance_mapping.csv")
    out = {}
    for path in sorted(directory.glob("*.csv")):
        if path.name == "instance_mapping.csv":
            continue
        region = AZURE_REGIONS.get(path.stem)
        if region is None:
            raise CatalogError(f"{path}: unknown region file; name it one of "
                               f"{', '.join(s + '.csv' for s in AZURE_REGIONS)}")
        with open(path, newline="", encoding="utf-8") as f:
            rows = csv.reader(f)
            header = next(rows, [])
            if not header or header[0] != "Date":
                raise CatalogError(f"{path}:1: the first column must be Date")
            for size in header[1:]:
                if size not in names:
                    raise CatalogError(f"{path}:1: column {size!r} is not in instance_mapping.csv; add it there")
            steps: list[dict[float, float]] = [{} for _ in header[1:]]
            last = None
            for line, row in enumerate(rows, start=2):
                if len(row) != len(header):
                    raise CatalogError(f"{path}:{line}: {len(row)} fields, the header has {len(header)}")
                try:
                    t = datetime.strptime(row[0], "%m/%d/%Y").replace(tzinfo=timezone.utc).timestamp()
                except ValueError:
                    raise CatalogError(f"{path}:{line}: field 'Date': {row[0]!r} is not M/D/YYYY") from None
                if last is not None and t <= last:
                    raise CatalogError(f"{path}:{line}: field 'Date': {row[0]} does not follow the day above")
                last = t
                for k, cell in enumerate(row[1:]):
                    where = f"{path}:{line}: field {header[k + 1]!r}"
                    if not cell.strip():
                        if steps[k]:
                            raise CatalogError(f"{where}: empty after a priced day; a series must have a price "
                                               "every day from its first on")
                        continue
                    try:
                        price = float(cell.strip().removeprefix("$"))
                    except ValueError:
                        price = -1.0
                    if not price > 0 or price == float("inf"):
                        raise CatalogError(f"{where}: {cell!r} is not a price like $0.24552")
                    steps[k][t] = price
        for size, days in zip(header[1:], steps):
            if days:
                out[("azure", names[size], region)] = _steps([days], len(days), max(days) + DAY_S)
    return out


def load_spot_history(directory: str | Path) -> dict[tuple[str, str, str], PriceSeries]:
    """Price series keyed by (cloud, instance type, region), from the aws/ and azure/ folders."""
    directory = Path(directory)
    if not directory.is_dir():
        raise CatalogError(f"{directory}: no such folder")
    found = [directory / c for c in ("aws", "azure") if (directory / c).is_dir()]
    if not found:
        raise CatalogError(f"{directory}: no aws/ or azure/ folder; give the spot-history-2020 folder")
    out: dict[tuple[str, str, str], PriceSeries] = {}
    for folder in found:
        out.update(_load_aws(folder) if folder.name == "aws" else _load_azure(folder))
    return dict(sorted(out.items()))


@dataclass(frozen=True, slots=True)
class PriceClock:
    """USD one node has cost since trace time 0, as a function of trace time: ∫ price dt, exact
    over the steps (linear between them). Trace time 0 is `anchor` on the series' calendar."""

    knots: np.ndarray  # trace seconds where a step starts; knots[0] == 0
    usd_per_s: np.ndarray  # from each knot on; the last holds on (and before 0, the first)
    usd_at: np.ndarray  # USD at each knot

    @classmethod
    def replay(cls, series: PriceSeries, anchor: float) -> PriceClock:
        i = series._step(anchor)
        knots = np.array((anchor, *series.times[i + 1:]), dtype=np.float64) - anchor
        rate = np.array(series.prices[i:], dtype=np.float64) / 3600.0
        return cls(knots, rate, np.concatenate(([0.0], np.cumsum(rate[:-1] * np.diff(knots)))))

    def __call__(self, t: np.ndarray) -> np.ndarray:
        t = np.asarray(t, dtype=np.float64)
        k = np.maximum(np.searchsorted(self.knots, t, side="right") - 1, 0)
        return self.usd_at[k] + self.usd_per_s[k] * (t - self.knots[k])


@dataclass(frozen=True)
class SpotBilling:
    """The spot nodes of one run that a price history bills, and the calendar it is replayed on."""

    directory: str
    anchor: float | None  # epoch seconds of trace time 0; None when no node has a series
    end: float | None  # the earliest end of what the billed series observed; their last prices hold on after it
    groups: tuple[tuple[tuple[str, str, str], PriceClock, np.ndarray], ...]  # (series key, clock, node indexes)
    missing: tuple[dict, ...]  # spot pools billed at the catalog's flat price: no series for them

    def to_json(self) -> dict:
        return {"data": self.directory,
                "start": None if self.anchor is None else _iso(self.anchor),
                "history_end": None if self.end is None else _iso(self.end),
                "series": [{"cloud": c, "instance_type": i, "region": r, "nodes": len(members)}
                           for (c, i, r), _, members in self.groups],
                "missing_pools": list(self.missing)}


def spot_billing(directory: str | Path, history: dict[tuple[str, str, str], PriceSeries], nodes) -> SpotBilling:
    """Bind `history` (load_spot_history) to the spot nodes of a cluster.

    Trace time 0 maps to the first time every billed series has a price (the latest of their
    starts), so the history is replayed from its beginning; past a series' end its last price holds.
    """
    members: dict[tuple[str, str, str], list[int]] = {}
    missing: dict[str, dict] = {}
    for nd in nodes:
        if not nd.spot:
            continue
        key = (nd.cloud, nd.instance_type, nd.region)
        if key in history:
            members.setdefault(key, []).append(nd.idx)
        else:
            missing.setdefault(nd.pool, {"pool": nd.pool, "cloud": nd.cloud, "instance_type": nd.instance_type,
                                         "region": nd.region})
    if not members:
        return SpotBilling(str(directory), None, None, (), tuple(missing.values()))
    anchor = max(history[k].start for k in members)
    groups = tuple((k, PriceClock.replay(history[k], anchor), np.array(idx, dtype=np.int64))
                   for k, idx in sorted(members.items()))
    return SpotBilling(str(directory), anchor, min(history[k].end for k in members), groups, tuple(missing.values()))
