"""Fragmentation Gradient Descent (Weng et al., "Beware of Fragmentation", USENIX ATC'23).

Fragmentation of node n for a task class m (a CPU request c_m and k_m GPUs of g_m milli
each; a share of one GPU is k_m = 1, g_m < 1000): if m cannot run on n (GPU model not
allowed, CPU short, or fewer than k_m GPUs with g_m free), all of n's free GPU milli are
fragments; otherwise only the free milli of GPUs with less than g_m free are. A CPU-only
class counts all free GPU milli. The node's expected fragmentation F_n is the sum over
classes weighted by their popularity p_m in the target workload. FGD places a task where
F_n grows least: for each candidate node, and for a share on each GPU of it, the
increase F_n(after) - F_n(before).

Writing T_n for the node's free GPU milli and S_m(n) for the free milli on GPUs with at
least g_m free, F_n = T_n - Σ_{m runnable on n} p_m S_m(n). Placing a task takes its GPU
milli d from T_n whatever the node, so the increase is -d - ΔU_n with
U_n = Σ_{m runnable on n} p_m S_m(n): FGD maximises ΔU. CPU-only classes and the -d term
are the same for every candidate and drop out. Weights are integer class counts, so
equal states compare exactly; ties go to the lowest node index (the paper's Kubernetes
plugin breaks ties at random).

The target workload is the whole pod list when the runner calls `prepare(jobs)` (as the
paper's simulator does); a policy never prepared (the engine used directly, or live)
learns it from the jobs seen so far, each counted once. Memory is not part of the
measure (the paper's is CPU and GPU), but candidates must have room for it.

Per-node terms are cached in numpy arrays and re-read only for nodes whose change stamp
moved, so a decision costs a few vectorised operations over the candidate nodes.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from altostrat.cluster.state import ClusterState, Plan
from altostrat.policy.registry import register
from altostrat.resources import MILLI
from altostrat.workload.job import Job


def task_class(job: Job) -> tuple:
    """(cpu milli, GPUs, milli per GPU, allowed models) of one task; GPUs = 0 for CPU-only."""
    g = job.gpu_milli
    if g >= MILLI:
        return (job.cpu_milli, g // MILLI, MILLI, job.gpu_models)
    return (job.cpu_milli, 1 if g else 0, g, job.gpu_models if g else None)


class _Mirror:
    """Free capacity of every node as arrays, plus the per-node fragmentation terms."""

    def __init__(self, state: ClusterState, classes: list[tuple], weights: list[int]) -> None:
        self.state = state
        nodes = state.nodes
        n, width = len(nodes), max((nd.gpus for nd in nodes), default=0) or 1
        self.free = np.zeros((n, width), dtype=np.int64)  # padding GPUs stay 0: never fit
        self.cpu = np.zeros(n, dtype=np.int64)
        self.mem = np.zeros(n, dtype=np.int64)
        self.models = list(state.models)
        self.model_id = np.array([self.models.index(nd.gpu_model) if nd.gpus else -1 for nd in nodes], dtype=np.int64)
        self.version = -1
        # task classes: thresholds (distinct g_m), and per class its threshold, CPU, GPUs
        self.thresholds = np.array(sorted({c[2] for c in classes} | {MILLI}), dtype=np.int64)
        self.h_of = np.searchsorted(self.thresholds, [c[2] for c in classes]).astype(np.int64)
        self.c_cpu = np.array([c[0] for c in classes], dtype=np.int64)
        self.c_gpus = np.array([c[1] for c in classes], dtype=np.int64)
        # weight of each class on each model (0 where the class may not use it); last row: CPU-only nodes
        self.weight = np.zeros((len(self.models) + 1, len(classes)), dtype=np.int64)
        for j, (c, w) in enumerate(zip(classes, weights)):
            for i, model in enumerate(self.models):
                if c[3] is None or model in c[3]:
                    self.weight[i, j] = w
        self.full = len(self.thresholds) - 1  # index of the 1000 threshold: wholly free GPUs
        self.S = np.zeros((n, len(self.thresholds)), dtype=np.int64)
        self.cnt = np.zeros((n, len(self.thresholds)), dtype=np.int64)
        self.U = np.zeros(n, dtype=np.int64)
        self.refresh(np.arange(n))

    def sync(self) -> None:
        state = self.state
        if state.version != self.version:
            stamps = np.fromiter(state.node_version, dtype=np.int64, count=len(state.nodes))
            self.refresh(np.flatnonzero(stamps > self.version))

    def refresh(self, rows: np.ndarray) -> None:
        """Re-read these nodes from the state."""
        nodes = self.state.nodes
        for i in rows.tolist():
            nd = nodes[i]
            self.free[i, : nd.gpus] = nd.gpu_free
            self.cpu[i] = nd.cpu_free
            self.mem[i] = nd.mem_free
        self.terms(rows)
        self.version = self.state.version

    def terms(self, rows: np.ndarray) -> None:
        """S, cnt and U of these rows from their free capacity."""
        free = self.free[rows]
        ge = free[:, :, None] >= self.thresholds[None, None, :]
        self.S[rows] = (free[:, :, None] * ge).sum(axis=1)
        self.cnt[rows] = ge.sum(axis=1)
        self.U[rows] = self.usable(rows, self.S[rows], self.cnt[rows], self.cpu[rows])

    def usable(self, rows: np.ndarray, S: np.ndarray, cnt: np.ndarray, cpu: np.ndarray) -> np.ndarray:
        """U = Σ_m p_m S_m over the classes that can run on each row's state."""
        runnable = (cpu[:, None] >= self.c_cpu[None, :]) & (cnt[:, self.h_of] >= self.c_gpus[None, :])
        return (runnable * S[:, self.h_of] * self.weight[self.model_id[rows]]).sum(axis=1)


@register("placement", "fgd", "Fragmentation Gradient Descent (Weng et al., USENIX ATC'23): least growth of expected GPU fragmentation")
@dataclass(eq=False)
class FGD:
    _counts: Counter = field(default_factory=Counter, init=False, repr=False)
    _seen: set = field(default_factory=set, init=False, repr=False)
    _prepared: bool = field(default=False, init=False, repr=False)
    _mirror: _Mirror | None = field(default=None, init=False, repr=False)

    def prepare(self, jobs: list[Job]) -> None:
        """Take the target workload's class popularity from the whole job list."""
        self._counts = Counter(task_class(j) for j in jobs if j.gpu_milli)
        self._prepared = True
        self._mirror = None

    def _learn(self, job: Job) -> None:
        if self._prepared or job.id in self._seen:
            return
        self._seen.add(job.id)
        if job.gpu_milli:
            self._counts[task_class(job)] += 1
            self._mirror = None  # the weights changed: every cached term is stale

    def _view(self, state: ClusterState) -> _Mirror:
        m = self._mirror
        if m is None or m.state is not state:
            classes = list(self._counts)
            m = self._mirror = _Mirror(state, classes, [self._counts[c] for c in classes])
        else:
            m.sync()
        return m

    def place(self, job: Job, state: ClusterState) -> Plan | None:
        self._learn(job)
        m = self._view(state)
        if job.tasks == 1:
            best = self._best_task(m, job, self._allowed(m, job))
            return None if best is None else [best[1]]
        # a gang: on each allowed GPU model, tasks one by one; keep the model of the best total
        models = [None] if not job.gpu_milli else [i for i, name in enumerate(m.models)
                                                   if job.gpu_models is None or name in job.gpu_models]
        plans = [p for p in (self._gang(m, job, model) for model in models) if p is not None]
        return max(plans, key=lambda p: p[0])[1] if plans else None  # max() keeps the first of equals

    @staticmethod
    def _allowed(m: _Mirror, job: Job) -> np.ndarray:
        ok = (m.cpu >= job.cpu_milli) & (m.mem >= job.mem_mib)
        if job.gpu_milli:
            names = job.gpu_models
            ok &= m.model_id >= 0
            if names is not None:
                ok &= np.isin(m.model_id, [i for i, name in enumerate(m.models) if name in names])
        return ok

    def _best_task(self, m: _Mirror, job: Job, allowed: np.ndarray):
        """(ΔU, plan entry) of the best place for one task, or None."""
        g, c = job.gpu_milli, job.cpu_milli
        if g and g < MILLI:
            # candidate (node, free value) pairs: GPUs with equal free milli are interchangeable
            rows = np.flatnonzero(allowed)
            free = m.free[rows]
            srt = np.sort(free, axis=1)
            distinct = np.ones_like(srt, dtype=bool)
            distinct[:, 1:] = srt[:, 1:] != srt[:, :-1]
            r, col = np.nonzero(distinct & (srt >= g))
            if not len(r):
                return None
            node = rows[r]
            f = srt[r, col]
            th = m.thresholds[None, :]
            before = f[:, None] >= th
            after = (f - g)[:, None] >= th
            S = m.S[node] - f[:, None] * before + (f - g)[:, None] * after
            cnt = m.cnt[node] - before + after
        else:
            k = g // MILLI
            node = np.flatnonzero(allowed & (m.cnt[:, m.full] >= k)) if k else np.flatnonzero(allowed)
            if not len(node):
                return None
            S = m.S[node] - k * MILLI  # wholly free GPUs count at every threshold
            cnt = m.cnt[node] - k
            f = None
        gain = m.usable(node, S, cnt, m.cpu[node] - c) - m.U[node]
        # the largest gain; among equals the lowest node, then (shares) the tightest GPU
        order = np.lexsort((node if f is None else f, node, -gain))
        best = int(order[0])
        idx = int(node[best])
        if f is None:
            return int(gain[best]), (idx, 1)
        return int(gain[best]), (idx, 1, int(np.flatnonzero(m.free[idx] == f[best])[0]))

    def _gang(self, m: _Mirror, job: Job, model: int | None):
        """(total gain, plan) placing tasks one by one on the mirror, which is re-read after."""
        total, entries = 0, []
        touched: list[int] = []
        try:
            for _ in range(job.tasks):
                allowed = self._allowed(m, job)
                if model is not None:
                    allowed &= m.model_id == model
                best = self._best_task(m, job, allowed)
                if best is None:
                    return None
                gain, entry = best
                total += gain
                entries.append(entry)
                idx = entry[0]
                touched.append(idx)
                if len(entry) > 2:
                    m.free[idx, entry[2]] -= job.gpu_milli
                else:
                    need = job.gpu_milli // MILLI
                    full = np.flatnonzero(m.free[idx] == MILLI)[:need]
                    m.free[idx, full] = 0
                m.cpu[idx] -= job.cpu_milli
                m.mem[idx] -= job.mem_mib
                m.terms(np.array([idx]))
        finally:
            if touched:  # undo the tentative tasks
                m.refresh(np.unique(touched))
        plan: dict[int, int] = {}
        shares = []
        for entry in entries:
            if len(entry) > 2:
                shares.append(entry)
            else:
                plan[entry[0]] = plan.get(entry[0], 0) + 1
        return total, [*plan.items(), *shares]
