"""Demand as TCO sees it: which nodes are busy when, from one simulation run.

A node is busy while it holds at least one task. The event log records a start's first
node only, so the run is made on a RecordingState that keeps every allocation's nodes.
Busy intervals are then turned into step curves (busy nodes over time) per pool.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from altostrat.cluster.build import load_cluster
from altostrat.cluster.state import Alloc, ClusterState, Node, Plan
from altostrat.engine import PolicyContext
from altostrat.policy.registry import parse_policy
from altostrat.sim.eventlog import FINISH, PREEMPT, START
from altostrat.sim.simulator import SimResult, simulate
from altostrat.workload.job import Job


class RecordingState(ClusterState):
    """A ClusterState that keeps the distinct nodes of every allocation, per job, in order.

    Only the engine's starts allocate (preemption tries victims with release/restore), so
    a job's k-th allocation belongs to its k-th START in the event log.
    """

    def __init__(self, nodes: list[Node]) -> None:
        super().__init__(nodes)
        self.allocs: dict[int, list[tuple[int, ...]]] = {}

    def allocate(self, job: Job, plan: Plan) -> Alloc:
        alloc = super().allocate(job, plan)
        self.allocs.setdefault(job.idx, []).append(tuple(dict.fromkeys(idx for idx, _ in alloc)))
        return alloc


@dataclass(frozen=True, slots=True)
class Curve:
    """A step function of time: level[i] on [times[i], times[i+1]), 0 before times[0] and after the last."""

    times: np.ndarray
    level: np.ndarray

    @staticmethod
    def of(intervals: list[np.ndarray]) -> Curve:
        """How many of the interval sets cover each instant (each set's intervals disjoint)."""
        iv = np.concatenate([a for a in intervals if len(a)]) if any(len(a) for a in intervals) else np.zeros((0, 2))
        if not len(iv):
            return Curve(np.zeros(0), np.zeros(0, dtype=np.int64))
        points = np.concatenate((iv[:, 0], iv[:, 1]))
        deltas = np.concatenate((np.ones(len(iv), np.int64), -np.ones(len(iv), np.int64)))
        times, at = np.unique(points, return_inverse=True)
        step = np.zeros(len(times), np.int64)
        np.add.at(step, at, deltas)  # all changes at one instant at once: a node freed and one taken is no peak
        return Curve(times, np.cumsum(step))

    def at(self, t: np.ndarray) -> np.ndarray:
        k = np.searchsorted(self.times, t, side="right") - 1
        return np.where(k >= 0, self.level[np.clip(k, 0, None)], 0) if len(self.times) else np.zeros(len(t), np.int64)

    def integral(self) -> float:
        """Node-seconds under the curve."""
        return float(np.sum(self.level[:-1] * np.diff(self.times))) if len(self.times) else 0.0

    def peak(self) -> int:
        return int(self.level.max()) if len(self.level) else 0

    def seconds_at_level(self, t0: float, t1: float) -> np.ndarray:
        """Seconds of [t0, t1) spent at each level 0, 1, … (index = level)."""
        edges = np.unique(np.concatenate((self.times[(self.times > t0) & (self.times < t1)], [t0, t1])))
        levels = self.at(edges[:-1])
        return np.bincount(levels, weights=np.diff(edges), minlength=self.peak() + 1)

    def with_floor(self, floor: int, t0: float, t1: float) -> Curve:
        """max(self, floor) on [t0, t1), self elsewhere."""
        times = np.unique(np.concatenate((self.times, [t0, t1])))
        level = self.at(times)
        inside = (times >= t0) & (times < t1)
        return Curve(times, np.where(inside, np.maximum(level, floor), level))

    @staticmethod
    def constant(n: int, t0: float, t1: float) -> Curve:
        return Curve(np.array([t0, t1]), np.array([n, 0], dtype=np.int64))


def clip(intervals: np.ndarray, t0: float, t1: float) -> np.ndarray:
    """The parts of the intervals inside [t0, t1]."""
    iv = np.clip(intervals, t0, t1)
    return iv[iv[:, 1] > iv[:, 0]]


def merge(intervals: np.ndarray, before: float = 0.0, after: float = 0.0) -> np.ndarray:
    """Widen each [start, end) to [start - before, end + after) and merge those that touch or overlap."""
    if not len(intervals):
        return np.zeros((0, 2))
    iv = intervals[np.argsort(intervals[:, 0], kind="stable")]
    starts, ends = iv[:, 0] - before, iv[:, 1] + after
    reach = np.maximum.accumulate(ends)
    first = np.concatenate(([True], starts[1:] > reach[:-1]))  # beyond every earlier end: a new run begins
    at = np.flatnonzero(first)
    return np.column_stack((starts[at], np.maximum.reduceat(ends, at)))


@dataclass
class BusyRun:
    """One simulation and the busy intervals of its nodes."""

    result: SimResult
    nodes: list[Node]
    busy: list[np.ndarray]  # per node index: sorted, disjoint [start, end) intervals, shape (k, 2)
    t0: float  # first submit
    t1: float  # last event
    last_submit: float

    def pools(self) -> dict[str, list[int]]:
        """Pool name -> its node indexes, in cluster order."""
        out: dict[str, list[int]] = {}
        for node in self.nodes:
            out.setdefault(node.pool, []).append(node.idx)
        return out


def busy_intervals(result: SimResult, allocs: dict[int, list[tuple[int, ...]]], n_nodes: int, end: float) -> list[np.ndarray]:
    """Per node, the merged intervals during which it holds a task; runs still open close at `end`."""
    per_node: list[list[tuple[float, float]]] = [[] for _ in range(n_nodes)]
    attempt: dict[int, int] = {}
    running: dict[int, tuple[float, tuple[int, ...]]] = {}
    log = result.log
    for t, kind, j in zip(log.time, log.kind, log.job):
        if kind == START:
            k = attempt.get(j, 0)
            attempt[j] = k + 1
            running[j] = (t, allocs[j][k])
        elif kind == FINISH or kind == PREEMPT:
            start, nodes = running.pop(j)
            for i in nodes:
                per_node[i].append((start, t))
    for start, nodes in running.values():
        for i in nodes:
            per_node[i].append((start, end))
    if sum(attempt.values()) != sum(len(a) for a in allocs.values()):
        raise RuntimeError("allocations and logged starts disagree: something other than a start allocated")
    return [merge(np.asarray(iv, dtype=np.float64).reshape(-1, 2)) for iv in per_node]


def simulate_busy(jobs: list[Job], cluster: str, policy: str, context: PolicyContext) -> BusyRun:
    """Simulate `jobs` (numbered) on a fresh copy of `cluster` and record which nodes are busy when.

    TCO prices each pool under every lifecycle itself, so the cluster's own lifecycles are
    set aside: every node runs as plain capacity (no spot taint, no revocations).
    """
    _, fresh = load_cluster(cluster)
    for node in fresh.nodes:
        node.spot = False
        node.revocations_per_hour = 0.0
    state = RecordingState(fresh.nodes)
    pol = parse_policy(policy)
    prepare = getattr(pol.placement, "prepare", None)
    if prepare is not None:  # placements that model the target workload (fgd) see the whole trace
        prepare(jobs)
    result = simulate(jobs, state, pol, context=context)
    t = result.log.time
    t0 = min(j.submit for j in jobs) if jobs else 0.0
    t1 = max(t) if t else t0
    return BusyRun(result, state.nodes, busy_intervals(result, state.allocs, len(state.nodes), t1), t0, t1,
                   max(j.submit for j in jobs) if jobs else t0)
