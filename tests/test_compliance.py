"""The risk score R(x) and the jurisdiction table behind it."""

import pytest

from altostrat.catalog.regions import JURISDICTIONS, jurisdiction
from altostrat.compliance import RISK_WEIGHTS, Place, risk, risk_factors


@pytest.mark.parametrize("region, code", [
    ("us-east-1", "US"), ("eastus", "US"), ("us-central1", "US"), ("eu-west-1", "EU"), ("europe-west4", "EU"),
    ("eu-west-2", "GB"), ("europe-west2", "GB"), ("eu-central-2", "CH"), ("West Europe", "EU"),
    ("ap-northeast-1", "JP"), ("asia-northeast-1", "JP"), ("northamerica-northeast1", "CA"), ("mars-1", None), (None, None),
])
def test_jurisdiction_of_regions(region, code):
    assert jurisdiction(region) == code


def test_every_code_is_listed():
    assert {"US", "EU", "GB", "CH", "JP", "CA"} <= JURISDICTIONS


def test_risk_adds_the_factors_that_hold():
    assert risk(None, Place("us-east-1")) == 0
    assert risk("eu-west-1", Place("europe-west4")) == 0  # same jurisdiction, another cloud
    assert risk_factors("eu-west-1", Place("us-east-1", spot=True)) == ["data_leaves_jurisdiction", "spot"]
    assert risk("eu-west-1", Place("us-east-1", spot=True)) == pytest.approx(0.7)
    assert risk(None, Place("mars-1", shared=True)) == pytest.approx(RISK_WEIGHTS["unknown_jurisdiction"] + 0.1)
    everything = risk("eu-west-1", Place("mars-1", spot=True, shared=True))
    assert everything == 1.0  # capped
