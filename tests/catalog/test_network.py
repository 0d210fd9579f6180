"""Egress prices, routes and transfer plans, checked by hand against the matrices and the embedded table."""

import itertools

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.catalog import CatalogError
from altostrat.catalog.network import (
    CONTINENT, DEFAULT_INTER_REGION, NetworkModel, Route, parse_compression, region_key,
)
from altostrat.catalog.regions import JURISDICTIONS
from altostrat.cluster.state import Node
from altostrat.workload.job import Job

GCP_EGRESS = 0.12 / 1.073741824  # $0.12 per GiB


def node(region, cloud=None):
    return Node(0, "n", "p", "V100", 1, 8000, 1024, region=region, cloud=cloud)


def data_job(gb, region):
    return Job("j", 0.0, 100.0, dataset_gb=gb, data_region=region)


def matrix(tmp_path, cloud, regions, rows, name=None):
    """A matrix file in the shared format: header ',R1,R2,…', then 'SOURCE,price,…' per row."""
    folder = tmp_path / "net"
    folder.mkdir(exist_ok=True)
    text = "," + ",".join(regions) + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows)
    (folder / (name or f"{cloud}_transmission_cost_matrix.csv")).write_text(text)
    return str(folder)


@pytest.fixture(scope="module")
def shared(shared_data):
    return NetworkModel(str(shared_data / "network"))


@pytest.mark.parametrize("src, dst, usd", [
    ("us-east-1", "us-east-2", 0.01),  # aws rows price by source: us-east-1 row
    ("ap-south-1", "us-east-1", 0.086),
    ("af-south-1", "eu-west-1", 0.147),
    ("East US", "West US", 0.02),  # azure, as the matrix spells it
    ("eastus", "westeurope", 0.05),  # azure, as the catalog spells it
    ("North Europe", "westeurope", 0.02),
    ("Brazil South", "eastus", 0.16),
    ("europe-west1", "us-east1", 0.02),  # gcp columns price by destination
    ("us-east1", "europe-west4", 0.05),
    ("us-central1", "southamerica-east1", 0.14),
    ("us-east-1", "us-east-1", 0.0),
])
def test_lookups_in_the_shared_matrices(shared, src, dst, usd):
    assert shared.egress_usd_per_gb(None, src, None, dst) == usd


def test_pairs_the_matrices_lack_fall_back_to_the_table(shared):
    # us-west-2 is not in the aws matrix: AWS from North America, $0.02 anywhere
    assert shared.egress_usd_per_gb("aws", "us-west-2", "aws", "us-east-1") == 0.02
    # us-east4 is not in the gcp matrix: GCP North America to Asia, $0.05
    assert shared.egress_usd_per_gb("gcp", "us-east4", "gcp", "asia-east1") == 0.05
    # a region no table places on a continent: the cloud's default
    assert shared.egress_usd_per_gb("gcp", "xx-nowhere1", "gcp", "us-east1") == DEFAULT_INTER_REGION["gcp"] == 0.05


def test_other_clouds_pay_the_source_clouds_internet_egress(shared):
    assert shared.egress_usd_per_gb(None, "us-east-1", None, "us-central1") == 0.09
    assert shared.egress_usd_per_gb(None, "us-central1", "aws", "us-east-1") == pytest.approx(0.111758708)
    assert shared.egress_usd_per_gb("azure", "eastus", "lambda", "us-east-1") == 0.087
    # the same name on another cloud is another place
    assert shared.egress_usd_per_gb("aws", "us-east-1", "lambda", "us-east-1") == 0.09


def test_embedded_table_prices_without_files():
    m = NetworkModel()
    assert m.egress_usd_per_gb(None, "eastus", None, "westus2") == 0.02
    assert m.egress_usd_per_gb(None, "eastus", None, "westeurope") == 0.05
    assert m.egress_usd_per_gb(None, "brazilsouth", None, "eastus") == 0.16
    assert m.egress_usd_per_gb(None, "ap-northeast-1", None, "us-east-1") == 0.09
    assert m.egress_usd_per_gb(None, "us-central1", None, "europe-west4") == 0.05
    assert m.egress_usd_per_gb(None, "europe-west4", None, "europe-west1") == 0.02
    assert m.egress_usd_per_gb(None, "us-central1", None, "eastus") == pytest.approx(GCP_EGRESS)


def test_every_jurisdiction_has_a_continent():
    assert JURISDICTIONS <= set(CONTINENT)


def test_no_relay_beats_a_direct_move_in_the_shared_matrices(shared):
    # their rows (aws, azure) or columns (gcp) are near constant, so the triangle inequality holds
    for cloud, regions in shared._regions.items():
        for a, b in itertools.permutations(regions, 2):
            assert len(shared.cheapest_route((cloud, a), (cloud, b)).hops) == 2


def relay_model(tmp_path, **kw):
    # us-east-1 -> ap-south-1 costs 0.10 direct but 0.02 + 0.03 through eu-west-1
    folder = matrix(tmp_path, "aws", ["us-east-1", "eu-west-1", "ap-south-1"],
                    [["us-east-1", 0, 0.02, 0.10], ["eu-west-1", 0.02, 0, 0.03], ["ap-south-1", 0.09, 0.09, 0]])
    return NetworkModel(folder, **kw)


def test_a_cheaper_relay_region(tmp_path):
    m = relay_model(tmp_path)
    src, dst = ("aws", "us-east-1"), ("aws", "ap-south-1")
    assert m.cheapest_route(src, dst) == Route((src, ("aws", "eu-west-1"), dst), pytest.approx(0.05))
    assert m.cheapest_route(dst, src) == Route((dst, src), 0.09)


def test_relay_trades_dollars_for_time(tmp_path):
    # 100 GB at 10 Gbit/s: direct $10 in 80 s; relay $5 in 160 s (stored and forwarded); break-even 225 USD/h
    job, where = data_job(100, "us-east-1"), node("ap-south-1", "aws")
    cheap = relay_model(tmp_path).plan_transfer(job, where)
    assert len(cheap.route.hops) == 3 and cheap.usd == pytest.approx(5.0) and cheap.seconds == pytest.approx(160.0)
    assert cheap.gb_moved == 100 and not cheap.compressed
    assert len(relay_model(tmp_path, time_value_usd_per_h=200).plan_transfer(job, where).route.hops) == 3
    fast = relay_model(tmp_path, time_value_usd_per_h=250).plan_transfer(job, where)
    assert len(fast.route.hops) == 2 and fast.usd == pytest.approx(10.0) and fast.seconds == pytest.approx(80.0)


def test_compression_trade_off_exact():
    # aws us-east-1 data to a gcp node: $0.09/GB. 100 GB raw: $9, 80 s. Ratio 4, 2 CPU s/GB: 25 GB over
    # the wire, $2.25, 20 s + 200 s. Compressing wins below 6.75 USD / (140 s) = 173.57 USD/h.
    job, where = data_job(100, "us-east-1"), node("us-central1", "gcp")
    raw = NetworkModel().plan_transfer(job, where)
    assert (raw.gb_moved, raw.usd, raw.seconds, raw.compressed) == (100, pytest.approx(9.0), 80.0, False)
    packed = NetworkModel(ratio=4, cpu_s_per_gb=2).plan_transfer(job, where)
    assert (packed.gb_moved, packed.usd, packed.seconds, packed.compressed) == (25, pytest.approx(2.25), pytest.approx(220.0), True)
    assert NetworkModel(ratio=4, cpu_s_per_gb=2, time_value_usd_per_h=170).plan_transfer(job, where).compressed
    assert not NetworkModel(ratio=4, cpu_s_per_gb=2, time_value_usd_per_h=180).plan_transfer(job, where).compressed
    # half the bandwidth: raw takes 160 s, compressed 240 s
    slow = NetworkModel(bandwidth_gbps=5, ratio=4, cpu_s_per_gb=2)
    assert slow.seconds_for(job, where) == pytest.approx(240.0) and slow.egress_usd(job, where) == pytest.approx(2.25)


def test_nothing_moves_without_a_dataset_or_away_from_home():
    m = NetworkModel()
    assert m.plan_transfer(data_job(0, None), node("eu-west-1")) is None
    assert m.plan_transfer(data_job(50, "East US"), node("eastus", "azure")) is None
    assert m.plan_transfer(data_job(50, "us-east-1"), node(None)) is None  # where the node is is unknown
    assert m.seconds_for(data_job(50, "us-east-1"), node("us-east-1")) == 0.0
    assert m.egress_usd(data_job(50, "us-east-1"), node("eu-west-1")) == pytest.approx(1.0)


def test_check_jobs_names_an_unknown_data_region():
    with pytest.raises(CatalogError, match=r"job 'j': dataset region 'moon-base' .* us-east-1"):
        NetworkModel().check_jobs([data_job(10, "moon-base")])
    NetworkModel().check_jobs([data_job(10, "West Europe"), data_job(0, None)])


def test_bad_matrix_files_name_file_and_line(tmp_path):
    ragged = matrix(tmp_path, "aws", ["a", "b"], [["a", 0, 0.02], ["b", 0.02]])
    with pytest.raises(CatalogError, match=r"aws_transmission_cost_matrix.csv:3: 2 fields, expected 3"):
        NetworkModel(ragged)
    text = matrix(tmp_path, "aws", ["a", "b"], [["a", 0, "cheap"], ["b", 0.02, 0]])
    with pytest.raises(CatalogError, match=r":2: price from a to b is 'cheap'"):
        NetworkModel(text)
    negative = matrix(tmp_path, "aws", ["a", "b"], [["a", 0, -1], ["b", 0.02, 0]])
    with pytest.raises(CatalogError, match=r":2: price from a to b is '-1'"):
        NetworkModel(negative)
    (tmp_path / "empty").mkdir()
    with pytest.raises(CatalogError, match=r"no \*_transmission_cost_matrix.csv files"):
        NetworkModel(str(tmp_path / "empty"))
    with pytest.raises(CatalogError, match=r"--network-data .*nope: no such directory"):
        NetworkModel(str(tmp_path / "nope"))


@pytest.mark.parametrize("text, problem", [
    ("3", "give RATIO:CPU_S_PER_GB"), ("x:1", "give RATIO:CPU_S_PER_GB"), ("0.5:1", "ratio 0.5"),
    ("3:-1", "CPU seconds per GB -1"),
])
def test_bad_compression_options(text, problem):
    with pytest.raises(CatalogError, match=problem):
        NetworkModel.from_options(compression=text)


def test_bad_bandwidth_and_time_value():
    with pytest.raises(CatalogError, match="--bandwidth-gbps 0"):
        NetworkModel(bandwidth_gbps=0)
    with pytest.raises(CatalogError, match="--transfer-time-value -1"):
        NetworkModel(time_value_usd_per_h=-1)
    assert parse_compression("3:20") == (3.0, 20.0) and region_key("East US 2") == "eastus2"


prices = st.floats(0, 0.2, allow_nan=False)


@settings(max_examples=60, deadline=None)
@given(p=st.lists(prices, min_size=9, max_size=9), gb=st.floats(0.5, 1000), tv=st.floats(0, 1000),
       ratio=st.none() | st.floats(1, 10), cpu=st.floats(0, 30))
def test_the_plan_is_never_worse_than_moving_raw_and_direct(tmp_path_factory, p, gb, tv, ratio, cpu):
    regions = ["us-east-1", "eu-west-1", "ap-south-1"]
    rows = [[r] + [0 if i == j else p[3 * i + j] for j in range(3)] for i, r in enumerate(regions)]
    m = NetworkModel(matrix(tmp_path_factory.mktemp("m"), "aws", regions, rows), ratio=ratio, cpu_s_per_gb=cpu,
                     time_value_usd_per_h=tv)
    src, dst = ("aws", "us-east-1"), ("aws", "ap-south-1")
    route = m.cheapest_route(src, dst)
    assert route.usd_per_gb == pytest.approx(min(p[2], p[1] + p[5]))
    move = m.plan_transfer(data_job(gb, "us-east-1"), node("ap-south-1", "aws"))
    direct_score = gb * p[2] + tv * gb * 0.8 / 3600
    assert move.usd + tv * move.seconds / 3600 <= direct_score * (1 + 1e-9) + 1e-12
    assert move.gb_moved == pytest.approx(gb / ratio if move.compressed else gb)
    assert move.usd >= 0 and move.seconds >= 0
