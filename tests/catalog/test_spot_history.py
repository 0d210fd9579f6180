"""Spot price history: step functions per (cloud, instance type, region) from AWS and Azure files."""

import json
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.catalog import CatalogError
from altostrat.catalog.spot_history import PriceSeries, load_spot_history

T0 = datetime(2020, 3, 1, tzinfo=timezone.utc).timestamp()
DAY = 86400


def iso(offset: float) -> str:
    return datetime.fromtimestamp(T0 + offset, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.000Z")


def rec(zone: str, offset: float, price: str, instance="p3.2xlarge", product="Linux/UNIX") -> dict:
    return {"AvailabilityZone": zone, "InstanceType": instance, "ProductDescription": product, "SpotPrice": price,
            "Timestamp": iso(offset)}


def aws_file(root, name: str, records: list[dict], region="us-east-1"):
    folder = root / "aws" / region
    folder.mkdir(parents=True, exist_ok=True)
    (folder / name).write_text(json.dumps({"NextToken": "", "SpotPriceHistory": records}, indent=4))
    return folder / name


def azure_files(root, table: str, mapping="Instance,GPU type,# GPUs\nNC6,K80,1\nNC12s v2,P100,2", name="us_east.csv"):
    folder = root / "azure"
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "instance_mapping.csv").write_text(mapping)  # no final newline, as upstream
    (folder / name).write_text(table.replace("\n", "\r\n"))
    return folder / name


def test_aws_cheapest_zone_steps_with_duplicates_across_files(tmp_path):
    # zone a: 1.0 from 0, 0.5 from 7200; zone b: 2.0 from -1800 (before a starts), 0.75 from 3600, 1.5 from 10800
    aws_file(tmp_path, "p3.2xlarge.json", [rec("us-east-1a", 7200, "0.500000"), rec("us-east-1b", 10800, "1.5"),
                                           rec("us-east-1b", 3600, "0.75"), rec("us-east-1a", 0, "1.0"),
                                           rec("us-east-1b", -1800, "2.0"), rec("us-east-1b", 5000, "0.01", product="Windows")])
    # a later collection repeats a record and adds one
    aws_file(tmp_path, "2020-03-05.p3.2xlarge.json", [rec("us-east-1b", 14400, "0.25"), rec("us-east-1a", 7200, "0.5")])
    history = load_spot_history(tmp_path)
    assert list(history) == [("aws", "p3.2xlarge", "us-east-1")]
    s = history[("aws", "p3.2xlarge", "us-east-1")]
    # starts when both zones are priced (0); at 10800 the cheapest stays 0.5, so no step there
    assert s == PriceSeries(tuple(T0 + t for t in (0, 3600, 7200, 14400)), (1.0, 0.75, 0.5, 0.25), 6, T0 + 14400)
    assert (s.price_at(T0 + 3599), s.price_at(T0 + 3600), s.price_at(T0 + 10 * DAY)) == (1.0, 0.75, 0.25)
    assert s.mean_over(T0, T0 + 14400) == (3600 * 1.0 + 3600 * 0.75 + 7200 * 0.5) / 14400 == 0.6875
    assert s.mean_over(T0 + 1800, T0 + 5400) == 0.875
    assert s.mean_over(T0 + 20000, T0 + 30000) == 0.25  # past the last record the last price holds
    assert s.mean_over(T0 + 3600, T0 + 3600) == 0.75
    assert s.summary() == (0.25, 0.6875, 1.0)
    with pytest.raises(CatalogError, match="time 2020-02-29T23:59:59Z is before the price history starts "
                                           r"\(2020-03-01T00:00:00Z\)"):
        s.price_at(T0 - 1)


def test_azure_daily_prices_with_mapping_names(tmp_path):
    azure_files(tmp_path, "Date,NC6,NC12s v2\n3/1/2020,$0.25,\n3/2/2020,$0.25,$0.75\n3/3/2020,$0.50,$0.75\n")
    history = load_spot_history(tmp_path)
    assert list(history) == [("azure", "Standard_NC12s_v2", "eastus"), ("azure", "Standard_NC6", "eastus")]
    nc6 = history[("azure", "Standard_NC6", "eastus")]
    # a day's price covers the whole day: observed until the end of 3/3
    assert nc6 == PriceSeries((T0, T0 + 2 * DAY), (0.25, 0.5), 3, T0 + 3 * DAY)
    assert nc6.summary() == pytest.approx((0.25, (2 * 0.25 + 0.5) / 3, 0.5))
    assert history[("azure", "Standard_NC12s_v2", "eastus")] == PriceSeries((T0 + DAY,), (0.75,), 2, T0 + 3 * DAY)


AWS_ERRORS = [
    ([{"AvailabilityZone": "us-east-1a", "InstanceType": "p3.2xlarge", "Timestamp": iso(0)}],
     r"SpotPriceHistory\[0\]: field 'SpotPrice' missing"),
    ([rec("us-east-1a", 0, "1.0"), rec("us-east-1a", 60, "abc")],
     r"SpotPriceHistory\[1\].SpotPrice: 'abc' is not a price > 0"),
    ([rec("us-east-1a", 0, "-1")], r"SpotPriceHistory\[0\].SpotPrice: '-1' is not a price > 0"),
    ([rec("us-west-2a", 0, "1.0")], r"SpotPriceHistory\[0\].AvailabilityZone: 'us-west-2a' is not in region us-east-1"),
    ([rec("us-east-1a", 0, "1.0", instance="p3.8xlarge")],
     r"SpotPriceHistory\[0\].InstanceType: 'p3.8xlarge', but the file name says 'p3.2xlarge'"),
    ([{**rec("us-east-1a", 0, "1.0"), "Timestamp": "yesterday"}],
     r"SpotPriceHistory\[0\].Timestamp: 'yesterday' is not an ISO 8601 time"),
]


@pytest.mark.parametrize("records, problem", AWS_ERRORS)
def test_aws_errors_name_file_and_field(tmp_path, records, problem):
    path = aws_file(tmp_path, "p3.2xlarge.json", records)
    with pytest.raises(CatalogError, match=f"{path}: {problem}"):
        load_spot_history(tmp_path)


def test_aws_file_errors(tmp_path):
    path = aws_file(tmp_path, "p3.2xlarge.json", [])
    path.write_text('{\n  "SpotPriceHistory": [\n    {,}\n]}')
    with pytest.raises(CatalogError, match=f"{path}:3: not JSON"):
        load_spot_history(tmp_path)
    path.write_text('{"Items": []}')
    with pytest.raises(CatalogError, match=f"{path}: field 'SpotPriceHistory': missing or not a list"):
        load_spot_history(tmp_path)
    path.write_text(json.dumps({"SpotPriceHistory": [rec("us-east-1a", 0, "1.0")]}))
    aws_file(tmp_path, "2020-03-05.p3.2xlarge.json", [rec("us-east-1a", 0, "1.5")])
    # files are read in name order: the dated one first
    with pytest.raises(CatalogError, match=f"{path}: " + r"SpotPriceHistory\[0\]: us-east-1a at 2020-03-01T00:00:00.000Z "
                                           r"costs 1.0, but .*2020-03-05.p3.2xlarge.json says 1.5; remove the wrong file"):
        load_spot_history(tmp_path)


@pytest.mark.parametrize("table, problem", [
    ("Date,NC6,NC99\n3/1/2020,$0.25,$1\n", ":1: column 'NC99' is not in instance_mapping.csv; add it there"),
    ("Day,NC6\n3/1/2020,$0.25\n", ":1: the first column must be Date"),
    ("Date,NC6\n2020-03-01,$0.25\n", ":2: field 'Date': '2020-03-01' is not M/D/YYYY"),
    ("Date,NC6\n3/2/2020,$0.25\n3/1/2020,$0.25\n", ":3: field 'Date': 3/1/2020 does not follow the day above"),
    ("Date,NC6\n3/1/2020,0.25\n3/2/2020,$x\n", r":3: field 'NC6': '\$x' is not a price like \$0.24552"),
    ("Date,NC6\n3/1/2020,$0.25\n3/2/2020,\n", ":3: field 'NC6': empty after a priced day"),
    ("Date,NC6\n3/1/2020,$0.25,$1\n", ":2: 3 fields, the header has 2"),
])
def test_azure_errors_name_file_line_and_field(tmp_path, table, problem):
    path = azure_files(tmp_path, table)
    with pytest.raises(CatalogError, match=f"{path}{problem}"):
        load_spot_history(tmp_path)


def test_azure_file_and_folder_errors(tmp_path):
    path = azure_files(tmp_path, "Date,NC6\n3/1/2020,$0.25\n", name="westeurope.csv")
    with pytest.raises(CatalogError, match=f"{path}: unknown region file; name it one of us_east.csv"):
        load_spot_history(tmp_path)
    path.unlink()
    azure_files(tmp_path, "Date,NC6\n3/1/2020,$0.25\n", mapping="Size,GPU\nNC6,K80\n")
    with pytest.raises(CatalogError, match=r"instance_mapping.csv:1: header must be Instance,GPU type,# GPUs"):
        load_spot_history(tmp_path)
    with pytest.raises(CatalogError, match="no aws/ or azure/ folder"):
        load_spot_history(tmp_path / "azure")
    with pytest.raises(CatalogError, match="nowhere: no such folder"):
        load_spot_history(tmp_path / "nowhere")


steps = st.lists(st.tuples(st.integers(0, 10_000), st.sampled_from([0.25, 0.5, 1.0, 2.0, 3.5])), min_size=1, max_size=6)


@settings(max_examples=40, deadline=None)
@given(st.lists(steps, min_size=1, max_size=3), st.integers(0, 20_000), st.integers(0, 20_000), st.integers(0, 20_000))
def test_region_price_is_the_cheapest_zone_and_means_add_up(tmp_path_factory, zones, a, b, c):
    root = tmp_path_factory.mktemp("hist")
    records = [rec(f"us-east-1{'abc'[k]}", t, str(p)) for k, z in enumerate(zones) for t, p in dict(z).items()]
    aws_file(root, "p3.2xlarge.json", records)
    s = load_spot_history(root)[("aws", "p3.2xlarge", "us-east-1")]
    start = max(min(dict(z)) for z in zones)
    assert s.start == T0 + start
    t0, tm, t1 = sorted((T0 + start + a, T0 + start + b, T0 + start + c))
    for t in (t0, tm, t1):  # the cheapest zone's price where each zone holds its last step at or before t
        assert s.price_at(t) == min(dict(z)[max(u for u in dict(z) if T0 + u <= t)] for z in zones)
    low, _, high = s.summary()
    assert low <= s.mean_over(t0, t1) <= high
    assert s.mean_over(t0, t1) * (t1 - t0) == pytest.approx(s.mean_over(t0, tm) * (tm - t0) + s.mean_over(tm, t1) * (t1 - tm))


def test_the_shared_history(shared_data):
    history = load_spot_history(shared_data / "prices" / "spot-history-2020")
    clouds = [k[0] for k in history]
    assert (clouds.count("aws"), clouds.count("azure")) == (32, 28)
    # SOURCES.md: 16,973 AWS records; 413 of them repeat a (zone, time, price) of another file (counted
    # with a separate script); Azure: 28 priced columns over 29 days (2/24 .. 3/23)
    assert sum(s.records for k, s in history.items() if k[0] == "aws") == 16_973 - 413
    assert {s.records for k, s in history.items() if k[0] == "azure"} == {29}
    # us_east.csv prices Standard_NC24 (NC24) at $0.49104 every day
    nc24 = history[("azure", "Standard_NC24", "eastus")]
    assert nc24.summary() == pytest.approx((0.49104, 0.49104, 0.49104))
    # aws/us-east-2/p2.xlarge.json: us-east-2a at 0.27 from 2020-02-20T21:48:46Z; the region is no dearer
    p2 = history[("aws", "p2.xlarge", "us-east-2")]
    low, mean, high = p2.summary()
    assert low <= p2.price_at(datetime(2020, 2, 20, 21, 48, 46, tzinfo=timezone.utc).timestamp()) <= 0.27 <= high
    assert low <= mean <= high
