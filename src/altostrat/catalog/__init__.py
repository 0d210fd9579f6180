"""Cloud instance types and their prices: the embedded default catalog and vms.csv files."""

from altostrat.catalog.catalog import DEFAULT_RESERVED_DISCOUNT, LIFECYCLES, Catalog, CatalogError, InstanceType
from altostrat.catalog.load import default_catalog, load_catalog

__all__ = ["DEFAULT_RESERVED_DISCOUNT", "LIFECYCLES", "Catalog", "CatalogError", "InstanceType", "default_catalog",
           "load_catalog"]
