"""TCO scenarios on a case small enough to check by hand, and their invariants."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.catalog import CatalogError
from altostrat.sim.run import RunRequest, run
from altostrat.spec.load import SpecError
from altostrat.tco.demand import Curve, merge
from altostrat.tco.project import SECONDS_PER_YEAR, TcoRequest, tco
from altostrat.tco.scenarios import dynamic, reserved, reserved_level, static

# Two p3.8xlarge in us-east-1: 12.24 USD/h on demand, 1.7535 spot; 4 V100 + 32 vCPUs at PUE 1.135
CLUSTER = """apiVersion: altostrat/v1
kind: Cluster
metadata: {name: two}
spec:
  pools:
    - {name: v, nodes: 2, instanceType: p3.8xlarge, region: us-east-1}
"""
# A and B start at 0 on nodes 0 and 1; C arrives when both are free and takes node 0 (lowest index)
WORKLOAD = """apiVersion: altostrat/v1
kind: Workload
metadata: {name: three}
spec:
  jobs:
    - {name: a, submitS: 0, durationS: 3600, tasks: 4}
    - {name: b, submitS: 0, durationS: 7200, tasks: 4, spot: true, checkpointS: 600}
    - {name: c, submitS: 10800, durationS: 3600, tasks: 4}
"""
OD, SPOT = 12.24, 1.7535
STATIC_W = 1.135 * (4 * 30 + 32 * 0.74)  # 163.0768 W per node, idle
GPU_WH = 4 * 4 * 1.135 * 270  # 4 GPUs busy for the 4 job-hours: 4,903.2 Wh above idle
WINDOW = 14400.0
INTENSITY = 367.8  # us-east-1, g/kWh


@pytest.fixture
def specs(tmp_path):
    (tmp_path / "c.yaml").write_text(CLUSTER)
    (tmp_path / "w.yaml").write_text(WORKLOAD)
    return str(tmp_path / "w.yaml"), str(tmp_path / "c.yaml")


def scenarios(specs, **kw):
    workload, cluster = specs
    kw.setdefault("window", "run")
    out = tco(TcoRequest(workload, cluster, years=1.0, **kw))
    assert out["years"] == 1.0
    return {s["name"]: s for s in out["scenarios"]}


def test_hand_checked_scenarios_without_overheads(specs):
    s = scenarios(specs, boot_s=0, scale_down_s=0, spot_revocations_per_hour=0.1)
    scale = SECONDS_PER_YEAR / WINDOW  # one year of 4-hour windows
    # busy: node 0 [0, 1h) and [3h, 4h), node 1 [0, 2h): peak 2, 4 busy node-hours
    st_, dy, rs, sp = (s[k] for k in ("static-on-demand", "dynamic-on-demand", "reserved-mix", "dynamic-spot"))
    assert st_["nodes"] == {"v": 2} and st_["tco_usd"] == pytest.approx(2 * 4 * OD * scale)
    assert dy["tco_usd"] == pytest.approx(4 * OD * scale) and dy["node_starts"] == pytest.approx(3 * scale)
    # levels over the 4 h: 2 for 1 h, 1 for 2 h, 0 for 1 h; m > 0 75 % of the time > 1 - 0.55, m > 1 25 % < 45 %
    # 1-year horizon: 1-year term, 37 % off; 1 committed node 4 h + 1 on-demand node-hour above it
    assert rs["nodes"] == {"v": 1} and rs["assumptions"]["term_years"] == 1
    assert rs["assumptions"]["discount"] == pytest.approx(0.37)
    assert rs["tco_usd"] == pytest.approx((1 * 0.63 * 4 + 1) * OD * scale)
    # spot: b alone on spot (2 node-h, 1 + 0.1 x (600 / 2 + 0 + 60) / 3600 = 1.01), a and c on demand (2 node-h)
    assert sp["assumptions"]["revocation_overhead"] == pytest.approx(1.01)
    assert sp["tco_usd"] == pytest.approx((2 * OD + 2 * SPOT * 1.01) * scale)
    assert sp["nodes"] == {"v": 1, "v/spot": 1}
    # energy: idle draw of the nodes up, plus the GPUs above idle while allocated
    assert st_["energy_mwh"] == pytest.approx((8 * STATIC_W + GPU_WH) * scale / 1e6)
    assert dy["energy_mwh"] == pytest.approx((4 * STATIC_W + GPU_WH) * scale / 1e6)
    assert rs["energy_mwh"] == pytest.approx((5 * STATIC_W + GPU_WH) * scale / 1e6)
    assert sp["energy_mwh"] == pytest.approx((2 * STATIC_W + GPU_WH / 2 + 1.01 * (2 * STATIC_W + GPU_WH / 2)) * scale / 1e6)
    for sc in s.values():
        assert sc["carbon_tco2e"] == pytest.approx(sc["energy_mwh"] * INTENSITY / 1000)
        assert sc["monthly_usd"] == pytest.approx(sc["tco_usd"] / 12)
        # 4 jobs-hours x 4 GPUs = 16 reference GPU-hours per window, per kWh of that window
        assert sc["perf_per_watt"] == pytest.approx(16 / (sc["energy_mwh"] * 1000 / scale))
        assert sc["perf_unit"] == "GPU-h/kWh"


def test_hand_checked_boot_and_scale_down(specs):
    s = scenarios(specs, boot_s=180, scale_down_s=600, reserved_term=3)
    # node 0 up [-180 s, 4200 s) and [10620, 15000) (a 6420 s gap is more than 780 s), node 1 [-180, 7800)
    up_s = 4380 + 4380 + 7980
    dy = s["dynamic-on-demand"]
    scale = SECONDS_PER_YEAR / WINDOW
    assert dy["tco_usd"] == pytest.approx(up_s / 3600 * OD * scale)
    assert dy["node_starts"] == pytest.approx(3 * scale) and dy["nodes"] == {"v": 2}
    assert dy["energy_mwh"] == pytest.approx((up_s / 3600 * STATIC_W + GPU_WH) * scale / 1e6)
    # a 3-year term bought for a 1-year horizon: paid 3 years for 1, so 1 - 0.45 x 3 < 0: reserve nothing
    rs = s["reserved-mix"]
    assert rs["nodes"] == {"v": 0} and rs["tco_usd"] == pytest.approx(dy["tco_usd"])


def test_static_at_full_size_matches_simulate(specs):
    """Both nodes are busy at the peak, so static provisioning is the simulated cluster: same cost and energy."""
    workload, cluster = specs
    metrics = run(RunRequest(workload, cluster, "fcfs+best-fit+backfill"))[0]["metrics"]
    st_ = scenarios(specs)["static-on-demand"]
    scale = SECONDS_PER_YEAR / WINDOW
    assert metrics["makespan_s"] == WINDOW
    assert st_["tco_usd"] == pytest.approx(metrics["cost_usd"] * scale)
    assert st_["energy_mwh"] == pytest.approx(metrics["energy_kwh"] * scale / 1000)
    assert st_["carbon_tco2e"] == pytest.approx(metrics["carbon_kgco2e"] * scale / 1000)


def test_three_year_horizon_uses_the_three_year_discount(specs):
    workload, cluster = specs
    three = {x["name"]: x for x in tco(TcoRequest(workload, cluster, years=3.0, boot_s=0, scale_down_s=0,
                                                   window="run"))["scenarios"]}
    notes = three["reserved-mix"]["assumptions"]
    assert notes["term_years"] == 3 and notes["discount"] == pytest.approx(0.55)
    assert three["reserved-mix"]["monthly_usd"] == pytest.approx(three["reserved-mix"]["tco_usd"] / 36)
    assert three["reserved-mix"]["tco_usd"] == pytest.approx(3 * (0.45 * 4 + 1) * OD * SECONDS_PER_YEAR / WINDOW)


def test_arrivals_window_leaves_out_the_drain(specs):
    """Window [0, 3 h] (the last submit): node 0 busy 1 h, node 1 2 h; c's hour falls after it."""
    s = scenarios(specs, boot_s=0, scale_down_s=0, window="arrivals")
    scale = SECONDS_PER_YEAR / 10800
    st_, dy = s["static-on-demand"], s["dynamic-on-demand"]
    assert st_["assumptions"]["window_s"] == 10800
    assert st_["tco_usd"] == pytest.approx(2 * 3 * OD * scale) and dy["tco_usd"] == pytest.approx(3 * OD * scale)
    gpu_wh = 4 * 3 * 1.135 * 270  # a for 1 h and b for 2 h, 4 GPUs each
    assert dy["energy_mwh"] == pytest.approx((3 * STATIC_W + gpu_wh) * scale / 1e6)
    assert dy["perf_per_watt"] == pytest.approx(12 / ((3 * STATIC_W + gpu_wh) / 1000))


def test_spot_fraction_zero_is_dynamic_on_demand(specs):
    s = scenarios(specs, spot_fraction=0.0)
    assert s["dynamic-spot"]["tco_usd"] == pytest.approx(s["dynamic-on-demand"]["tco_usd"])
    assert s["dynamic-spot"]["energy_mwh"] == pytest.approx(s["dynamic-on-demand"]["energy_mwh"])


@pytest.mark.parametrize(("field", "value", "option"), [
    ("years", 0.0, "--years"), ("boot_s", -1.0, "--boot-s"), ("reserved_term", 2, "--reserved-term"),
    ("reserved_discount", 1.0, "--reserved-discount"), ("spot_fraction", 1.5, "--spot-fraction"),
    ("spot_revocations_per_hour", -0.1, "--spot-revocations-per-hour"), ("window", "all", "--window"),
])
def test_bad_options_name_the_option(specs, field, value, option):
    with pytest.raises(SpecError, match=option):
        tco(TcoRequest(*specs, **{field: value}))


def test_an_unpriced_pool_is_refused_with_the_fix(tmp_path, specs):
    path = tmp_path / "bare.yaml"
    path.write_text(CLUSTER.replace("instanceType: p3.8xlarge, region: us-east-1", "gpu: {model: V100, count: 4}, "
                                    "cpu: 32, memoryGib: 244"))
    with pytest.raises(CatalogError, match="pool 'v' names no instance type.*instanceType"):
        tco(TcoRequest(specs[0], str(path)))


def test_merge_and_curve():
    iv = np.array([[10.0, 20.0], [0.0, 5.0], [20.0, 30.0], [40.0, 41.0]])
    assert merge(iv).tolist() == [[0, 5], [10, 30], [40, 41]]
    assert merge(iv, before=2, after=3).tolist() == [[-2, 33], [38, 44]]  # [-2, 8) and [8, 33) touch
    c = Curve.of([np.array([[0.0, 10.0]]), np.array([[10.0, 20.0]]), np.array([[5.0, 15.0]])])
    assert c.peak() == 2 and c.integral() == 30.0  # a node freed as another starts is no peak of 3
    assert c.seconds_at_level(0, 20).tolist() == [0, 10, 10]


intervals = st.lists(st.tuples(st.integers(0, 100), st.integers(1, 50)), max_size=6).map(
    lambda xs: merge(np.array([(s, s + d) for s, d in xs], dtype=np.float64).reshape(-1, 2)))


@settings(max_examples=60, deadline=None)
@given(st.lists(intervals, min_size=1, max_size=5), st.floats(0, 0.9), st.floats(0.1, 50))
def test_dynamic_and_reserved_never_cost_more_than_static(nodes, discount, price):
    """Same busy intervals: paying busy node-time only, or committing a cheaper base, is never dearer
    than the peak for the whole window; nor are the node-hours (hence idle energy) of dynamic more."""
    busy = Curve.of(nodes)
    if not len(busy.times):
        return
    t0, t1 = float(busy.times[0]), float(busy.times[-1])
    s = static("p", busy, price, t0, t1)
    d = dynamic("p", nodes, price, 0.0, 0.0)
    r = reserved("p", d, price, discount, t0, t1)
    assert d.usd <= s.usd * (1 + 1e-12) and r.usd <= s.usd * (1 + 1e-12) and r.usd <= d.usd * (1 + 1e-12)
    assert d.powered.integral() <= s.powered.integral() + 1e-9
    assert 0 <= reserved_level(d.powered, discount, t0, t1) <= busy.peak()


@settings(max_examples=5, deadline=None)
@given(st.integers(1, 10_000))
def test_dynamic_is_cheaper_and_leaner_than_static_end_to_end(seed):
    out = tco(TcoRequest(f"synthetic:jobs=40,load=0.5,seed={seed}", "gavel-108", years=1.0, boot_s=0, scale_down_s=0,
                         window="run"))
    s = {x["name"]: x for x in out["scenarios"]}
    static_, dyn = s["static-on-demand"], s["dynamic-on-demand"]
    assert dyn["tco_usd"] <= static_["tco_usd"] * (1 + 1e-9)
    assert dyn["energy_mwh"] <= static_["energy_mwh"] * (1 + 1e-9)
    assert s["reserved-mix"]["tco_usd"] <= static_["tco_usd"] * (1 + 1e-9)


def test_energy_of_a_draw_starting_off_the_hour_grid():
    """A start that is no exact float on the epoch scale still reads its own level (no wrap to the end)."""
    from altostrat.catalog.carbon import CarbonModel
    from altostrat.tco.project import Draw, energy_carbon

    t = np.array([1514.518588853182, 5000.25, 9000.0])
    joules, grams = energy_carbon([Draw("us-east-1", t, np.array([100.0, 50.0, -150.0]))], CarbonModel())
    assert joules == pytest.approx(100 * (5000.25 - t[0]) + 150 * 3999.75)
    assert grams == pytest.approx(joules / 3.6e6 * INTENSITY)
