"""Catalog files: the embedded default (default.yaml), YAML files in its format, and vms.csv."""

from __future__ import annotations

from functools import cache
from importlib.resources import files
from pathlib import Path

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator
from pydantic.alias_generators import to_camel

from altostrat.catalog.catalog import Catalog, CatalogError, InstanceType
from altostrat.catalog.vms_csv import load_vms_csv

DEFAULT = "default.yaml"


class _Model(BaseModel):
    model_config = ConfigDict(alias_generator=to_camel, populate_by_name=True, extra="forbid", frozen=True)


class _Entry(_Model):
    cloud: str = Field(min_length=1)
    name: str = Field(min_length=1)
    region: str = Field(min_length=1)
    vcpus: int = Field(ge=1)
    memory_gib: float = Field(gt=0)
    gpu: str | None = Field(default=None, min_length=1, description="normalised GPU model; none for CPU-only types")
    gpu_count: int = Field(default=0, ge=0)
    gpu_memory_gib: float | None = Field(default=None, gt=0)
    price_hr: float = Field(gt=0, description="USD per hour, on-demand")
    spot_price_hr: float | None = Field(default=None, gt=0)
    source: str = Field(min_length=1, description="a key of `sources`")

    @model_validator(mode="after")
    def _consistent(self):
        if (self.gpu is None) != (self.gpu_count == 0):
            raise ValueError("give gpu and gpuCount together (a CPU-only type has neither)")
        if self.spot_price_hr is not None and self.spot_price_hr > self.price_hr:
            raise ValueError(f"spotPriceHr {self.spot_price_hr} is above priceHr {self.price_hr}; check the source")
        return self


class _CatalogFile(_Model):
    sources: dict[str, str] = Field(min_length=1, description="key -> where the figures come from")
    instance_types: list[_Entry] = Field(min_length=1)

    @model_validator(mode="after")
    def _known_sources(self):
        for i, e in enumerate(self.instance_types):
            if e.source not in self.sources:
                raise ValueError(f"instanceTypes[{i}] ({e.name}): source {e.source!r} is not a key of sources "
                                 f"({', '.join(self.sources)})")
        return self


def _where(loc: tuple) -> str:
    return "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc).lstrip(".")


def parse_yaml_catalog(text: str, origin: str) -> Catalog:
    try:
        raw = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise CatalogError(f"{origin}: not valid YAML: {exc}") from None
    try:
        doc = _CatalogFile.model_validate(raw)
    except ValidationError as exc:
        lines = [f"  {_where(e['loc'])}: {e['msg']}" for e in exc.errors()]
        raise CatalogError(f"{origin}: invalid catalog:\n" + "\n".join(lines)) from None
    return Catalog(
        (InstanceType(e.cloud, e.name, e.region, e.vcpus, e.memory_gib, e.gpu, e.gpu_count, e.gpu_memory_gib,
                      e.price_hr, e.spot_price_hr, doc.sources[e.source]) for e in doc.instance_types),
        origin,
    )


@cache
def default_catalog() -> Catalog:
    """The catalog embedded in the package, so that a default run needs no data files."""
    return parse_yaml_catalog((files("altostrat.catalog") / DEFAULT).read_text(encoding="utf-8"), f"altostrat/catalog/{DEFAULT}")


def load_catalog(path: str | Path | None = None) -> Catalog:
    """The default catalog, or one read from a vms.csv-format .csv or a default.yaml-format .yaml file."""
    if path is None:
        return default_catalog()
    path = Path(path)
    if path.suffix == ".csv":
        return load_vms_csv(path)
    if path.suffix not in (".yaml", ".yml"):
        raise CatalogError(f"{path}: a catalog is a .csv file in the vms.csv format or a .yaml file like the default")
    if not path.is_file():
        raise CatalogError(f"{path}: no such file")
    return parse_yaml_catalog(path.read_text(encoding="utf-8"), str(path))
