"""`cheapest`, `greenest` and `cost-carbon-time` on tiny hand-checked clusters, and their invariants."""

from __future__ import annotations

import pytest
from helpers import check_state, job
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import altostrat.sim.simulator as simulator
from altostrat.catalog.carbon import CarbonModel
from altostrat.catalog.regions import jurisdiction
from altostrat.cluster.state import ClusterState, Node, allowed_on
from altostrat.compliance import node_risk, plan_risk
from altostrat.engine import Engine, PolicyContext
from altostrat.policy.placement.economics import gco2_per_work, normalised, run_seconds, usd_per_work
from altostrat.policy.registry import PolicyError, build_piece, parse_policy
from altostrat.resources import MILLI
from altostrat.sim.eventlog import FINISH, PREEMPT, REJECT, START, SUBMIT
from altostrat.workload.job import number_jobs

START_AT = "2023-01-01T00:00Z"
GIB = 1024


def nodes_of(*pools) -> ClusterState:
    """pools: (name, count, GPU model, GPUs, vCPUs, memory GiB, region, USD per hour or None, spot)."""
    nodes = []
    for name, count, model, gpus, cpu, mem, region, price_hr, spot in pools:
        for _ in range(count):
            nodes.append(Node(len(nodes), f"{name}-{len(nodes)}", name, model, gpus, cpu * MILLI, mem * GIB,
                              region=region, price_per_s=None if price_hr is None else price_hr / 3600,
                              spot=spot, jurisdiction=jurisdiction(region)))
    return ClusterState(nodes)


AWS = ("aws-od", 2, "V100", 4, 32, 244, "us-east-1", 12.0, False)  # nodes 0, 1
GCP = ("gcp-od", 1, "V100", 8, 64, 416, "us-central1", 20.0, False)  # node 2
SPOT = ("aws-spot", 2, "V100", 4, 32, 244, "us-east-1", 2.4, True)  # nodes 3, 4


def two_gpus(**kw):
    """Two tasks of one V100, 4 vCPUs and 16 GiB each: a quarter of an AWS node per task (GPU dominant)."""
    return number_jobs([job("j", 0, 3600, gpus=2, cpu_milli=4 * MILLI, mem_mib=16 * GIB, **kw)])[0]


def place(name, state, j, context=None):
    piece = build_piece("placement", name)
    if context is not None:
        piece.bind(context)
    return piece.place(j, state)


# -- cheapest -------------------------------------------------------------------------------
def test_cost_per_unit_of_work_by_hand():
    state = nodes_of(AWS, GCP, SPOT)
    j = two_gpus()
    aws, gcp, spot = state.nodes[0], state.nodes[2], state.nodes[3]
    assert usd_per_work(j, aws) == pytest.approx(12 / 3600 * 0.25 * 2)  # 1/600 USD per reference second
    assert usd_per_work(j, gcp) == pytest.approx(20 / 3600 * 0.125 * 2)  # 1/720: an eighth of a node per task
    assert usd_per_work(j, spot) == pytest.approx(2.4 / 3600 * 0.25 * 2)  # 1/3000
    # a per-start transfer of 3.6 USD spread over 3600 s of work adds 0.001 USD per second, if the job moves data
    assert usd_per_work(j, aws, lambda jb, nd: 3.6) == pytest.approx(1 / 600)
    moving = two_gpus(dataset_gb=10.0, data_region="us-central1")
    assert usd_per_work(moving, aws, lambda jb, nd: 3.6) == pytest.approx(1 / 600 + 0.001)
    unpriced = Node(0, "x", "x", "V100", 4, 32 * MILLI, 244 * GIB)
    assert usd_per_work(j, unpriced) == float("inf")



def test_cheapest_fills_capacity_already_paid_for_before_booting_cheaper_capacity():
    state = nodes_of(AWS, SPOT)  # the AWS pool is up whatever happens; make the spot pool elastic
    for node in state.nodes[2:]:
        node.elastic = True
    j = two_gpus(spot=True)
    assert {idx for idx, _ in place("cheapest", state, j)} == {0}  # marginal cost 0 beats 2.4 USD/h
    assert {idx for idx, _ in place("cheapest[marginal=false]", state, j)} == {2}  # list prices: spot is cheaper

def test_cheapest_takes_the_cheapest_pool_and_spot_only_for_jobs_that_allow_it():
    state = nodes_of(AWS, GCP, SPOT)
    assert place("cheapest", state, two_gpus()) == [(2, 2)]
    assert place("cheapest", state, two_gpus(spot=True)) == [(3, 2)]
    assert place("best-fit", state, two_gpus()) == [(0, 2)]  # tightest nodes first, whatever they cost


def test_cheapest_respects_residency():
    state = nodes_of(AWS, GCP, SPOT)
    assert place("cheapest", state, two_gpus(allowed_regions=frozenset({"us-east-1"}))) == [(0, 2)]
    assert place("cheapest", state, two_gpus(allowed_regions=frozenset({"us-east-1"}), spot=True)) == [(3, 2)]
    assert place("cheapest", state, two_gpus(allowed_regions=frozenset({"EU"}))) is None


def test_cheapest_moves_on_when_the_cheapest_pool_is_full():
    state = nodes_of(AWS, GCP, SPOT)
    state.allocate(two_gpus(), [(2, 2)] * 3 + [(2, 1)])  # 7 of gcp's 8 GPUs
    assert place("cheapest", state, two_gpus()) == [(0, 2)]
    one = number_jobs([job("one", 0, 3600, gpus=1, cpu_milli=4 * MILLI)])[0]
    assert place("cheapest", state, one) == [(2, 1)]


def test_speed_makes_a_dearer_pool_cheaper_per_unit_of_work():
    fast = ("gcp-a100", 1, "A100", 8, 64, 416, "us-central1", 40.0, False)
    state = nodes_of(AWS, fast)
    slow = two_gpus()
    assert usd_per_work(slow, state.nodes[2]) == pytest.approx(1 / 360)
    assert place("cheapest", state, slow) == [(0, 2)]
    quick = two_gpus(speeds={"A100": 2.0})
    assert usd_per_work(quick, state.nodes[2]) == pytest.approx(1 / 720)  # twice the speed halves it
    assert place("cheapest", state, quick) == [(2, 2)]


def test_a_gang_spans_pools_only_when_no_pool_holds_it():
    state = nodes_of(AWS, GCP, SPOT)
    big = number_jobs([job("big", 0, 3600, gpus=12, cpu_milli=MILLI)])[0]
    # 8 GPUs on-demand in each of aws-od and gcp-od: best-fit over both, tightest first
    assert place("cheapest", state, big) == [(0, 4), (1, 4), (2, 4)]
    assert place("cheapest", state, number_jobs([job("huge", 0, 3600, gpus=17)])[0]) is None


def test_unpriced_pools_come_last():
    free_looking = ("lab", 1, "V100", 4, 32, 244, "us-east-1", None, False)  # node 0: no price
    state = nodes_of(free_looking, GCP)
    assert place("cheapest", state, two_gpus()) == [(1, 2)]
    state.allocate(two_gpus(), [(1, 2)] * 4)
    assert place("cheapest", state, two_gpus()) == [(0, 2)]


# -- compliance ----------------------------------------------------------------------------
EU_OD = ("gcp-eu", 1, "V100", 8, 64, 416, "europe-west1", 30.0, False)  # node 2
EU_SPOT = ("gcp-eu-spot", 2, "V100", 4, 32, 244, "europe-west1", 5.0, True)  # nodes 3, 4


def eu_data(**kw):
    return two_gpus(spot=True, dataset_gb=1.0, data_region="eu-west-1", **kw)


def test_max_risk_keeps_data_in_its_jurisdiction_and_off_spot():
    state = nodes_of(AWS, EU_OD, EU_SPOT)
    assert place("cheapest", state, eu_data()) == [(3, 2)]  # 1/1440 USD per s beats aws 1/600 and gcp-eu 1/480
    # spot risk 0.2 > 0.15; us-east-1 holds EU data: 0.5
    assert place("cheapest[max_risk=0.15]", state, eu_data()) == [(2, 2)]
    assert place("cheapest[max_risk=0.6]", state, eu_data(allowed_regions=frozenset({"US"}))) == [(0, 2)]
    assert place("cheapest[max_risk=0.4]", state, eu_data(allowed_regions=frozenset({"US"}))) is None


def test_max_risk_counts_a_node_in_use_as_shared():
    state = nodes_of(AWS, EU_OD, EU_SPOT)
    other = number_jobs([job("other", 0, 60, gpus=1)])[0]
    state.allocate(other, [(3, 1)])
    assert place("cheapest", state, eu_data()) == [(3, 2)]  # tightest spot node
    assert node_risk(eu_data(), state.nodes[3]) == pytest.approx(0.3)  # spot + shared
    assert place("cheapest[max_risk=0.25]", state, eu_data()) == [(4, 2)]  # spot, but alone
    assert plan_risk(eu_data(), state, [(4, 2)]) == pytest.approx(0.2)
    assert plan_risk(eu_data(), state, [(0, 1), (4, 1)]) == pytest.approx(0.5)
    state.allocate(other, [(4, 1)])
    state.allocate(other, [(2, 1)])
    # both spot nodes shared now (0.3): on-demand in the EU, shared, is 0.1
    assert place("cheapest[max_risk=0.25]", state, eu_data()) == [(2, 2)]
    assert place("cheapest[max_risk=0.05]", state, eu_data()) is None  # every acceptable node is shared: wait
    assert place("cheapest[max_risk=0.3]", state, eu_data()) == [(3, 2)]


# -- greenest ------------------------------------------------------------------------------
HEADER = "Datetime (UTC),Zone Id,Carbon Intensity gCO₂eq/kWh (direct)\n"


@pytest.fixture
def grid(tmp_path):
    """PJM (us-east-1) at 400 then 400 gCO2e/kWh, CAISO (us-west-1) at 100 then 600."""
    for zone, values in (("US-MIDA-PJM", (400, 400)), ("US-CAL-CISO", (100, 600))):
        rows = "".join(f"2023-01-01 0{h}:00:00,{zone},{v}\n" for h, v in enumerate(values))
        (tmp_path / f"{zone}_2023_hourly.csv").write_text(HEADER + rows, encoding="utf-8")
    return PolicyContext(carbon=CarbonModel(START_AT, str(tmp_path)))


EAST = ("east", 1, "V100", 4, 32, 244, "us-east-1", 10.0, False)  # node 0: PUE 1.135
WEST = ("west", 1, "V100", 4, 32, 244, "us-west-1", 12.0, False)  # node 1: PUE 1.185 (default)


def test_carbon_per_unit_of_work_by_hand():
    state = nodes_of(EAST)
    one = number_jobs([job("one", 0, 3600, gpus=1)])[0]
    # V100: 30 W idle, 300 W max; 32 vCPUs at 0.74 W idle; a quarter of the node's idle draw is the job's
    w = 1.135 * ((300 - 30) + 0.25 * (4 * 30 + 32 * 0.74))
    assert gco2_per_work(one, state.nodes[0], 400.0) == pytest.approx(w * 400 / 3.6e6)
    assert gco2_per_work(number_jobs([job("f", 0, 1, gpus=1, speeds={"V100": 2.0})])[0], state.nodes[0], 400.0) == (
        pytest.approx(w * 400 / 3.6e6 / 2))
    assert gco2_per_work(one, state.nodes[0], None) == float("inf")
    assert gco2_per_work(one, Node(0, "x", "x", "TPU", 4, 1, 1), 400.0) == float("inf")  # no power figures


def test_greenest_takes_the_cleaner_grid_at_the_hour(grid):
    state = nodes_of(EAST, WEST)
    one = number_jobs([job("one", 0, 3600, gpus=1)])[0]
    assert place("greenest", state, one, grid) == [(1, 1)]  # 1.185 x 100 < 1.135 x 400
    state.now = 3600.0
    assert place("greenest", state, one, grid) == [(0, 1)]  # 1.135 x 400 < 1.185 x 600
    state.now = 0.0
    assert place("greenest", state, one, PolicyContext()) == [(1, 1)]  # static: 1.185 x 240.6 < 1.135 x 367.8


def test_greenest_through_the_simulator_follows_the_hour(grid):
    state = nodes_of(EAST, WEST)
    work = number_jobs([job("a", 0, 600, gpus=1), job("b", 3700, 600, gpus=1)])
    result = simulator.simulate(work, state, parse_policy("fcfs+greenest"), context=grid)
    starts = {j: node for t, k, j, node in zip(result.log.time, result.log.kind, result.log.job, result.log.node)
              if k == START}
    assert starts == {0: 1, 1: 0}


# -- cost-carbon-time ----------------------------------------------------------------------
def test_cost_carbon_time_scores_by_hand(grid):
    state = nodes_of(EAST, WEST)
    piece = build_piece("placement", "cost-carbon-time")
    piece.bind(grid)
    one = number_jobs([job("one", 0, 3600, gpus=1)])[0]
    carbon_ratio = 1.135 * 400 / (1.185 * 100)  # same hardware: PUE x intensity
    assert piece.scores(one, state.nodes, piece.hour(state)) == pytest.approx([1 + carbon_ratio + 1, 12 / 10 + 1 + 1])


@pytest.mark.parametrize("weights, chosen", [
    ("", 1),  # 5.83 vs 3.2: the clean grid
    ("w_cost=10", 1),  # 14.83 vs 14
    ("w_cost=20", 0),  # 24.83 vs 26: price wins
    ("w_carbon=0", 0),
    ("w_cost=0,w_time=0", 1),
])
def test_weights_switch_the_choice(grid, weights, chosen):
    state = nodes_of(EAST, WEST)
    one = number_jobs([job("one", 0, 3600, gpus=1)])[0]
    assert place(f"cost-carbon-time[{weights}]", state, one, grid) == [(chosen, 1)]


def test_time_weight_prefers_the_faster_pool():
    fast = ("fast", 1, "A100", 8, 96, 680, "us-central1", 100.0, False)  # node 1: 1/864 USD per s vs 1/1440
    state = nodes_of(EAST, fast)
    quick = number_jobs([job("q", 0, 3600, gpus=1, speeds={"A100": 3.0})])[0]
    assert run_seconds(quick, state.nodes[1]) == 1200
    assert run_seconds(quick, state.nodes[1], lambda jb, nd: 50.0) == 1200  # no dataset: nothing moves
    assert place("cost-carbon-time[w_cost=1,w_carbon=0,w_time=0]", state, quick) == [(0, 1)]
    assert place("cost-carbon-time[w_cost=0,w_carbon=0,w_time=1]", state, quick) == [(1, 1)]


def test_normalised():
    inf = float("inf")
    assert normalised([2.0, 4.0, inf]) == [1.0, 2.0, inf]
    assert normalised([inf, inf]) == [1.0, 1.0]  # nobody modelled: the dimension cannot tell them apart
    assert normalised([0.0, 3.0]) == [0.0, inf]


@pytest.mark.parametrize("name, fix", [
    ("cheapest[max_risk=2]", "max_risk=2.0: a risk bound is in [0, 1]"),
    ("greenest[max_risk=-0.1]", "max_risk=-0.1"),
    ("cost-carbon-time[w_cost=0,w_carbon=0,w_time=0]", "one at least > 0"),
    ("cost-carbon-time[w_time=-1]", "each must be finite and >= 0"),
    ("cheapest[w_cost=1]", "unknown parameter 'w_cost'"),
])
def test_bad_parameters_say_what_to_fix(name, fix):
    with pytest.raises(PolicyError, match=fix.replace("[", r"\[")):
        parse_policy(f"fcfs+{name}")


# -- invariants through the simulator ------------------------------------------------------
class BoundedEngine(Engine):
    """Checks, at every start, residency and spot opt-in on every node and the risk bound; and
    the state's invariants after every pass."""

    instances: list = []

    def __init__(self, *args, **kw):
        super().__init__(*args, **kw)
        BoundedEngine.instances.append(self)

    def _start(self, job, plan, now):
        for entry in plan:
            assert allowed_on(self.state.nodes[entry[0]], job), "residency or spot opt-in violated"
        bound = self.placement.max_risk
        assert bound is None or plan_risk(job, self.state, plan) <= bound + 1e-12
        super()._start(job, plan, now)

    def schedule(self, now):
        decisions = super().schedule(now)
        check_state(self.state, self)
        return decisions


REGIONS = st.sampled_from([None, frozenset({"us-east-1"}), frozenset({"US"}), frozenset({"EU"}),
                           frozenset({"europe-west1", "us-central1"})])
job_strategy = st.builds(
    lambda submit, duration, tasks, frac, spot, regions, data: job(
        "", submit, duration, tasks=1 if frac else tasks, gpu_milli=500 if frac else MILLI, cpu_milli=2 * MILLI,
        mem_mib=8 * GIB, spot=spot, allowed_regions=regions, data_region=data, dataset_gb=1.0 if data else 0.0),
    st.floats(0, 7200), st.floats(1, 3000), st.integers(1, 12), st.booleans(), st.booleans(), REGIONS,
    st.sampled_from([None, "eu-west-1", "us-east-1"]),
)
policy_strategy = st.builds(
    lambda order, piece, risk, backfill: f"{order}+{piece}max_risk={risk}]" + ("+backfill" if backfill else ""),
    st.sampled_from(["fcfs", "sjf", "priority"]),
    st.sampled_from(["cheapest[", "greenest[", "cost-carbon-time[w_cost=2,w_time=0.5,"]),
    st.sampled_from(["none", "0.25", "0.6", "1"]), st.booleans(),
)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(job_strategy, min_size=1, max_size=30), policy_strategy)
def test_pricing_placements_keep_the_invariants(raw, policy_name):
    for i, j in enumerate(raw):
        j.id = f"j{i}"
    work = number_jobs(raw)
    state = nodes_of(AWS, GCP, SPOT, EU_OD, EU_SPOT)
    BoundedEngine.instances = []
    original = simulator.Engine
    simulator.Engine = BoundedEngine
    try:
        result = simulator.simulate(work, state, parse_policy(policy_name), context=PolicyContext(carbon=CarbonModel()))
    finally:
        simulator.Engine = original
    engine = BoundedEngine.instances[0]
    running = {}
    for kind, j in zip(result.log.kind, result.log.job):
        if kind == START:
            assert not running.get(j), "a job placed twice"
            running[j] = True
        elif kind in (FINISH, PREEMPT):
            assert running.get(j)
            running[j] = False
    kinds = list(zip(result.log.kind, result.log.job))
    submitted = {j for k, j in kinds if k == SUBMIT}
    finished = {j for k, j in kinds if k == FINISH}
    rejected = {j for k, j in kinds if k == REJECT}
    waiting = set(engine.pending)  # a risk bound no node meets leaves a job waiting
    assert submitted == {j.idx for j in work}
    assert finished | rejected | waiting == submitted
    assert not finished & rejected and not (finished | rejected) & waiting
    assert not engine.running
