"""Instance types with their prices, and the catalog that looks them up.

A catalog is read once, at the edge (building a cluster, `altostrat catalog list`); the
simulator only ever sees each node's price per second.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable
from dataclasses import dataclass

LIFECYCLES = ("on-demand", "spot", "reserved")
# GCP's 1-year resource-based committed use discount for most machine types, GPUs included
# (3-year: 55 %); AWS 1-year reserved instances and Azure 1-year reservations are of the same
# order. A pool states its own with `reservedDiscount`.
DEFAULT_RESERVED_DISCOUNT = 0.37


class CatalogError(ValueError):
    """A bad catalog file or an instance type that is not in the catalog; the message names the fix."""


@dataclass(frozen=True, slots=True)
class InstanceType:
    cloud: str
    name: str
    region: str
    vcpus: int
    memory_gib: float
    gpu_model: str | None  # normalised, e.g. V100, A100-80GB, H100; None for CPU-only types
    gpu_count: int
    gpu_memory_gib: float | None  # per GPU; None where the source does not say
    price_hr: float  # USD per hour, on-demand list price
    spot_price_hr: float | None  # USD per hour; None when unknown
    source: str  # where the figures come from

    def price_for(self, lifecycle: str, reserved_discount: float | None = None) -> float:
        """USD per hour under a lifecycle: the spot price, or on-demand less the commitment discount."""
        if lifecycle == "spot":
            if self.spot_price_hr is None:
                raise CatalogError(f"{self.cloud} {self.name} in {self.region} has no spot price in the catalog; "
                                   "use lifecycle on-demand or reserved, or a type with a spot price")
            return self.spot_price_hr
        if lifecycle == "reserved":
            discount = DEFAULT_RESERVED_DISCOUNT if reserved_discount is None else reserved_discount
            return self.price_hr * (1.0 - discount)
        if lifecycle == "on-demand":
            return self.price_hr
        raise CatalogError(f"lifecycle {lifecycle!r}: use one of {', '.join(LIFECYCLES)}")


def _choices(values: Iterable[str]) -> str:
    return ", ".join(sorted(set(values)))


class Catalog:
    """Instance types keyed by (cloud, name, region), with lookups whose errors name the fix."""

    def __init__(self, types: Iterable[InstanceType], origin: str, adjusted: dict[str, int] | None = None) -> None:
        self.types = tuple(types)
        self.origin = origin  # the file it was read from, for messages
        self.adjusted = dict(adjusted or {})  # reason -> rows the loader left out or corrected
        self._by_name: dict[str, list[InstanceType]] = {}
        seen: dict[tuple[str, str, str], InstanceType] = {}
        for it in self.types:
            key = (it.cloud, it.name, it.region)
            if key in seen:
                raise CatalogError(f"{origin}: {it.cloud} {it.name} in {it.region} is listed twice "
                                   f"({seen[key].source} and {it.source}); keep one")
            seen[key] = it
            self._by_name.setdefault(it.name, []).append(it)
        self._gpu_names = {it.gpu_model.casefold(): it.gpu_model for it in self.types if it.gpu_model}

    def __len__(self) -> int:
        return len(self.types)

    def __iter__(self):
        return iter(self.types)

    def get(self, name: str, region: str | None = None, cloud: str | None = None) -> InstanceType:
        """One instance type; region and cloud may be left out where only one offering matches."""
        offers = self._by_name.get(name)
        if not offers:
            close = difflib.get_close_matches(name, self._by_name, n=5, cutoff=0.6)
            hint = f"; did you mean {', '.join(close)}?" if close else "; `altostrat catalog list` shows every type"
            raise CatalogError(f"instance type {name!r} is not in the catalog ({self.origin}){hint}")
        offers = _narrow(offers, "cloud", cloud, f"instance type {name!r} is not offered on {cloud}; it is on: ")
        offers = _narrow(offers, "region", region,
                         f"instance type {name!r} is not offered in region {region!r} in the catalog; regions: ")
        if len({it.cloud for it in offers}) > 1:
            raise CatalogError(f"instance type {name!r} is offered on several clouds; set cloud to one of: "
                               f"{_choices(it.cloud for it in offers)}")
        if len(offers) > 1:
            raise CatalogError(f"instance type {name!r} is offered in {len(offers)} regions; set region to one of: "
                               f"{_choices(it.region for it in offers)}")
        return offers[0]

    def find(self, cloud: str | None = None, region: str | None = None, gpu_model: str | None = None) -> list[InstanceType]:
        """Types matching every filter given; a filter value the catalog never uses is an error.

        `gpu_model` matches case-insensitively; "cpu" selects the CPU-only types.
        """
        if cloud is not None and cloud not in {it.cloud for it in self.types}:
            raise CatalogError(f"cloud {cloud!r} is not in the catalog; clouds: {_choices(it.cloud for it in self.types)}")
        if region is not None and region not in {it.region for it in self.types}:
            close = difflib.get_close_matches(region, {it.region for it in self.types}, n=5)
            hint = f"; did you mean {', '.join(close)}?" if close else ""
            raise CatalogError(f"region {region!r} is not in the catalog{hint}")
        want_cpu = gpu_model is not None and gpu_model.casefold() == "cpu"
        model = None
        if gpu_model is not None and not want_cpu:
            model = self._gpu_names.get(gpu_model.casefold())
            if model is None:
                close = difflib.get_close_matches(gpu_model, self._gpu_names.values(), n=5, cutoff=0.5)
                hint = f"did you mean {', '.join(close)}?" if close else f"models: {_choices(self._gpu_names.values())}"
                raise CatalogError(f"GPU model {gpu_model!r} is not in the catalog; {hint} (or 'cpu' for CPU-only types)")
        return [
            it for it in self.types
            if (cloud is None or it.cloud == cloud)
            and (region is None or it.region == region)
            and (gpu_model is None or (it.gpu_model is None if want_cpu else it.gpu_model == model))
        ]


def _narrow(offers: list[InstanceType], attr: str, wanted: str | None, problem: str) -> list[InstanceType]:
    """The offers whose `attr` is `wanted` (all when it is None); none left is an error listing the choices."""
    if wanted is None:
        return offers
    matching = [it for it in offers if getattr(it, attr) == wanted]
    if not matching:
        raise CatalogError(problem + _choices(getattr(it, attr) for it in offers))
    return matching
