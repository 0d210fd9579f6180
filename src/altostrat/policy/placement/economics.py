"""What the pricing placements (`cheapest`, `greenest`, `cost-carbon-time`) share: nodes grouped
into pools, scores per unit of work, and the walk that fills the best-scoring pool with room.

A unit of work is one second of the job at reference speed (`job.duration` counts them), so
a pool's per-second figure is divided by the job's speed there: a pool twice as fast at
twice the price costs the same per unit of work. A pool is the set of nodes that agree on
everything a score reads (pool name, GPU model and count, CPU, memory, region, cloud,
lifecycle, price): the nodes of one pool of a Cluster spec.

Scores depend on the job and the pool, not on what runs where, so each job's ranking of
pools is computed once (again when the hour moves, for scores that read the grid) and a
placement is one walk over the model's tightest-first index, as `best-fit` does, stopping
as soon as the job's best-ranked pool holds the whole gang.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from altostrat import engine
from altostrat.catalog.carbon import CarbonModel
from altostrat.catalog.power import node_power
from altostrat.cluster.state import ClusterState, Node, Plan, allowed_on, node_kind
from altostrat.compliance import Place, in_use, risk
from altostrat.policy.placement.common import best_over_models, by_fit, fill, leftover
from altostrat.resources import MILLI
from altostrat.workload.job import Job

INF = math.inf
J_PER_KWH = 3.6e6
RISK_SLACK = 1e-9  # risks are sums of float weights: a bound equal to such a sum (0.2 + 0.1) admits it


def usd_per_work(job: Job, node: Node, egress_usd: Callable[[Job, Node], float] | None = None) -> float:
    """USD per unit of work on the node: its price times the job's share of it (as cost accrues,
    engine.task_share) per second, over the job's speed there; plus the data transfer a start
    there pays (`egress_usd(job, node)`) spread over the job's whole work. inf when unpriced."""
    if node.price_per_s is None:
        return INF
    usd = node.price_per_s * engine.task_share(node, job) * job.tasks / job.speed(node.gpu_model)
    if egress_usd is not None and job.dataset_gb:
        usd += egress_usd(job, node) / max(job.duration, 1.0)
    return usd


def watts(job: Job, node: Node) -> float | None:
    """Facility watts (PUE included) the job's tasks draw on nodes like this one: their devices
    at full use above idle, plus their dominant share of the nodes' idle draw. None when the
    node's GPU model has no power figures."""
    power = node_power(node.gpu_model, node.gpus, node.cpu_milli, node.region)
    if power is None:
        return None
    per_task = (job.gpu_milli * power.gpu_w_per_milli + job.cpu_milli * power.cpu_w_per_milli
                + power.static_w * engine.task_share(node, job))
    return per_task * job.tasks


def gco2_per_work(job: Job, node: Node, intensity: float | None) -> float:
    """gCO2e per unit of work at a grid intensity (gCO2e/kWh); inf when either is unknown."""
    w = watts(job, node)
    if w is None or intensity is None:
        return INF
    return w * intensity / J_PER_KWH / job.speed(node.gpu_model)


def run_seconds(job: Job, node: Node, transfer_s: Callable[[Job, Node], float] | None = None) -> float:
    """Expected seconds from start to end: the work at the node's speed, plus moving the job's
    data there first. Queueing is not modelled."""
    seconds = job.duration / job.speed(node.gpu_model)
    if transfer_s is not None and job.dataset_gb:
        seconds += transfer_s(job, node)
    return seconds


def normalised(values: list[float]) -> list[float]:
    """Each value over the best (least) finite one, so that dimensions in different units add.
    Infinite stays infinite (worst); if none is finite the dimension tells nothing apart (all 1);
    a best of 0 makes every positive value infinite."""
    finite = [v for v in values if v < INF]
    if not finite:
        return [1.0] * len(values)
    best = min(finite)
    if best > 0:
        return [v / best for v in values]
    return [0.0 if v == 0 else INF for v in values]


@dataclass(slots=True)
class Pools:
    """The state's nodes grouped into pools, once per state."""

    state: ClusterState
    reps: list[Node]  # one node of each pool, in cluster order
    of: list[int]  # node idx -> its pool

    @classmethod
    def of_state(cls, state: ClusterState) -> Pools:
        ids: dict[tuple, int] = {}
        reps: list[Node] = []
        of: list[int] = []
        for node in state.nodes:
            gid = ids.setdefault(node_kind(node), len(reps))
            if gid == len(reps):
                reps.append(node)
            of.append(gid)
        return cls(state, reps, of)


@dataclass(slots=True)
class Ranking:
    """A job's view of the pools: its pools best first, and where only empty nodes will do."""

    job: Job
    key: object  # what the scores were computed for (the hour, for scores reading the grid)
    rank: list[int]  # pool -> 0 for the best, -1 where the job may not go
    empty_only: list[bool]  # pool -> only nodes holding no task (max_risk leaves no room for shared tenancy)
    top: dict[str | None, int]  # GPU model (None for a CPU-only job) -> best rank among its pools


def fits_empty(job: Job, node: Node) -> bool:
    """One task of the job fits the node when it is empty."""
    g = job.gpu_milli
    if g and (not node.gpus or (job.gpu_models is not None and node.gpu_model not in job.gpu_models)):
        return False
    return job.cpu_milli <= node.cpu_milli and job.mem_mib <= node.mem_mib and (g < MILLI or g // MILLI <= node.gpus)


@dataclass(eq=False)
class PoolPlacement:
    """Base of the pricing placements: a subclass gives `scores` (lower is better) and is
    registered; this class does the grouping, the risk bound and the walk."""

    max_risk: float | None = None
    _pools: Pools | None = field(default=None, init=False, repr=False)
    _ranks: dict[int, Ranking] = field(default_factory=dict, init=False, repr=False)
    _context: object = field(default=None, init=False, repr=False)
    _carbon: CarbonModel = field(default_factory=CarbonModel, init=False, repr=False)
    _start_epoch: float | None = field(default=None, init=False, repr=False)
    _grid: dict[tuple, float | None] = field(default_factory=dict, init=False, repr=False)

    reads_grid = False  # scores change with the hour: rankings are per hour

    def __post_init__(self) -> None:
        if self.max_risk is not None and not 0 <= self.max_risk <= 1:
            raise ValueError(f"max_risk={self.max_risk}: a risk bound is in [0, 1] (compliance.RISK_WEIGHTS)")

    def bind(self, context) -> None:
        self._context = context
        carbon = getattr(context, "carbon", None)
        self._carbon = carbon if carbon is not None else CarbonModel()
        self._start_epoch = None
        self._grid.clear()
        self._ranks.clear()

    def scores(self, job: Job, nodes: list[Node], hour: int) -> list[float]:
        """Per node (one per candidate pool), the job's score there: lower is better."""
        raise NotImplementedError

    # -- what the scores read ------------------------------------------------------------
    def egress_usd(self) -> Callable[[Job, Node], float] | None:
        return getattr(self._context, "egress_usd", None)

    def transfer_s(self) -> Callable[[Job, Node], float] | None:
        return getattr(self._context, "transfer_s", None)

    def hour(self, state: ClusterState) -> int:
        """The hour of the scheduling pass, in epoch hours (UTC) of the run's calendar."""
        if self._start_epoch is None:
            self._start_epoch = self._carbon.start_epoch
        return int((self._start_epoch + state.now) // 3600)

    def intensity(self, region: str | None, hour: int) -> float | None:
        """gCO2e/kWh of the region's grid at the hour: the hourly truth is known by then."""
        key = (region, hour)
        if key not in self._grid:
            values = self._carbon.intensity(region, np.array([hour], dtype=np.int64))
            self._grid[key] = None if values is None else float(values[0])
        return self._grid[key]

    # -- placing ---------------------------------------------------------------------------
    def _ranking(self, job: Job, state: ClusterState) -> Ranking:
        pools = self._pools
        if pools is None or pools.state is not state:
            pools = self._pools = Pools.of_state(state)
            self._ranks.clear()
        hour = self.hour(state) if self.reads_grid else None
        ranking = self._ranks.get(job.idx)
        if ranking is not None and ranking.job is job and ranking.key == hour:
            return ranking
        n = len(pools.reps)
        empty_only = [False] * n
        allowed = []
        for gid, rep in enumerate(pools.reps):
            if not (allowed_on(rep, job) and fits_empty(job, rep)):
                continue
            if self.max_risk is not None:
                bound = self.max_risk + RISK_SLACK
                if risk(job.data_region, Place(rep.region, rep.spot)) > bound:
                    continue
                empty_only[gid] = risk(job.data_region, Place(rep.region, rep.spot, shared=True)) > bound
            allowed.append(gid)
        rank = [-1] * n
        top: dict[str | None, int] = {}
        if allowed:
            scores = self.scores(job, [pools.reps[g] for g in allowed], hour)
            order = sorted(range(len(allowed)), key=lambda i: (scores[i], allowed[i]))  # ties: cluster order
            for r, i in enumerate(order):
                gid = allowed[i]
                rank[gid] = r
                model = pools.reps[gid].gpu_model if job.gpu_milli else None
                top.setdefault(model, r)
        ranking = Ranking(job, hour, rank, empty_only, top)
        self._ranks[job.idx] = ranking
        return ranking

    def place(self, job: Job, state: ClusterState) -> Plan | None:
        r = self._ranking(job, state)
        if not r.top:
            return None
        if job.gpu_milli:
            models = [m for m in state.candidate_models(job) if m.model in r.top and state.fits_now(m, job)]
            models.sort(key=lambda m: r.top[m.model])
        else:
            models = [None]
        of, rank, empty_only, nodes = self._pools.of, r.rank, r.empty_only, state.nodes
        best_rank, best_plan = len(rank), None
        for model in models:
            top = r.top[model.model if model is not None else None]
            if top >= best_rank:
                break
            partial: dict[int, list] = {}  # rank -> [tasks left, plan so far]
            for idx in by_fit(state, model, job, tightest=True):
                gid = of[idx]
                k = rank[gid]
                if k < 0 or k >= best_rank:
                    continue
                node = nodes[idx]
                if empty_only[gid] and in_use(node):
                    continue
                room = state.room(node, job)
                if not room:
                    continue
                acc = partial.get(k)
                if acc is None:
                    acc = partial[k] = [job.tasks, []]
                take = min(room, acc[0])
                acc[1].append((idx, take))
                acc[0] -= take
                if not acc[0]:
                    best_rank, best_plan = k, acc[1]
                    if k == top:
                        break  # nothing of this model ranks better
        if best_plan is None and job.tasks > 1:
            best_plan = self._across_pools(job, state, r)
        if best_plan is not None:
            del self._ranks[job.idx]  # it starts: its ranking is not needed again
        return best_plan

    def _across_pools(self, job: Job, state: ClusterState, r: Ranking) -> Plan | None:
        """No single pool holds the gang: best-fit over the nodes of every pool it may use."""
        of, nodes = self._pools.of, state.nodes

        def usable(idx: int) -> bool:
            gid = of[idx]
            return r.rank[gid] >= 0 and not (r.empty_only[gid] and in_use(nodes[idx]))

        return best_over_models(
            state,
            job,
            lambda model: fill(state, job, filter(usable, by_fit(state, model, job, tightest=True))),
            score=lambda plan: leftover(state, job, plan),
        )
