"""Data transfer between cloud regions: egress prices, transfer time, and the cheapest way to
move a job's dataset to where the job runs.

docs/economics.md ("Data transfer") explains the model. Prices are USD per GB (10^9 bytes)
leaving the source; ingress is free on AWS, GCP and Azure. Without `data_dir` an embedded
table prices every move; with it, the provider matrices (../shared/data/network, rows =
source region, header = destination) price the pairs they list and the table the rest.
"""

from __future__ import annotations

import csv
import math
import re
from dataclasses import dataclass, field
from pathlib import Path

from altostrat.catalog.catalog import CatalogError
from altostrat.catalog.regions import jurisdiction

DEFAULT_BANDWIDTH_GBPS = 10.0
BITS_PER_BYTE = 8.0
GB_PER_GIB = 1.073741824
MATRIX_GLOB = "*_transmission_cost_matrix.csv"

# Internet egress, USD per GB, the first tier above the free allowance from North American and
# European regions: what moving data to another cloud costs.
# - AWS: $0.09/GB, "Data Transfer OUT From Amazon EC2 To Internet", first 10 TB/month
#   (aws.amazon.com/ec2/pricing/on-demand).
# - GCP: $0.12 per GiB, Premium Tier internet data transfer out, 1 GiB to 1 TiB/month
#   (cloud.google.com/vpc/network-pricing); per GB that is 0.12 / 1.0737.
# - Azure: $0.087/GB, internet egress routed over the Microsoft premium global network from
#   zone 1 (North America, Europe), 100 GB to 10 TB/month (azure.microsoft.com/pricing/details/bandwidth);
#   a 2024 list price.
INTERNET_EGRESS: dict[str, float] = {"aws": 0.09, "gcp": 0.12 / GB_PER_GIB, "azure": 0.087}

# Same-cloud inter-region, USD per GB, by the source region's continent:
# (to a region on the same continent, to another continent).
# - AWS charges by source region only (EC2 pricing page, "Data Transfer to other AWS regions"):
#   $0.02 from US, Canada and Europe, $0.09 from Tokyo and Singapore (Seoul 0.08, Mumbai 0.086,
#   Sydney 0.098), $0.138 from São Paulo, $0.147 from Cape Town; the rows of the shared aws matrix.
# - GCP (network pricing page, "Data transfer between regions"): $0.02 within North America or
#   within Europe, $0.05 between them, $0.08 from Asia, $0.14 from South America, $0.11 from
#   Africa and the Middle East; the columns of the shared gcp matrix.
# - Azure (bandwidth pricing page, "Data transfer between Azure regions"): $0.02 within North
#   America or within Europe, $0.05 from there to another continent, $0.08 from Asia and the
#   Middle East, $0.16 from South America and Africa; the rows of the shared azure matrix.
INTER_REGION: dict[str, dict[str, tuple[float, float]]] = {
    "aws": {"NA": (0.02, 0.02), "EU": (0.02, 0.02), "AP": (0.09, 0.09), "SA": (0.138, 0.138), "AF": (0.147, 0.147)},
    "gcp": {"NA": (0.02, 0.05), "EU": (0.02, 0.05), "AP": (0.08, 0.08), "SA": (0.14, 0.14), "AF": (0.11, 0.11),
            "ME": (0.11, 0.11)},
    "azure": {"NA": (0.02, 0.05), "EU": (0.02, 0.05), "AP": (0.08, 0.08), "SA": (0.16, 0.16), "AF": (0.16, 0.16),
              "ME": (0.08, 0.08)},
}
# A region the table cannot place on a continent (or a continent it lacks) pays the cloud's
# price from North America to another continent.
DEFAULT_INTER_REGION: dict[str, float] = {cloud: rows["NA"][1] for cloud, rows in INTER_REGION.items()}

# Jurisdiction code (catalog/regions.py) -> continent, as the price lists group regions.
CONTINENT: dict[str, str] = {
    **dict.fromkeys(("US", "CA", "MX"), "NA"),
    **dict.fromkeys(("EU", "GB", "CH", "NO"), "EU"),
    **dict.fromkeys(("JP", "KR", "SG", "HK", "TW", "IN", "ID", "AU"), "AP"),
    **dict.fromkeys(("BR", "CL"), "SA"),
    "ZA": "AF",
    **dict.fromkeys(("AE", "BH", "QA", "SA", "IL"), "ME"),
}

# How each cloud spells its regions, for a dataset that names only its region.
_AWS = re.compile(r"[a-z]{2}(-gov)?-[a-z]+-\d+(-[a-z]+-\d+)?")  # us-east-1; Local Zones: us-east-1-dwf-1
_GCP = re.compile(r"[a-z]+-[a-z]+\d+")  # us-east1, europe-west4
_AZURE = re.compile(r"[a-z]+\d*")  # eastus2, westeurope ("West Europe" once spaces go)

Place = tuple[str | None, str]  # (cloud, region key)


def region_key(region: str) -> str:
    """Regions compare without spaces or case: the azure matrix's "East US 2" is eastus2."""
    return region.replace(" ", "").lower()


@dataclass(frozen=True, slots=True)
class Route:
    hops: tuple[Place, ...]  # source, optionally one relay region of the source cloud, destination
    usd_per_gb: float


@dataclass(frozen=True, slots=True)
class Transfer:
    gb_moved: float  # over the wire (after compression)
    usd: float
    seconds: float  # before the job's work can start
    route: Route
    compressed: bool


@dataclass(frozen=True, slots=True)
class _Choice:
    """The best way to move one GB between two places; every option scales linearly with size."""

    route: Route
    compressed: bool
    wire_per_gb: float
    usd_per_gb: float
    s_per_gb: float


def parse_compression(text: str) -> tuple[float, float]:
    """--compression RATIO:CPU_S_PER_GB, e.g. 3:20."""
    ratio, sep, cpu = text.partition(":")
    try:
        if not sep:
            raise ValueError
        return float(ratio), float(cpu)
    except ValueError:
        raise CatalogError(f"--compression {text!r}: give RATIO:CPU_S_PER_GB, e.g. 3:20 (data shrinks 3x; "
                           "compressing and decompressing cost 20 s per GB)") from None


def load_matrices(directory: str | Path) -> dict[str, dict[tuple[str, str], float]]:
    """cloud -> {(source key, destination key): USD per GB} from the folder's *_transmission_cost_matrix.csv."""
    folder = Path(directory)
    if not folder.is_dir():
        raise CatalogError(f"--network-data {directory}: no such directory; give the folder of {MATRIX_GLOB} "
                           "files (e.g. ../shared/data/network)")
    paths = sorted(folder.glob(MATRIX_GLOB))
    if not paths:
        raise CatalogError(f"--network-data {directory}: no {MATRIX_GLOB} files; name each "
                           "<cloud>_transmission_cost_matrix.csv (aws, gcp, azure)")
    return {p.name.split("_transmission_cost_matrix")[0].lower(): _read_matrix(p) for p in paths}


def _read_matrix(path: Path) -> dict[tuple[str, str], float]:
    with open(path, newline="", encoding="utf-8-sig") as f:
        rows = list(csv.reader(f))
    if not rows or len(rows[0]) < 2:
        raise CatalogError(f"{path}:1: expected a header row ',REGION,REGION,…' (first cell empty, then destinations)")
    dests = [region_key(r) for r in rows[0][1:]]
    out: dict[tuple[str, str], float] = {}
    for line, row in enumerate(rows[1:], start=2):
        if not row:
            continue
        if len(row) != len(dests) + 1:
            raise CatalogError(f"{path}:{line}: {len(row)} fields, expected {len(dests) + 1} (the source region, "
                               "then one price per destination in the header)")
        src = region_key(row[0])
        for dst, cell in zip(dests, row[1:]):
            try:
                usd = float(cell)
            except ValueError:
                usd = math.nan
            if not (usd >= 0 and math.isfinite(usd)):
                raise CatalogError(f"{path}:{line}: price from {row[0]} to {dst} is {cell!r}; "
                                   "give USD per GB as a number >= 0")
            out[(src, dst)] = usd
    if not out:
        raise CatalogError(f"{path}: no rows below the header")
    return out


@dataclass
class NetworkModel:
    """Egress prices and transfer options for a run.

    `bandwidth_gbps`: Gbit/s one job's transfer gets. `ratio`/`cpu_s_per_gb`: optional
    compression (size divided by ratio; wall seconds of compressing and decompressing per GB
    of raw data, on the job's critical path). `time_value_usd_per_h`: what an hour of waiting
    for data is worth against dollars of egress when choosing how to move it (0: cost only).
    """

    data_dir: str | None = None
    bandwidth_gbps: float = DEFAULT_BANDWIDTH_GBPS
    ratio: float | None = None
    cpu_s_per_gb: float = 0.0
    time_value_usd_per_h: float = 0.0
    _matrix: dict[str, dict[tuple[str, str], float]] = field(default_factory=dict, repr=False)
    _regions: dict[str, tuple[str, ...]] = field(default_factory=dict, repr=False)  # cloud -> matrix regions
    _choices: dict[tuple[Place, Place], _Choice] = field(default_factory=dict, repr=False)

    def __post_init__(self) -> None:
        if not (self.bandwidth_gbps > 0 and math.isfinite(self.bandwidth_gbps)):
            raise CatalogError(f"--bandwidth-gbps {self.bandwidth_gbps}: give Gbit/s per job as a number > 0, e.g. 10")
        if self.ratio is not None and not (self.ratio >= 1 and math.isfinite(self.ratio)):
            raise CatalogError(f"--compression ratio {self.ratio}: give how many times smaller the data gets, >= 1")
        if not (self.cpu_s_per_gb >= 0 and math.isfinite(self.cpu_s_per_gb)):
            raise CatalogError(f"--compression CPU seconds per GB {self.cpu_s_per_gb}: give a number >= 0")
        if not (self.time_value_usd_per_h >= 0 and math.isfinite(self.time_value_usd_per_h)):
            raise CatalogError(f"--transfer-time-value {self.time_value_usd_per_h}: give USD per hour >= 0")
        if self.data_dir is not None:
            self._matrix = load_matrices(self.data_dir)
            self._regions = {cloud: tuple(sorted({s for s, _ in m})) for cloud, m in self._matrix.items()}

    @classmethod
    def from_options(cls, data_dir: str | None = None, bandwidth_gbps: float = DEFAULT_BANDWIDTH_GBPS,
                     compression: str | None = None, time_value_usd_per_h: float = 0.0) -> NetworkModel:
        """The model the CLI options describe (`compression` as RATIO:CPU_S_PER_GB)."""
        ratio, cpu = parse_compression(compression) if compression is not None else (None, 0.0)
        return cls(data_dir, bandwidth_gbps, ratio, cpu, time_value_usd_per_h)

    # -- where a region is ------------------------------------------------------------------
    def cloud_of(self, region: str) -> str | None:
        """The cloud a region belongs to: a loaded matrix that lists it, else how its name is spelt."""
        key = region_key(region)
        for cloud, regions in self._regions.items():
            if key in regions:
                return cloud
        if _AWS.fullmatch(key):
            return "aws"
        if _GCP.fullmatch(key):
            return "gcp"
        if _AZURE.fullmatch(key) and jurisdiction(key) is not None:
            return "azure"
        return None

    def place(self, cloud: str | None, region: str) -> Place:
        return (cloud.lower() if cloud else self.cloud_of(region)), region_key(region)

    def check_jobs(self, jobs) -> None:
        """Every dataset's region must belong to a cloud with egress prices, before the run."""
        for job in jobs:
            if job.dataset_gb and job.data_region is not None:
                self.check_source(job.data_region, f"job {job.id!r}")

    def check_source(self, region: str, who: str) -> None:
        """A dataset in `region` must be on a cloud with egress prices; the error names `who`."""
        if self.cloud_of(region) not in INTERNET_EGRESS:
            raise CatalogError(f"{who}: dataset region {region!r} is not a region of {', '.join(INTERNET_EGRESS)} "
                               "that the network model knows; name one such as us-east-1, us-central1 or eastus")

    # -- prices -----------------------------------------------------------------------------
    def egress_usd_per_gb(self, src_cloud: str | None, src_region: str, dst_cloud: str | None, dst_region: str) -> float:
        """USD per GB moved from one region to another; a cloud of None is told from the region's name.

        Same region: 0. Another cloud (or one not known): the source cloud's internet egress.
        Same cloud: the loaded matrix, else INTER_REGION by continent, else DEFAULT_INTER_REGION.
        """
        return self._price(self.place(src_cloud, src_region), self.place(dst_cloud, dst_region))

    def _price(self, src: Place, dst: Place) -> float:
        cloud = src[0]
        if cloud is None:
            raise CatalogError(f"region {src[1]!r}: cannot tell which cloud it belongs to; name its cloud")
        if src == dst:
            return 0.0
        if dst[0] != cloud:
            usd = INTERNET_EGRESS.get(cloud)
            if usd is None:
                raise CatalogError(f"cloud {cloud!r} has no internet egress price; known: {', '.join(INTERNET_EGRESS)}")
            return usd
        usd = self._matrix.get(cloud, {}).get((src[1], dst[1]))
        if usd is not None:
            return usd
        table = INTER_REGION.get(cloud)
        if table is None:
            raise CatalogError(f"cloud {cloud!r} has no inter-region prices; known: {', '.join(INTER_REGION)}")
        here, there = _continent(src[1]), _continent(dst[1])
        if here in table and there is not None:
            return table[here][0 if here == there else 1]
        return DEFAULT_INTER_REGION[cloud]

    def cheapest_route(self, src: Place, dst: Place) -> Route:
        """Direct, or through one region of the source cloud when that costs less per GB.

        Relay candidates are the regions of the source cloud's loaded matrix: the embedded
        table prices by continent only, so a relay never undercuts a direct move under it.
        """
        best = Route((src, dst), self._price(src, dst))
        for relay in self._regions.get(src[0], ()):
            hop = (src[0], relay)
            if hop == src or hop == dst:
                continue
            usd = self._price(src, hop) + self._price(hop, dst)
            if usd < best.usd_per_gb:
                best = Route((src, hop, dst), usd)
        return best

    # -- moving a job's dataset ---------------------------------------------------------------
    def plan_transfer(self, job, node) -> Transfer | None:
        """How the job's dataset reaches the node's region, or None when nothing moves (no dataset,
        or a node in the data's region, or a node whose region is not known)."""
        if not job.dataset_gb or job.data_region is None or node.region is None:
            return None
        choice = self._choice(job.data_region, node.cloud, node.region)
        if choice is None:
            return None
        gb = job.dataset_gb
        return Transfer(gb * choice.wire_per_gb, gb * choice.usd_per_gb, gb * choice.s_per_gb, choice.route,
                        choice.compressed)

    def move_per_gb(self, src_region: str, dst_cloud: str | None, dst_region: str) -> tuple[float, float]:
        """(USD, seconds) per GB of a dataset in `src_region` moved to `dst_region` of `dst_cloud`,
        as plan_transfer moves it; (0, 0) when nothing moves."""
        choice = self._choice(src_region, dst_cloud, dst_region)
        return (0.0, 0.0) if choice is None else (choice.usd_per_gb, choice.s_per_gb)

    def _choice(self, src_region: str, dst_cloud: str | None, dst_region: str) -> _Choice | None:
        src, dst = self.place(None, src_region), self.place(dst_cloud, dst_region)
        if src == dst:
            return None
        choice = self._choices.get((src, dst))
        if choice is None:
            choice = self._choices[(src, dst)] = self._choose(src, dst)
        return choice

    def _choose(self, src: Place, dst: Place) -> _Choice:
        """Least usd + time value over direct / relay, each raw or compressed (ties: fewer hops, raw)."""
        direct = Route((src, dst), self._price(src, dst))
        cheapest = self.cheapest_route(src, dst)
        routes = (direct,) if cheapest == direct else (direct, cheapest)
        wire_s = BITS_PER_BYTE / self.bandwidth_gbps  # seconds per GB per hop
        best, best_score = None, math.inf
        for route in routes:
            hops = len(route.hops) - 1  # a relay stores and forwards: each hop moves the data in full
            for compressed in (False, True) if self.ratio else (False,):
                wire = 1.0 / self.ratio if compressed else 1.0
                usd = route.usd_per_gb * wire
                seconds = hops * wire * wire_s + (self.cpu_s_per_gb if compressed else 0.0)
                score = usd + self.time_value_usd_per_h * seconds / 3600.0
                if score < best_score:
                    best, best_score = _Choice(route, compressed, wire, usd, seconds), score
        return best

    def seconds_for(self, job, node) -> float:
        """PolicyContext.transfer_s: seconds before the job's work starts on `node`."""
        t = self.plan_transfer(job, node)
        return 0.0 if t is None else t.seconds

    def egress_usd(self, job, node) -> float:
        """PolicyContext.egress_usd: dollars one start of the job on `node` spends moving its data."""
        t = self.plan_transfer(job, node)
        return 0.0 if t is None else t.usd


def _continent(key: str) -> str | None:
    return CONTINENT.get(jurisdiction(key) or "")
