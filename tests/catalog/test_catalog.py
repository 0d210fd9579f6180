"""The embedded catalog, lookups and prices. Expected figures are read off vms.csv by hand."""

import pytest

from altostrat.catalog import DEFAULT_RESERVED_DISCOUNT, CatalogError, default_catalog, load_catalog
from altostrat.catalog.load import parse_yaml_catalog

PHILLY_NODE = "n1-highmem-64+8xP100"  # the one entry that is not a row of vms.csv


def test_the_embedded_catalog_covers_three_clouds_with_gpu_and_cpu_types():
    cat = default_catalog()
    assert 30 <= len(cat) <= 45
    assert {it.cloud for it in cat} == {"aws", "gcp", "azure"}
    assert {"V100", "P100", "K80", "A100", "A100-80GB", "H100", "L4", "T4", "A10G"} <= {it.gpu_model for it in cat}
    assert {it.cloud for it in cat.find(gpu_model="cpu")} == {"aws", "gcp", "azure"}
    for it in cat:
        assert len(it.source) > 40 and ("skypilot-catalog" in it.source), it
        assert it.spot_price_hr is None or it.spot_price_hr <= it.price_hr, it


def test_every_embedded_entry_matches_its_vms_csv_row(shared_data):
    vms = load_catalog(shared_data / "catalog" / "vms.csv")
    for it in default_catalog():
        if it.name == PHILLY_NODE:
            continue
        row = vms.get(it.name, it.region, it.cloud)
        assert (it.vcpus, it.memory_gib, it.gpu_model, it.gpu_count, it.price_hr, it.spot_price_hr) == (
            row.vcpus, row.memory_gib, row.gpu_model, row.gpu_count, row.price_hr, row.spot_price_hr), it.name


def test_the_philly_node_is_two_four_p100_machines():
    four = default_catalog().get("n1-highmem-32+4xP100")
    eight = default_catalog().get(PHILLY_NODE)
    assert (eight.vcpus, eight.memory_gib, eight.gpu_count) == (2 * four.vcpus, 2 * four.memory_gib, 8)
    assert eight.price_hr == pytest.approx(2 * four.price_hr) and eight.price_hr == pytest.approx(15.46568)
    assert eight.spot_price_hr == pytest.approx(2 * four.spot_price_hr)
    assert "not a GCP offering" in eight.source


def test_lookups_fill_in_a_unique_region_and_name_the_fix_otherwise(shared_data):
    cat = default_catalog()
    it = cat.get("p3.8xlarge")
    assert (it.cloud, it.region, it.gpu_model, it.gpu_count, it.price_hr, it.spot_price_hr) == (
        "aws", "us-east-1", "V100", 4, 12.24, 1.7535)
    with pytest.raises(CatalogError, match=r"'p3\.8xlarg' is not in the catalog.*did you mean p3\.8xlarge"):
        cat.get("p3.8xlarg")
    with pytest.raises(CatalogError, match="not offered in region 'us-west-2'.*regions: us-east-1"):
        cat.get("p3.8xlarge", region="us-west-2")
    with pytest.raises(CatalogError, match="not offered on gcp; it is on: aws"):
        cat.get("p3.8xlarge", cloud="gcp")
    vms = load_catalog(shared_data / "catalog" / "vms.csv")
    with pytest.raises(CatalogError, match="offered in 11 regions; set region to one of: .*us-east-1"):
        vms.get("p3.8xlarge")


def test_find_filters_and_refuses_values_the_catalog_never_uses():
    cat = default_catalog()
    v100 = cat.find(gpu_model="v100")  # case-insensitive
    assert {(it.cloud, it.name) for it in v100} >= {("aws", "p3.8xlarge"), ("azure", "Standard_NC24s_v3")}
    assert all(it.gpu_model == "V100" for it in v100)
    assert [it.name for it in cat.find(cloud="azure", gpu_model="K80")] == ["Standard_NC24"]
    assert cat.find(cloud="aws", gpu_model="K80") == []
    with pytest.raises(CatalogError, match="GPU model 'V10' is not in the catalog; did you mean V100"):
        cat.find(gpu_model="V10")
    with pytest.raises(CatalogError, match="cloud 'ibm' is not in the catalog; clouds: aws, azure, gcp"):
        cat.find(cloud="ibm")
    with pytest.raises(CatalogError, match="region 'us-east1' is not in the catalog; did you mean us-east-1"):
        cat.find(region="us-east1")


def test_prices_by_lifecycle():
    it = default_catalog().get("p3.8xlarge")
    assert it.price_for("on-demand") == 12.24
    assert it.price_for("spot") == 1.7535
    assert it.price_for("reserved", 0.25) == pytest.approx(9.18)
    assert it.price_for("reserved") == pytest.approx(12.24 * (1 - DEFAULT_RESERVED_DISCOUNT))
    no_spot = parse_yaml_catalog(YAML.replace("spotPriceHr: 0.5, ", ""), "t.yaml").get("x1")
    with pytest.raises(CatalogError, match="no spot price in the catalog; use lifecycle on-demand or reserved"):
        no_spot.price_for("spot")


YAML = """
sources: {mine: "my own price sheet"}
instanceTypes:
  - {cloud: aws, name: x1, region: r1, vcpus: 4, memoryGib: 16, gpu: T4, gpuCount: 1, priceHr: 1.0, spotPriceHr: 0.5, source: mine}
"""


def test_a_yaml_catalog_file(tmp_path):
    path = tmp_path / "cat.yaml"
    path.write_text(YAML)
    [it] = load_catalog(path)
    assert (it.name, it.gpu_model, it.gpu_count, it.gpu_memory_gib, it.source) == ("x1", "T4", 1, None, "my own price sheet")


@pytest.mark.parametrize(("change", "message"), [
    (("source: mine", "source: theirs"), r"source 'theirs' is not a key of sources \(mine\)"),
    (("spotPriceHr: 0.5", "spotPriceHr: 2"), r"instanceTypes\[0\]: .*spotPriceHr 2.0 is above priceHr 1.0"),
    (("gpuCount: 1, ", ""), r"instanceTypes\[0\]: .*give gpu and gpuCount together"),
    (("priceHr: 1.0", "priceHr: -1"), r"instanceTypes\[0\]\.priceHr: Input should be greater than 0"),
    (("vcpus: 4", "vcpus: 4, colour: red"), r"instanceTypes\[0\]\.colour: Extra inputs are not permitted"),
])
def test_a_bad_yaml_catalog_names_the_entry_and_field(tmp_path, change, message):
    path = tmp_path / "cat.yaml"
    path.write_text(YAML.replace(*change))
    with pytest.raises(CatalogError, match=message) as exc:
        load_catalog(path)
    assert str(exc.value).startswith(f"{path}: invalid catalog")


def test_a_catalog_must_be_csv_or_yaml(tmp_path):
    with pytest.raises(CatalogError, match="a catalog is a .csv file in the vms.csv format or a .yaml file"):
        load_catalog(tmp_path / "prices.json")
    with pytest.raises(CatalogError, match="no such file"):
        load_catalog(tmp_path / "missing.yaml")
