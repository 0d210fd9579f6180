"""Which jurisdiction a cloud region lies in, for data-residency rules.

Codes are ISO 3166 country codes, except "EU" for the member states of the European Union
(one data-protection regime). Regions are matched by their provider's published location:
AWS and GCP names carry a geography prefix, Azure names are spelt out (e.g. westeurope).
"""

from __future__ import annotations

# Exact names first (they override a prefix), then prefixes, longest first.
_EXACT: dict[str, str] = {
    # AWS
    "ap-east-1": "HK", "ap-northeast-1": "JP", "ap-northeast-2": "KR", "ap-northeast-3": "JP",
    "ap-south-1": "IN", "ap-southeast-1": "SG", "ap-southeast-2": "AU", "ap-southeast-3": "ID",
    "eu-west-2": "GB", "eu-central-2": "CH", "me-central-1": "AE", "me-south-1": "BH",
    "af-south-1": "ZA", "ca-central-1": "CA", "sa-east-1": "BR",
    # GCP
    "asia-east1": "TW", "asia-east2": "HK", "asia-northeast1": "JP", "asia-northeast2": "JP",
    "asia-northeast3": "KR", "asia-south1": "IN", "asia-south2": "IN", "asia-southeast1": "SG",
    "asia-southeast2": "ID", "europe-west2": "GB", "europe-west6": "CH",
    "me-central1": "QA", "me-central2": "SA", "me-west1": "IL", "africa-south1": "ZA",
    "northamerica-south1": "MX", "southamerica-east1": "BR", "southamerica-west1": "CL",
    # Lambda
    "asia-northeast-1": "JP", "asia-northeast-2": "KR", "asia-south-1": "IN", "me-west-1": "IL",
    # Azure
    "uksouth": "GB", "ukwest": "GB", "switzerlandnorth": "CH", "japaneast": "JP", "japanwest": "JP",
    "koreacentral": "KR", "southeastasia": "SG", "eastasia": "HK", "australiaeast": "AU",
    "centralindia": "IN", "brazilsouth": "BR", "canadacentral": "CA", "southafricanorth": "ZA",
    "norwayeast": "NO",
}
_PREFIX: tuple[tuple[str, str], ...] = (
    ("northamerica-", "CA"), ("australia-", "AU"),
    ("us-", "US"), ("eu-", "EU"), ("europe-", "EU"),
    # Azure's US regions are spelt out
    ("eastus", "US"), ("westus", "US"), ("centralus", "US"), ("northcentralus", "US"),
    ("southcentralus", "US"), ("westcentralus", "US"),
    ("westeurope", "EU"), ("northeurope", "EU"), ("francecentral", "EU"), ("germanywestcentral", "EU"),
    ("swedencentral", "EU"), ("italynorth", "EU"), ("spaincentral", "EU"), ("polandcentral", "EU"),
)

JURISDICTIONS = frozenset(_EXACT.values()) | {code for _, code in _PREFIX}


def jurisdiction(region: str | None) -> str | None:
    """The jurisdiction code of a region, or None when the region is unknown or not given."""
    if region is None:
        return None
    key = region.replace(" ", "").lower()  # "West Europe" as the network matrices spell it
    found = _EXACT.get(key)
    if found is not None:
        return found
    for prefix, code in _PREFIX:
        if key.startswith(prefix):
            return code
    return None
