"""The vms.csv loader on the real file (figures checked by hand against its lines) and on broken copies."""

import pytest

from altostrat.catalog import CatalogError, load_catalog
from altostrat.catalog.vms_csv import BAD_COUNT, BAD_SPOT, COLUMNS, EXCLUDED_GPU_ONLY, EXCLUDED_TPU


@pytest.fixture(scope="module")
def vms(shared_data):
    return load_catalog(shared_data / "catalog" / "vms.csv")


def test_the_whole_file_loads(vms):
    # 3,869 rows (SOURCES.md), less 812 TPU rows and the 8 B200 GPU-only rows with no host
    assert len(vms) == 3869 - 812 - 8
    assert vms.adjusted == {EXCLUDED_TPU: 812, EXCLUDED_GPU_ONLY: 8, BAD_SPOT: 8, BAD_COUNT: 3}
    per_cloud = {c: sum(1 for it in vms if it.cloud == c) for c in ("aws", "azure", "gcp", "lambda")}
    assert per_cloud == {"aws": 1287, "azure": 318, "gcp": 1958 - 820, "lambda": 306}


def test_prices_as_in_the_file(vms):
    # line 1097: aws,p3.8xlarge,32,244,V100,4,16,us-east-1,12.24,1.7535
    it = vms.get("p3.8xlarge", "us-east-1")
    assert (it.vcpus, it.memory_gib, it.gpu_model, it.gpu_count, it.gpu_memory_gib, it.price_hr, it.spot_price_hr) == (
        32, 244, "V100", 4, 16, 12.24, 1.7535)
    assert it.source.endswith("vms.csv:1097")
    # line 3582: lambda,gpu_1x_a100,30,200,A100,1,40,asia-northeast-1,1.29,  (no spot market)
    it = vms.get("gpu_1x_a100", "asia-northeast-1")
    assert (it.cloud, it.price_hr, it.spot_price_hr) == ("lambda", 1.29, None)


def test_a_gcp_gpu_only_row_gets_its_n1_host(vms):
    # line 1966: gcp,,,,P100,4,16,us-central1,5.84,2.336  (the GPUs alone)
    # line 3248: gcp,n1-highmem-8,8,52,,,,us-central1,0.47321,0.11922
    it = vms.get("n1-highmem-32+4xP100", "us-central1")
    assert (it.vcpus, it.memory_gib, it.gpu_model, it.gpu_count) == (32, 208, "P100", 4)
    assert it.price_hr == pytest.approx(4 * 0.47321 + 5.84) and it.price_hr == pytest.approx(7.73284)
    assert it.spot_price_hr == pytest.approx(4 * 0.11922 + 2.336)
    assert "vms.csv:1966" in it.source and "vms.csv:3248" in it.source
    # every N1-attachable GPU row (131 in SOURCES.md) became a machine
    assert sum(1 for i in vms if i.name.startswith("n1-highmem-") and "+" in i.name) == 131


def test_documented_upstream_errors_are_corrected(vms):
    # line 2690: a3-highgpu-8g asia-northeast1 spot 88.71856 above on-demand 45.7547: not a price
    it = vms.get("a3-highgpu-8g", "asia-northeast1")
    assert (it.price_hr, it.spot_price_hr) == (45.7547, None)
    # line 411: g5.48xlarge ap-northeast-2 spot 20.0281 vs 20.02809: rounding, capped at on-demand
    assert vms.get("g5.48xlarge", "ap-northeast-2").spot_price_hr == 20.02809
    # line 1538: AcceleratorCount 12 upstream; the VM has 8 H100
    assert vms.get("Standard_ND96isr_H100_v5", "eastus").gpu_count == 8
    # line 2709: H100-MEGA is the H100 GPU
    assert vms.get("a3-megagpu-8g", "us-central1").gpu_model == "H100"
    assert not [it for it in vms if it.gpu_model and it.gpu_model.startswith("tpu-")]
    assert all(it.spot_price_hr is None or it.spot_price_hr <= it.price_hr for it in vms)


HEADER = ",".join(COLUMNS)
GOOD = "aws,p3.8xlarge,32,244,V100,4,16,us-east-1,12.24,1.7535"


def write(tmp_path, *rows):
    path = tmp_path / "vms.csv"
    path.write_text("\n".join(rows) + "\n")
    return path


@pytest.mark.parametrize(("row", "message"), [
    ("aws,p3.8xlarge,32,244,V100,4,16,us-east-1,abc,1.7535", r":3: field 'Price': 'abc' is not a number"),
    ("aws,p3.8xlarge,32,244,V100,4,16,us-east-1,-1,1.7535", r":3: field 'Price': '-1' must be > 0"),
    ("aws,p3.8xlarge,32,244,V100,4,16,us-east-1,,1.7535", r":3: field 'Price': empty; give a number"),
    ("aws,p3.8xlarge,32.5,244,V100,4,16,us-east-1,12,1", r":3: field 'vCPUs': '32.5' is not a whole number"),
    ("aws,p3.8xlarge,32,244,V100,,16,us-east-1,12,1", r":3: field 'AcceleratorCount': empty"),
    ("aws,p3.8xlarge,32,244,,4,16,us-east-1,12,1", r":3: field 'AcceleratorName': empty on a row with 4 accelerators"),
    ("aws,,32,244,V100,4,16,us-east-1,12,1", r":3: field 'InstanceType': empty; only GCP accelerator-only rows"),
    ("aws,p3.8xlarge,32,244,V100,4,16,,12,1", r":3: field 'Region': empty"),
    ("aws,p3.8xlarge,32,244,V100,4,16,us-east-1,12", r":3: expected 10 fields"),
    ("gcp,,,,T4,1,16,us-east1,0.35,0.14", r":3: GCP T4 row in us-east1 needs an N1 host.*no n1-highmem-8 row"),
    (GOOD, r"aws p3.8xlarge in us-east-1 is listed twice \(.*vms.csv:2 and .*vms.csv:3\)"),
])
def test_a_malformed_row_names_file_line_and_field(tmp_path, row, message):
    path = write(tmp_path, HEADER, GOOD, row)
    with pytest.raises(CatalogError, match=message) as exc:
        load_catalog(path)
    assert str(path) in str(exc.value)


def test_a_wrong_header_is_refused(tmp_path):
    path = write(tmp_path, HEADER.replace("SpotPrice", "Spot"), GOOD)
    with pytest.raises(CatalogError, match=r"vms.csv:1: header must be Cloud,InstanceType,.*,Price,SpotPrice"):
        load_catalog(path)


def test_a_small_file_with_a_gcp_host(tmp_path):
    path = write(tmp_path, HEADER, "gcp,,,,T4,2,16,us-east1,0.7,0.28", "gcp,n1-highmem-8,8,52,,,,us-east1,0.5,0.1",
                 "gcp,,,,tpu-v6e-8,1,,us-east1,700.0,700.0")
    cat = load_catalog(path)
    assert {it.name: (it.vcpus, it.memory_gib, it.price_hr, it.spot_price_hr) for it in cat} == {
        "n1-highmem-8": (8, 52, 0.5, 0.1), "n1-highmem-16+2xT4": (16, 104, 1.7, 0.48)}
    assert cat.adjusted == {EXCLUDED_TPU: 1}
