"""Catalogs in the multi-cloud `vms.csv` format (../shared/data/catalog/vms.csv).

Columns: Cloud,InstanceType,vCPUs,MemoryGiB,AcceleratorName,AcceleratorCount,GpuMemoryGiB,
Region,Price,SpotPrice; prices in USD per hour. The section names quoted in the comments
below are those of ../shared/data/catalog/SOURCES.md, which describes the file.
"""

from __future__ import annotations

import csv
from collections import Counter
from pathlib import Path

from altostrat.catalog.catalog import Catalog, CatalogError, InstanceType

COLUMNS = ("Cloud", "InstanceType", "vCPUs", "MemoryGiB", "AcceleratorName", "AcceleratorCount", "GpuMemoryGiB",
           "Region", "Price", "SpotPrice")

# "GCP: host + GPU are separate upstream": T4, V100, P100 and P4 rows with an empty
# InstanceType price the GPUs alone. We add an N1 host of 8 vCPUs and 52 GiB per GPU, the
# n1-highmem-(8 x count) machine, priced as count x the region's n1-highmem-8 row: N1
# predefined prices are linear in vCPUs and memory, so this is the list price of the real
# machine (e.g. n1-highmem-64 = 8 x n1-highmem-8). Spot = host spot + GPU spot.
N1_GPUS = frozenset({"T4", "V100", "P100", "P4"})
N1_HOST = "n1-highmem-8"
N1_HOST_VCPUS, N1_HOST_MEMORY_GIB = 8, 52

# Same name, same GPU: A3 Mega VMs carry H100 80GB (they differ in networking).
GPU_ALIASES = {"H100-MEGA": "H100"}

# "Known upstream oddities": Azure Standard_ND96isr_H100_v5 has AcceleratorCount 12
# upstream; the VM has 8 H100.
COUNT_CORRECTIONS = {("azure", "Standard_ND96isr_H100_v5"): 8}

# Spot above on-demand by no more than rounding (aws g5.48xlarge ap-northeast-2:
# 20.0281 vs 20.02809) is spot capped at on-demand; anything more is not a price.
SPOT_ROUNDING = 1e-4

# What the loader left out or corrected, as reported by Catalog.adjusted.
EXCLUDED_TPU = "left out: TPU slices (no vCPUs or memory given; the simulator models GPU nodes)"
EXCLUDED_GPU_ONLY = "left out: GCP GPU-only prices with no host machine (B200: no a4-highgpu-8g host upstream)"
BAD_SPOT = "corrected: spot price above on-demand, an upstream error; spot set to unknown"
BAD_COUNT = "corrected: Standard_ND96isr_H100_v5 has 8 H100, not 12"


def _number(text: str, where: str, field: str, kind: type, required: bool, positive: bool = True):
    text = text.strip()
    if not text:
        if required:
            raise CatalogError(f"{where}: field {field!r}: empty; give a number")
        return None
    try:
        value = kind(text)
    except ValueError:
        raise CatalogError(f"{where}: field {field!r}: {text!r} is not a{'' if kind is float else ' whole'} number") from None
    if value < 0 or (positive and value == 0) or value != value:
        raise CatalogError(f"{where}: field {field!r}: {text!r} must be {'> 0' if positive else '>= 0'}")
    return value


def load_vms_csv(path: str | Path) -> Catalog:
    path = Path(path)
    if not path.is_file():
        raise CatalogError(f"{path}: no such file")
    adjusted: Counter = Counter()
    types: list[InstanceType] = []
    gpu_only: list[tuple[str, dict]] = []  # (where, row) of GCP accelerator-only rows, joined below
    hosts: dict[str, tuple[str, dict]] = {}  # region -> (where, n1-highmem-8 row)
    with open(path, newline="", encoding="utf-8") as f:
        reader = csv.DictReader(f)
        if tuple(reader.fieldnames or ()) != COLUMNS:
            raise CatalogError(f"{path}:1: header must be {','.join(COLUMNS)} (got {','.join(reader.fieldnames or [])})")
        for line, row in enumerate(reader, start=2):
            where = f"{path}:{line}"
            if None in row or any(v is None for v in row.values()):
                raise CatalogError(f"{where}: expected {len(COLUMNS)} fields; check the commas on this line")
            row = {k: v.strip() for k, v in row.items()}
            for key in ("Cloud", "Region"):
                if not row[key]:
                    raise CatalogError(f"{where}: field {key!r}: empty; every row names its {key.lower()}")
            if row["AcceleratorName"].startswith("tpu-"):
                # also covers "Rows dropped": the tpu-v6e 700.0 placeholder prices
                adjusted[EXCLUDED_TPU] += 1
                continue
            if not row["InstanceType"]:
                if row["Cloud"] != "gcp" or not row["AcceleratorName"]:
                    raise CatalogError(f"{where}: field 'InstanceType': empty; only GCP accelerator-only rows may "
                                       "leave it empty")
                if row["AcceleratorName"] in N1_GPUS:
                    gpu_only.append((where, row))
                else:
                    adjusted[EXCLUDED_GPU_ONLY] += 1
                continue
            if row["Cloud"] == "gcp" and row["InstanceType"] == N1_HOST:
                hosts[row["Region"]] = (where, row)
            types.append(_instance(row, where, adjusted))
    for where, row in gpu_only:
        host = hosts.get(row["Region"])
        if host is None:
            raise CatalogError(f"{where}: GCP {row['AcceleratorName']} row in {row['Region']} needs an N1 host, but the "
                               f"file has no {N1_HOST} row in that region; add one")
        types.append(_with_n1_host(row, where, host))
    return Catalog(types, str(path), dict(adjusted))


def _instance(row: dict, where: str, adjusted: Counter) -> InstanceType:
    accel = row["AcceleratorName"]
    count = _number(row["AcceleratorCount"], where, "AcceleratorCount", int, required=bool(accel))
    if count is not None and not accel:
        raise CatalogError(f"{where}: field 'AcceleratorName': empty on a row with {count} accelerators; name them")
    fixed = COUNT_CORRECTIONS.get((row["Cloud"], row["InstanceType"]))
    if fixed is not None and fixed != count:
        adjusted[BAD_COUNT] += 1
        count = fixed
    price = _number(row["Price"], where, "Price", float, required=True)
    spot = _number(row["SpotPrice"], where, "SpotPrice", float, required=False)
    if spot is not None and spot > price:
        if spot - price > SPOT_ROUNDING:
            adjusted[BAD_SPOT] += 1
            spot = None
        else:
            spot = price
    return InstanceType(
        cloud=row["Cloud"],
        name=row["InstanceType"],
        region=row["Region"],
        vcpus=_number(row["vCPUs"], where, "vCPUs", int, required=True),
        memory_gib=_number(row["MemoryGiB"], where, "MemoryGiB", float, required=True),
        gpu_model=GPU_ALIASES.get(accel, accel) if accel else None,
        gpu_count=count or 0,
        gpu_memory_gib=_number(row["GpuMemoryGiB"], where, "GpuMemoryGiB", float, required=False),
        price_hr=price,
        spot_price_hr=spot,
        source=where,
    )


def _with_n1_host(row: dict, where: str, host: tuple[str, dict]) -> InstanceType:
    host_where, host_row = host
    n = _number(row["AcceleratorCount"], where, "AcceleratorCount", int, required=True)
    gpu_price = _number(row["Price"], where, "Price", float, required=True)
    gpu_spot = _number(row["SpotPrice"], where, "SpotPrice", float, required=False)
    host_price = _number(host_row["Price"], host_where, "Price", float, required=True)
    host_spot = _number(host_row["SpotPrice"], host_where, "SpotPrice", float, required=False)
    model = row["AcceleratorName"]
    return InstanceType(
        cloud="gcp",
        name=f"n1-highmem-{N1_HOST_VCPUS * n}+{n}x{model}",
        region=row["Region"],
        vcpus=N1_HOST_VCPUS * n,
        memory_gib=float(N1_HOST_MEMORY_GIB * n),
        gpu_model=model,
        gpu_count=n,
        gpu_memory_gib=_number(row["GpuMemoryGiB"], where, "GpuMemoryGiB", float, required=False),
        price_hr=round(n * host_price + gpu_price, 6),
        spot_price_hr=None if gpu_spot is None or host_spot is None else round(n * host_spot + gpu_spot, 6),
        source=f"{where} (GPUs) + {n} x {N1_HOST} ({host_where})",
    )
