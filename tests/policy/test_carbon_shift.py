"""The carbon-shift gate: jobs with slack wait for the clean hour the forecast shows, and only then."""

from dataclasses import dataclass
from datetime import datetime, timezone

import numpy as np
import pytest
from helpers import job, jobs
from hypothesis import given, settings
from hypothesis import strategies as st

from altostrat.catalog.carbon import HourlySeries, parse_start
from altostrat.catalog.power import DEFAULT_PUE, GPU_WATTS
from altostrat.cluster.state import ClusterState, Node
from altostrat.engine import PolicyContext
from altostrat.policy.gate.carbon_shift import CarbonShift
from altostrat.policy.registry import PolicyError, parse_policy
from altostrat.sim.eventlog import START
from altostrat.sim.run import RunRequest, run
from altostrat.sim.simulator import simulate

H = 3600.0
T0 = "2023-01-01T00:00Z"
HOUR0 = int(parse_start(T0)) // 3600
DAY = [300.0] * 24
DAY[4] = DAY[5] = 100.0  # 04:00-06:00 UTC is clean, every day


@dataclass
class Grid:
    """A CarbonModel whose hourly series the test sets, per region; from one day before time 0."""

    by_region: dict
    start_epoch: float = parse_start(T0)

    def series(self, region):
        values = self.by_region.get(region)
        return None if values is None else HourlySeries(HOUR0 - 24, np.asarray(values, dtype=float), "test")


def node(idx, region, gpus=1):
    return Node(idx, f"n{idx}", "p", "H100", gpus, 8000, 65536, region=region)


def starts(workload, policy, grid, nodes=None):
    state = ClusterState(nodes or [node(0, "us-west-1")])
    result = simulate(jobs(*workload), state, parse_policy(policy), context=PolicyContext(carbon=grid))
    log = result.log
    return {result.jobs[j].id: t for t, k, j in zip(log.time, log.kind, log.job) if k == START}


SHIFT = "fcfs+best-fit+carbon-shift[forecaster=persistence]"


@pytest.mark.parametrize("forecaster", ["persistence", "blend", "oracle"])
def test_a_job_with_slack_starts_at_the_clean_hour(forecaster):
    grid = Grid({"us-west-1": DAY * 3})
    # 1 h job, deadline 7 h: slack 7 - 1 - 2 (margin_h) = 4 h reaches 04:00
    got = starts([job("j", 0, H, deadline=7 * H)], f"fcfs+best-fit+carbon-shift[forecaster={forecaster}]", grid)
    assert got == {"j": 4 * H}


def test_no_slack_no_deadline_or_too_little_slack_start_at_once():
    grid = Grid({"us-west-1": DAY * 3})
    workload = [job("plain", 0, H), job("tight", 0, H, deadline=4.5 * H)]  # tight: 1.5 h of slack ends before 04:00
    nodes = [node(0, "us-west-1"), node(1, "us-west-1")]
    assert starts(workload, SHIFT, grid, nodes) == {"plain": 0.0, "tight": 0.0}
    # a job without a deadline is shifted within default_slack_h (no margin: it has no deadline to keep)
    assert starts([job("plain", 0, H)], SHIFT[:-1] + ",default_slack_h=4]", grid) == {"plain": 4 * H}
    assert starts([job("plain", 0, H)], SHIFT[:-1] + ",max_delay_h=3.9,default_slack_h=9]", grid) == {"plain": 0.0}


def test_the_last_start_that_meets_the_deadline_is_allowed():
    grid = Grid({"us-west-1": DAY * 3})
    # deadline 7 h: 7 - 1 - 2 = 4 h of slack, the run 04:00-05:00 ends margin_h = 2 h early
    assert starts([job("j", 0, H, deadline=7 * H)], SHIFT, grid) == {"j": 4 * H}
    assert starts([job("j", 0, H, deadline=6.99 * H)], SHIFT, grid) == {"j": 0.0}
    assert starts([job("j", 0, H, deadline=5.5 * H)], SHIFT[:-1] + ",margin_h=0.5]", grid) == {"j": 4 * H}


def test_min_saving():
    day = [300.0] * 24
    day[4] = 290.0  # 3.3 % cleaner
    grid = Grid({"us-west-1": day * 3})
    assert starts([job("j", 0, H, deadline=9 * H)], SHIFT, grid) == {"j": 0.0}
    assert starts([job("j", 0, H, deadline=9 * H)], SHIFT[:-1] + ",min_saving=0.03]", grid) == {"j": 4 * H}


def test_the_run_is_averaged_over_the_hours_it_spans():
    # submitted 00:30, 1.5 h: now averages (0.5 x 400 + 100) / 1.5 = 200, from 01:00 100, from 02:00 200
    day = [400.0, 100.0, 100.0] + [400.0] * 21
    grid = Grid({"us-west-1": day * 3})
    policy = "fcfs+best-fit+carbon-shift[forecaster=oracle,min_saving={}]"
    workload = [job("j", 0.5 * H, 1.5 * H, deadline=12 * H)]
    assert starts(workload, policy.format(0.5), grid) == {"j": 1 * H}  # saves exactly 50 %
    assert starts(workload, policy.format(0.51), grid) == {"j": 0.5 * H}


def test_the_cleanest_region_the_job_may_use_counts():
    # eu-west-2 is flat at 50: a job allowed there cannot gain by waiting; one kept in us-west-1 can
    grid = Grid({"us-west-1": DAY * 3, "eu-west-2": [50.0] * 72})
    nodes = [node(0, "us-west-1"), node(1, "eu-west-2"), node(2, "us-west-1")]
    workload = [job("anywhere", 0, H, deadline=9 * H),
                job("california", 0, H, deadline=9 * H, allowed_regions=frozenset({"us-west-1"}))]
    assert starts(workload, SHIFT, grid, nodes) == {"anywhere": 0.0, "california": 4 * H}


def test_without_hourly_data_nothing_is_shifted():
    # a static-table region: the forecast is flat, waiting never helps
    grid = Grid({})
    assert starts([job("j", 0, H, deadline=9 * H)], SHIFT, grid) == {"j": 0.0}
    state = ClusterState([node(0, "us-west-1")])  # and no carbon model at all
    result = simulate(jobs(job("j", 0, H, deadline=9 * H)), state, parse_policy(SHIFT))
    assert result.log.time[1] == 0.0 and result.log.kind[1] == START


def test_the_plan_is_made_once():
    # today's 02:00 turns out clean (50), which yesterday's was not: a plan remade when b arrives
    # at 02:00 would start a then; the plan made at 00:00 (04:00, from yesterday) stands
    today = list(DAY)
    today[2] = 50.0
    grid = Grid({"us-west-1": DAY + today + DAY})
    workload = [job("a", 0, H, deadline=9 * H), job("b", 2 * H, H, deadline=4 * H)]
    nodes = [node(0, "us-west-1"), node(1, "us-west-1")]
    assert starts(workload, SHIFT, grid, nodes) == {"a": 4 * H, "b": 2 * H}


def test_plans_do_not_herd_into_an_hour_the_cluster_cannot_hold():
    # one GPU, only 04:00 is clean: a gets it; b takes the next best hour with room (06:00, 200)
    # rather than queueing behind a into 05:00 (300)
    day = [300.0] * 24
    day[4], day[6] = 100.0, 200.0
    grid = Grid({"us-west-1": day * 3})
    workload = [job("a", 0, H, deadline=9 * H), job("b", 0, H, deadline=9 * H)]
    assert starts(workload, SHIFT, grid) == {"a": 4 * H, "b": 6 * H}


def test_bad_parameters_are_refused():
    with pytest.raises(PolicyError, match="forecaster='prophet': use one of persistence, blend, oracle"):
        parse_policy("fcfs+carbon-shift[forecaster=prophet]")
    with pytest.raises(PolicyError, match=r"min_saving=1\.0 must be a fraction in \[0, 1\)"):
        parse_policy("fcfs+carbon-shift[min_saving=1]")
    with pytest.raises(PolicyError, match="max_delay_h=-1.0 must be >= 0 hours"):
        parse_policy("fcfs+carbon-shift[max_delay_h=-1]")


COLUMNS = ("Datetime (UTC),Country,Zone Name,Zone Id,Carbon Intensity gCO₂eq/kWh (direct),"
           "Carbon Intensity gCO₂eq/kWh (LCA),Low Carbon Percentage,Renewable Percentage,Data Source,"
           "Data Estimated,Data Estimation Method\n")


def test_simulated_carbon_drops_by_the_hours_moved(tmp_path):
    hourly = tmp_path / "hourly"
    hourly.mkdir()
    rows = "".join(f"{datetime.fromtimestamp((HOUR0 - 24 + h) * H, timezone.utc):%Y-%m-%d %H:%M:%S},"
                   f"USA,CAISO,US-CAL-CISO,{v},{v * 10},0,0,x,false,\n" for h, v in enumerate(DAY * 3))
    (hourly / "CAL_hourly.csv").write_text(COLUMNS + rows, encoding="utf-8")
    (tmp_path / "c.yaml").write_text(
        "apiVersion: altostrat/v1\nkind: Cluster\nmetadata: {name: one}\nspec:\n  pools:\n"
        "    - {name: h, nodes: 1, gpu: {model: H100, count: 1}, cpu: 8, memoryGib: 64, region: us-west-1}\n")
    (tmp_path / "w.yaml").write_text(
        "apiVersion: altostrat/v1\nkind: Workload\nmetadata: {name: w}\nspec:\n  jobs:\n"
        "    - {name: j, submitS: 0, durationS: 3600, deadlineS: 25200}\n")

    def carbon(policy):
        req = RunRequest(str(tmp_path / "w.yaml"), str(tmp_path / "c.yaml"), policy, until=6 * H,
                         start=T0, carbon_data=str(hourly))
        return run(req)[0]["metrics"]

    base, shifted = carbon("fcfs+best-fit"), carbon("fcfs+best-fit+carbon-shift[max_delay_h=24]")
    # the same window and idle draw; the busy GPU's hour moves from 300 to 100 g/kWh
    busy_kw = DEFAULT_PUE * (GPU_WATTS["H100"][1] - GPU_WATTS["H100"][0]) / 1000
    assert base["carbon_kgco2e"] - shifted["carbon_kgco2e"] == pytest.approx(busy_kw * (300 - 100) / 1000)
    assert shifted["deadline_violation_rate"] == 0.0 and shifted["avg_wait_s"] == 4 * H


@settings(max_examples=40, deadline=None)
@given(
    day=st.lists(st.floats(10, 1000), min_size=24, max_size=24),
    noise=st.lists(st.floats(-100, 100), min_size=96, max_size=96),
    specs=st.lists(st.tuples(st.floats(0, 20), st.floats(0.1, 8), st.one_of(st.none(), st.floats(0, 30))),
                   min_size=1, max_size=6),
    forecaster=st.sampled_from(["persistence", "blend", "oracle"]),
    max_delay_h=st.floats(0, 30),
    default_slack_h=st.floats(0, 10),
)
def test_the_gate_never_makes_a_job_late(day, noise, specs, forecaster, max_delay_h, default_slack_h):
    grid = Grid({"us-west-1": list(np.tile(day, 4) + noise)})
    workload = [job(f"j{i}", s * H, d * H, deadline=None if slack is None else (s + d + slack) * H)
                for i, (s, d, slack) in enumerate(specs)]
    nodes = [node(i, "us-west-1") for i in range(len(specs))]  # room for all: every delay is the gate's
    policy = (f"fcfs+best-fit+carbon-shift[forecaster={forecaster},max_delay_h={max_delay_h},"
              f"default_slack_h={default_slack_h}]")
    got = starts(workload, policy, grid, nodes)
    for j in workload:
        start = got[j.id]
        assert j.submit <= start <= j.submit + max_delay_h * H
        assert start == j.submit or (start + grid.start_epoch) % H == 0  # at a whole UTC hour
        if j.deadline is None:
            assert start <= j.submit + default_slack_h * H
        else:
            assert start + j.duration <= max(j.deadline - CarbonShift.margin_h * H, j.submit + j.duration)
