"""Carbon accounting on a tiny cluster, checked by hand.

One p3.8xlarge in us-east-1 (zone US-MIDA-PJM, static 367.8 gCO2e/kWh) running one V100 job
draws 163.0768 + 306.45 = 469.5268 W throughout (tests/metrics/test_energy.py).
"""

import pytest
from helpers import cluster, job, jobs

from altostrat.catalog import CatalogError, default_catalog
from altostrat.catalog.carbon import REGION_STATIC, REGION_ZONE, CarbonModel, parse_start
from altostrat.cluster.build import load_cluster
from altostrat.metrics.compute import compute_metrics
from altostrat.policy.registry import parse_policy
from altostrat.sim.simulator import simulate

HEAD = "apiVersion: altostrat/v1\nkind: Cluster\nmetadata: {name: green}\nspec:\n  pools:\n"
WATTS = 469.5268
COLUMNS = ("Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
           "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,"
           "Data Estimated,Data Estimation Method\n")


def p3(tmp_path):
    path = tmp_path / "cluster.yaml"
    path.write_text(HEAD + "    - {name: a, nodes: 1, instanceType: p3.8xlarge}\n")
    return load_cluster(str(path))[1]


def carbon(state, duration, model=None, **kw):
    result = simulate(jobs(job("j", 0, duration)), state, parse_policy("fcfs+first-fit"), **kw)
    return compute_metrics(result, model)["carbon_kgco2e"]


def hourly(tmp_path, name, rows):
    """An Electricity Maps file; `rows` are (UTC hour text, direct intensity); LCA is set far off to catch a mix-up."""
    folder = tmp_path / "hourly"
    folder.mkdir(exist_ok=True)
    lines = "".join(f"{t},USA,PJM,US-MIDA-PJM,{v},{v * 10},0,0,x,false,\n" for t, v in rows)
    (folder / name).write_text(COLUMNS + lines, encoding="utf-8")
    return str(folder)


def test_static_intensity_without_hourly_data(tmp_path):
    assert carbon(p3(tmp_path), 7200) == pytest.approx(WATTS * 2 / 1000 * 367.8 / 1000)


def test_each_hour_at_its_own_intensity(tmp_path):
    # start 00:30: the 2 h run draws half an hour at 100, a full hour at 200, half an hour at 400
    folder = hourly(tmp_path, "PJM_2023_hourly.csv",
                    [("2023-01-01 00:00:00", 100), ("2023-01-01 01:00:00", 200), ("2023-01-01 02:00:00", 400)])
    model = CarbonModel("2023-01-01T00:30:00Z", folder)
    assert carbon(p3(tmp_path), 7200, model) == pytest.approx(WATTS / 1000 * (0.5 * 100 + 200 + 0.5 * 400) / 1000)
    # --until 1800: only the first half hour
    assert carbon(p3(tmp_path), 7200, model, until=1800.0) == pytest.approx(WATTS / 1000 * 0.5 * 100 / 1000)


def test_hours_outside_the_data_and_gaps_are_refused(tmp_path):
    folder = hourly(tmp_path, "PJM_2023_hourly.csv", [("2023-01-01 00:00:00", 100), ("2023-01-01 01:00:00", 200)])
    with pytest.raises(CatalogError, match=r"from 2023-01-01T01:00Z to 2023-01-01T03:00Z .* move --start"):
        carbon(p3(tmp_path), 7200, CarbonModel("2023-01-01T01:30Z", folder))
    gap = hourly(tmp_path, "PJM_2024_hourly.csv", [("2023-01-01 03:00:00", 100)])
    with pytest.raises(CatalogError, match="hours must follow one another; 2023-01-01T01:00Z is followed by 2023-01-01T03:00Z"):
        carbon(p3(tmp_path), 600, CarbonModel("2023-01-01T00:00Z", gap))


def test_real_pjm_series(tmp_path, shared_data):
    # ../shared/data/carbon/hourly/US-MIDA-PJM_2023_hourly.csv line 2: 2023-01-01 00:00, direct 299.81
    model = CarbonModel("2023-01-01T00:00Z", str(shared_data / "carbon" / "hourly"))
    assert carbon(p3(tmp_path), 3600, model) == pytest.approx(WATTS / 1000 * 299.81 / 1000)


def test_no_intensity_no_carbon():
    # nodes with no region have a power model but no grid
    assert carbon(cluster(("V100", 4, 1)), 3600) is None


def test_start_parsing():
    assert parse_start("2023-01-01T00:00Z") == parse_start("2023-01-01T00:00") == 1672531200.0
    assert parse_start("2023-01-01T01:00+01:00") == 1672531200.0
    with pytest.raises(CatalogError, match="ISO 8601"):
        parse_start("soon")


def test_every_catalog_region_has_a_zone_and_a_static_intensity():
    regions = {it.region for it in default_catalog()}
    assert regions <= set(REGION_ZONE) and regions <= set(REGION_STATIC)
