"""Grid carbon intensity per cloud region: an embedded static table, hourly series when given.

docs/energy.md explains the model. Intensities are gCO2e per kWh of facility energy.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from altostrat.catalog.catalog import CatalogError

# Cloud region -> Electricity Maps zone of the grid it draws from (the zone ids of the hourly
# files' "Zone Id" column). Regions by their published location: us-east-1, eastus, us-east4
# (northern Virginia), us-west-1 (northern California), us-west2 (Los Angeles), us-south1
# (Dallas), us-central1 (Council Bluffs, Iowa: MISO), westus2 (Quincy, Washington: BPA),
# eu-west-2 / europe-west2 (London), ap-southeast-1 / asia-southeast1 (Singapore),
# ap-northeast-1 / asia-northeast1 (Tokyo), europe-west3 (Frankfurt: zone DE, the German bidding
# zone's file DE-LU_*), australia-southeast1 (Sydney, New South Wales).
REGION_ZONE: dict[str, str] = {
    "us-east-1": "US-MIDA-PJM", "eastus": "US-MIDA-PJM", "us-east4": "US-MIDA-PJM",
    "us-west-1": "US-CAL-CISO", "us-west2": "US-CAL-CISO",
    "us-south1": "US-TEX-ERCO",
    "us-central1": "US-MIDW-MISO",
    "westus2": "US-NW-BPAT",
    "eu-west-2": "GB", "europe-west2": "GB",
    "ap-southeast-1": "SG", "asia-southeast1": "SG",
    "ap-northeast-1": "JP-TK", "asia-northeast1": "JP-TK",
    "europe-west3": "DE", "australia-southeast1": "AU-NSW",
}

# Static fallback, gCO2e/kWh: the `impact` column of ../shared/data/carbon/static/codecarbon_cloud_impact.csv
# (CodeCarbon's cloud table; its own sources: Google's region-carbon page for GCP, US EPA
# eGRID for US AWS and Azure regions, national statistics elsewhere, as its `source` column names).
REGION_STATIC: dict[str, float] = {
    "us-east-1": 367.8, "eastus": 367.8, "us-east4": 309.0,
    "us-west-1": 240.6, "us-west2": 190.0,
    "us-south1": 296.0,
    "us-central1": 394.0,
    "westus2": 297.6,
    "eu-west-2": 623.0, "europe-west2": 172.0,
    "ap-southeast-1": 419.0, "asia-southeast1": 372.0,
    "ap-northeast-1": 516.0, "asia-northeast1": 464.0,
    "europe-west3": 269.0, "australia-southeast1": 723.0,
}

# The direct (operational) column, not LCA: the static figures above are operational too.
INTENSITY_COLUMN = "Carbon Intensity gCO₂eq/kWh (direct)"
TIME_COLUMN = "Datetime (UTC)"
ZONE_COLUMN = "Zone Id"
DEFAULT_START = "2023-01-01T00:00Z"


def parse_start(text: str) -> float:
    """--start: an ISO 8601 date-time (UTC when it names no offset) as epoch seconds."""
    try:
        when = datetime.fromisoformat(text)
    except ValueError:
        raise CatalogError(f"--start {text!r}: not an ISO 8601 date-time; e.g. {DEFAULT_START}") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=timezone.utc)
    return when.timestamp()


def _iso(epoch_hour) -> str:
    return datetime.fromtimestamp(int(epoch_hour) * 3600, timezone.utc).strftime("%Y-%m-%dT%H:%MZ")


@dataclass(frozen=True, slots=True)
class HourlySeries:
    first_hour: int  # epoch hours (UTC) of values[0]
    values: np.ndarray  # gCO2e/kWh, one per hour
    origin: str  # the files, for messages


def _zone_files(directory: Path) -> dict[str, list[Path]]:
    """Zone id -> its *_hourly.csv files, from each file's first data row (file names need not match)."""
    out: dict[str, list[Path]] = {}
    for path in sorted(directory.glob("*_hourly.csv")):
        with open(path, newline="", encoding="utf-8-sig") as f:
            row = next(csv.DictReader(f), None)
        if row is None or ZONE_COLUMN not in row:
            raise CatalogError(f"{path}: no '{ZONE_COLUMN}' column or no rows; expected the Electricity Maps hourly format")
        out.setdefault(row[ZONE_COLUMN], []).append(path)
    return out


def load_series(paths: list[Path]) -> HourlySeries:
    hours: list[int] = []
    values: list[float] = []
    for path in paths:
        with open(path, newline="", encoding="utf-8-sig") as f:
            reader = csv.DictReader(f)
            missing = {TIME_COLUMN, INTENSITY_COLUMN} - set(reader.fieldnames or ())
            if missing:
                raise CatalogError(f"{path}:1: missing column(s) {', '.join(sorted(missing))}")
            for line, row in enumerate(reader, start=2):
                try:
                    when = datetime.fromisoformat(row[TIME_COLUMN]).replace(tzinfo=timezone.utc)
                    value = float(row[INTENSITY_COLUMN])
                except (TypeError, ValueError):
                    raise CatalogError(f"{path}:{line}: field '{TIME_COLUMN}' or '{INTENSITY_COLUMN}': "
                                       f"{row[TIME_COLUMN]!r}, {row[INTENSITY_COLUMN]!r} is not a time and a number") from None
                hours.append(int(when.timestamp()) // 3600)
                values.append(value)
    order = np.argsort(hours, kind="stable")
    h = np.asarray(hours, dtype=np.int64)[order]
    gaps = np.flatnonzero(np.diff(h) != 1)
    origin = ", ".join(str(p) for p in paths)
    if len(gaps):
        raise CatalogError(f"{origin}: hours must follow one another; {_iso(h[gaps[0]])} is followed by "
                           f"{_iso(h[gaps[0] + 1])} (a gap or a repeated hour)")
    return HourlySeries(int(h[0]), np.asarray(values, dtype=np.float64)[order], origin)


@dataclass
class CarbonModel:
    """Where a run's energy meets the grid: the calendar and, optionally, hourly data."""

    start: str = DEFAULT_START  # trace time 0 as a date-time
    hourly_dir: str | None = None  # Electricity Maps hourly files; None: the static table only
    _series: dict[str, HourlySeries | None] = field(default_factory=dict, repr=False)
    _files: dict[str, list[Path]] | None = field(default=None, repr=False)

    @property
    def start_epoch(self) -> float:
        return parse_start(self.start)

    def check(self) -> None:
        self.start_epoch
        if self.hourly_dir is not None and not Path(self.hourly_dir).is_dir():
            raise CatalogError(f"--carbon-data {self.hourly_dir}: no such directory; give the folder of "
                               "*_hourly.csv files (e.g. ../shared/data/carbon/hourly)")

    def series(self, region: str | None) -> HourlySeries | None:
        """The hourly series of the region's zone, if hourly data was given and has the zone."""
        zone = REGION_ZONE.get(region or "")
        if self.hourly_dir is None or zone is None:
            return None
        if zone not in self._series:
            if self._files is None:
                self.check()
                self._files = _zone_files(Path(self.hourly_dir))
            paths = self._files.get(zone)
            self._series[zone] = load_series(paths) if paths else None
        return self._series[zone]

    def intensity(self, region: str | None, epoch_hours: np.ndarray) -> np.ndarray | None:
        """gCO2e/kWh of the region at each hour: hourly data, else the static figure; None if neither."""
        s = self.series(region)
        if s is not None:
            k = epoch_hours - s.first_hour
            if k.min() < 0 or k.max() >= len(s.values):
                raise CatalogError(
                    f"region {region}: the run needs carbon intensity from {_iso(epoch_hours.min())} to "
                    f"{_iso(epoch_hours.max())} but {s.origin} covers {_iso(s.first_hour)} to "
                    f"{_iso(s.first_hour + len(s.values) - 1)}; move --start or shorten the run (--until)")
            return s.values[k]
        static = REGION_STATIC.get(region or "")
        return None if static is None else np.full(len(epoch_hours), static)
