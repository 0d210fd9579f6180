"""Cluster state with indexes, so that placement is a lookup rather than a scan.

Per GPU model the state keeps nodes bucketed by their count of wholly free GPUs, a
sorted list of nodes by their largest free GPU share (for fractional requests), and the
model's total free whole GPUs, so that an impossible request is refused without looking
at any node. CPU-only requests use a sorted list of nodes by free CPU.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from sortedcontainers import SortedList

from altostrat.resources import MILLI
from altostrat.workload.job import Job

# One entry per task: (node index, device ids it holds on that node).
Alloc = tuple[tuple[int, tuple[int, ...]], ...]
# What a placement policy returns: (node index, number of tasks on it), or for a task
# asking a share of one GPU optionally (node index, 1, device) to name the device.
Plan = list[tuple[int, ...]]


@dataclass(slots=True)
class Node:
    idx: int
    name: str
    pool: str
    gpu_model: str | None
    gpus: int
    cpu_milli: int
    mem_mib: int
    region: str | None = None
    tier: str | None = None
    price_per_s: float | None = None  # USD per second while the node is up; None when unpriced
    cloud: str | None = None
    spot: bool = False  # revocable; only jobs that allow spot run here
    jurisdiction: str | None = None  # of its region (catalog/regions.py)
    up: bool = True  # False while revoked: it offers nothing and costs nothing
    revocations_per_hour: float = 0.0  # spot hazard rate
    notice_s: float = 0.0  # warning a spot revocation gives
    mean_down_s: float = 0.0  # mean time until a revoked node is back
    elastic: bool = False  # above its pool's floor: up only while the autoscaler needs it
    boot_s: float = 0.0  # elastic: seconds from request to usable
    idle_s: float = 0.0  # elastic: seconds empty before it is released
    instance_type: str | None = None  # the catalog's name, for a spot price history
    gpu_free: list[int] = field(default_factory=list)  # free milli-GPU per device
    cpu_free: int = 0
    mem_free: int = 0

    def __post_init__(self) -> None:
        self.gpu_free = [MILLI] * self.gpus
        self.cpu_free = self.cpu_milli
        self.mem_free = self.mem_mib

    @property
    def free_whole(self) -> int:
        return self.gpu_free.count(MILLI)

    @property
    def max_free(self) -> int:
        return max(self.gpu_free, default=0)


NEVER_FITS = "does not fit the cluster even when it is empty"


def allowed_on(node: Node, job: Job) -> bool:
    """The job's hard constraints: spot only if it allows spot, and its residency."""
    if node.spot and not job.spot:
        return False
    regions = job.allowed_regions
    return regions is None or node.region in regions or node.jurisdiction in regions


def node_kind(node: Node) -> tuple:
    """What placement and autoscaling read of a node besides its free capacity: nodes of equal
    kind (in practice, the nodes of one pool) are interchangeable to them."""
    return (node.pool, node.gpu_model, node.gpus, node.cpu_milli, node.mem_mib, node.region, node.cloud,
            node.jurisdiction, node.spot, node.price_per_s)


def empty_room(gpus: int, cpu_milli: int, mem_mib: int, job: Job) -> int:
    """How many of the job's tasks fit in that much free capacity (whole GPUs, or shares of them)."""
    n = job.tasks
    if job.cpu_milli:
        n = min(n, cpu_milli // job.cpu_milli)
    if job.mem_mib:
        n = min(n, mem_mib // job.mem_mib)
    if job.gpu_milli:
        per_gpu = MILLI // job.gpu_milli if job.gpu_milli < MILLI else 0
        n = min(n, gpus * per_gpu if per_gpu else gpus // (job.gpu_milli // MILLI))
    return n


def is_empty(node: Node) -> bool:
    return node.cpu_free == node.cpu_milli and node.mem_free == node.mem_mib and all(f == MILLI for f in node.gpu_free)


class ModelIndex:
    """Free-capacity index of the nodes that carry one GPU model."""

    __slots__ = ("model", "max_gpus", "by_whole", "by_share", "open", "free_whole", "free_milli", "capacity")

    def __init__(self, model: str, max_gpus: int) -> None:
        self.model = model
        self.max_gpus = max_gpus
        self.by_whole = [SortedList() for _ in range(max_gpus + 1)]  # node idx by free whole GPUs
        self.by_share = SortedList()  # (largest free share, node idx), share > 0
        self.open = SortedList()  # node idx with any free share, in index order
        self.free_whole = 0
        self.free_milli = 0
        self.capacity = 0  # GPUs

    def add(self, node: Node, whole: int, share: int) -> None:
        self.by_whole[whole].add(node.idx)
        self.free_whole += whole
        self.free_milli += sum(node.gpu_free)
        if share:
            self.by_share.add((share, node.idx))
            self.open.add(node.idx)

    def drop(self, node: Node, whole: int, share: int) -> None:
        self.by_whole[whole].remove(node.idx)
        self.free_whole -= whole
        self.free_milli -= sum(node.gpu_free)
        if share:
            self.by_share.remove((share, node.idx))
            self.open.remove(node.idx)

    def move(self, node: Node, old: tuple[int, int, int], new: tuple[int, int, int]) -> None:
        """Re-file a node whose (free whole GPUs, largest free share, free milli) changed.

        Only the structures whose key changed are touched: sorted-list updates are the
        cost of every allocation.
        """
        (w0, s0, m0), (w1, s1, m1) = old, new
        idx = node.idx
        if w0 != w1:
            self.by_whole[w0].remove(idx)
            self.by_whole[w1].add(idx)
            self.free_whole += w1 - w0
        self.free_milli += m1 - m0
        if s0 != s1:
            if s0:
                self.by_share.remove((s0, idx))
            if s1:
                self.by_share.add((s1, idx))
            if not s0:
                self.open.add(idx)
            elif not s1:
                self.open.remove(idx)

    def ascending(self, min_whole: int):
        """Node indexes with at least `min_whole` free GPUs, tightest first."""
        for k in range(max(min_whole, 0), self.max_gpus + 1):
            yield from self.by_whole[k]

    def descending(self, min_whole: int):
        """Node indexes with at least `min_whole` free GPUs, emptiest first."""
        for k in range(self.max_gpus, max(min_whole, 0) - 1, -1):
            yield from self.by_whole[k]

    def shares_ascending(self, milli: int):
        """Node indexes having a GPU with at least `milli` free, tightest first."""
        for _, idx in self.by_share.irange((milli, -1)):
            yield idx

    def shares_descending(self, milli: int):
        for _, idx in self.by_share.irange((milli, -1), reverse=True):
            yield idx


class ClusterState:
    """Nodes, what is allocated on them, and the indexes over their free capacity."""

    def __init__(self, nodes: list[Node]) -> None:
        self.nodes = nodes
        self.models: dict[str, ModelIndex] = {}
        self._by_cpu: SortedList | None = None  # (free cpu, node idx), built on first use
        self.gpu_capacity_milli = sum(n.gpus for n in nodes) * MILLI
        self.cpu_capacity_milli = sum(n.cpu_milli for n in nodes)
        priced = [n.price_per_s for n in nodes if n.price_per_s is not None]
        self.price_per_s = sum(priced) if priced else None  # the whole cluster, USD per second
        self.gpu_allocated_milli = 0
        self.cpu_allocated_milli = 0
        self.elastic = any(n.elastic for n in nodes)
        self._room_cache: dict[tuple, str | None] = {}
        # job idx -> extra rule a node must pass (recovery after a revocation keeps a job off
        # its old pool or region); empty for nearly every run, so `room` pays one truth test
        self.restrict: dict[int, Callable[[Node], bool]] = {}
        # change stamps, so that a placement caching per-node values re-reads only changed nodes
        self.version = 0
        self.node_version = [0] * len(nodes)
        self.now = 0.0  # time of the scheduling pass reading the state (the engine sets it): hourly prices and carbon
        for node in nodes:
            if node.gpus:
                index = self.models.get(node.gpu_model)
                if index is None:
                    index = self.models[node.gpu_model] = ModelIndex(node.gpu_model, 0)
                index.capacity += node.gpus
                index.max_gpus = max(index.max_gpus, node.gpus)
        for index in self.models.values():
            index.by_whole = [SortedList() for _ in range(index.max_gpus + 1)]
        for node in nodes:
            if node.up:
                self._index(node)

    # -- indexing ---------------------------------------------------------------------
    @property
    def by_cpu(self) -> SortedList:
        """Nodes by free CPU, for CPU-only requests; GPU-only workloads never pay for it."""
        if self._by_cpu is None:
            self._by_cpu = SortedList((n.cpu_free, n.idx) for n in self.nodes if n.up)
        return self._by_cpu

    def _index(self, node: Node) -> None:
        if node.gpus:
            self.models[node.gpu_model].add(node, node.free_whole, node.max_free)

    @staticmethod
    def _snapshot(node: Node) -> tuple[int, int, int, int]:
        free = node.gpu_free
        return (node.cpu_free, free.count(MILLI), max(free, default=0), sum(free))

    def _refile(self, node: Node, old: tuple[int, int, int, int]) -> None:
        self.version += 1
        self.node_version[node.idx] = self.version
        if not node.up:
            return  # out of the indexes until it is brought up, with its values then
        new = self._snapshot(node)
        if old[0] != new[0] and self._by_cpu is not None:
            self._by_cpu.remove((old[0], node.idx))
            self._by_cpu.add((new[0], node.idx))
        if node.gpus and old[1:] != new[1:]:
            self.models[node.gpu_model].move(node, old[1:], new[1:])

    # -- questions placement asks -----------------------------------------------------
    def candidate_models(self, job: Job) -> list[ModelIndex]:
        if job.gpu_models is None:
            return list(self.models.values())
        return [self.models[m] for m in job.gpu_models if m in self.models]

    def room(self, node: Node, job: Job) -> int:
        """How many of the job's tasks fit on the node now (0 where it may not run)."""
        if not node.up or not allowed_on(node, job):
            return 0
        if self.restrict:
            rule = self.restrict.get(job.idx)
            if rule is not None and not rule(node):
                return 0
        n = job.tasks
        if job.cpu_milli:
            n = min(n, node.cpu_free // job.cpu_milli)
        if job.mem_mib:
            n = min(n, node.mem_free // job.mem_mib)
        g = job.gpu_milli
        if g and n:
            if node.gpus == 0 or (job.gpu_models is not None and node.gpu_model not in job.gpu_models):
                return 0
            if g >= MILLI:
                n = min(n, node.free_whole // (g // MILLI))
            else:
                n = min(n, sum(f // g for f in node.gpu_free))
        return n

    def never_fits(self, job: Job) -> str | None:
        """Why the job cannot run even on the empty cluster with every node up, or None."""
        key = (job.tasks, job.gpu_milli, job.cpu_milli, job.mem_mib, job.gpu_models, job.allowed_regions, job.spot)
        if key not in self._room_cache:
            self._room_cache[key] = self._why_not_empty(job)
        return self._room_cache[key]

    def _why_not_empty(self, job: Job) -> str | None:
        allowed = [n for n in self.nodes if allowed_on(n, job)]
        if not allowed:
            if job.allowed_regions is not None:
                return f"no node in its allowed regions ({', '.join(sorted(job.allowed_regions))})"
            return "every node is spot and the job does not allow spot"
        if not self._fits_empty(job, allowed):
            return NEVER_FITS
        return None

    def _fits_empty(self, job: Job, nodes: list[Node]) -> bool:
        models = None if not job.gpu_milli else {m.model for m in self.candidate_models(job)}
        if models is not None and not models:
            return False
        per_model: dict[str | None, int] = {}
        for node in nodes:
            if models is not None and node.gpu_model not in models:
                continue
            n = empty_room(node.gpus, node.cpu_milli, node.mem_mib, job)
            key = node.gpu_model if job.gpu_milli else None
            per_model[key] = per_model.get(key, 0) + n
            if per_model[key] >= job.tasks:
                return True
        return False

    def fits_now(self, model: ModelIndex, job: Job) -> bool:
        """A cheap necessary condition: enough free whole GPUs of this model."""
        g = job.gpu_milli
        return g < MILLI or model.free_whole >= job.tasks * (g // MILLI)

    # -- changes ------------------------------------------------------------------------
    def take_down(self, node: Node) -> None:
        """Offer nothing more on the node (a revocation notice, then the revocation); what runs
        there keeps its resources until released. It keeps its capacity figures."""
        if not node.up:
            return
        node.up = False
        self.version += 1
        self.node_version[node.idx] = self.version
        if node.gpus:
            self.models[node.gpu_model].drop(node, node.free_whole, node.max_free)
        if self._by_cpu is not None:
            self._by_cpu.remove((node.cpu_free, node.idx))

    def bring_up(self, node: Node) -> None:
        if node.up:
            return
        node.up = True
        self.version += 1
        self.node_version[node.idx] = self.version
        self._index(node)
        if self._by_cpu is not None:
            self._by_cpu.add((node.cpu_free, node.idx))

    def allocate(self, job: Job, plan: Plan) -> Alloc:
        out: list[tuple[int, tuple[int, ...]]] = []
        g = job.gpu_milli
        for entry in plan:
            idx, count = entry[0], entry[1]
            node = self.nodes[idx]
            before = self._snapshot(node)
            for _ in range(count):
                devices: tuple[int, ...] = ()
                if g >= MILLI:
                    need = g // MILLI
                    devices = tuple(i for i, f in enumerate(node.gpu_free) if f == MILLI)[:need]
                    if len(devices) < need:
                        raise ValueError(f"node {node.name} has no {need} free GPUs for job {job.id}")
                    for d in devices:
                        node.gpu_free[d] = 0
                elif g:
                    if len(entry) > 2:  # the placement named the device
                        d = entry[2]
                        if node.gpu_free[d] < g:
                            raise ValueError(f"node {node.name} GPU {d} has no share of {g} for job {job.id}")
                    else:
                        fitting = [(f, i) for i, f in enumerate(node.gpu_free) if f >= g]
                        if not fitting:
                            raise ValueError(f"node {node.name} has no GPU share of {g} for job {job.id}")
                        d = min(fitting)[1]  # tightest device first keeps whole GPUs free
                    node.gpu_free[d] -= g
                    devices = (d,)
                if node.cpu_free < job.cpu_milli or node.mem_free < job.mem_mib:
                    raise ValueError(f"node {node.name} lacks CPU or memory for job {job.id}")
                node.cpu_free -= job.cpu_milli
                node.mem_free -= job.mem_mib
                out.append((idx, devices))
            self._refile(node, before)
        self.gpu_allocated_milli += g * job.tasks
        self.cpu_allocated_milli += job.cpu_milli * job.tasks
        return tuple(out)

    def release(self, job: Job, alloc: Alloc) -> None:
        g = job.gpu_milli
        touched: dict[int, list[tuple[int, ...]]] = {}
        for idx, devices in alloc:
            touched.setdefault(idx, []).append(devices)
        for idx, task_devices in touched.items():
            node = self.nodes[idx]
            before = self._snapshot(node)
            for devices in task_devices:
                share = MILLI if g >= MILLI else g
                for d in devices:
                    node.gpu_free[d] += share
                node.cpu_free += job.cpu_milli
                node.mem_free += job.mem_mib
            self._refile(node, before)
        self.gpu_allocated_milli -= g * job.tasks
        self.cpu_allocated_milli -= job.cpu_milli * job.tasks

    def restore(self, job: Job, alloc: Alloc) -> None:
        """Take back exactly the devices of `alloc` (undo of a tentative release)."""
        g = job.gpu_milli
        share = MILLI if g >= MILLI else g
        touched: dict[int, int] = {}
        for idx, devices in alloc:
            touched[idx] = touched.get(idx, 0) + 1
        for idx, tasks in touched.items():
            node = self.nodes[idx]
            before = self._snapshot(node)
            for devices in (d for i, d in alloc if i == idx):
                for d in devices:
                    node.gpu_free[d] -= share
            node.cpu_free -= job.cpu_milli * tasks
            node.mem_free -= job.mem_mib * tasks
            self._refile(node, before)
        self.gpu_allocated_milli += g * job.tasks
        self.cpu_allocated_milli += job.cpu_milli * job.tasks
