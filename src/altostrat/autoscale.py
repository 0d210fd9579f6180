"""Scale-up: which elastic nodes to boot for pending jobs that fit nowhere now.

As Kubernetes' cluster-autoscaler does, it places each such job in a dry run on nodes that
are booting or could be booted, cheapest per GPU (per vCPU for CPU-only jobs) first, and
boots the nodes that dry run used. A job is estimated on booting and new nodes only, never
partly on nodes already up, so it may boot a node that a finishing job would have freed:
the price of starting work without waiting. Scale-down is the simulator's (and the
service's) timer: an elastic node empty for its `idle_s` is released.
"""

from __future__ import annotations

import itertools

from altostrat.cluster.state import Node, allowed_on, empty_room, is_empty, node_kind
from altostrat.resources import MILLI

MAX_JOBS = 200  # pending jobs one estimate looks at, in queue order


def _unit_price(node: Node) -> float:
    per = node.gpus or node.cpu_milli / MILLI
    return (node.price_per_s or 0.0) / per


def nodes_to_boot(engine, now: float) -> list[tuple[Node, object]]:
    """(node, job it is booted for) pairs; the engine has just finished a scheduling pass."""
    state = engine.state
    spare = sorted((n for n in state.nodes if n.elastic and not n.up and n.idx not in engine.booting
                    and n.idx not in engine.unavailable), key=lambda n: (_unit_price(n), n.idx))
    if not spare:
        return []
    kinds: dict[tuple, list[Node]] = {}  # cheapest kind first, its nodes in index order
    for node in spare:
        kinds.setdefault(node_kind(node), []).append(node)
    # free capacity in the dry run, [whole GPUs, CPU milli, memory MiB], of the nodes booting
    # and of elastic nodes up and empty: a gang's first booted node may be up before the rest
    free = {idx: [state.nodes[idx].gpus, state.nodes[idx].cpu_milli, state.nodes[idx].mem_mib] for idx in engine.booting}
    for node in state.nodes:
        if node.elastic and node.up and is_empty(node):
            free[node.idx] = [node.gpus, node.cpu_milli, node.mem_mib]
    chosen: list[tuple[Node, object]] = []
    tried = {job.idx for job in engine.unplaced}
    # first the jobs the pass could not start (no room, or room kept for the blocked head),
    # then the rest of the queue that does not fit now
    rest = (job for job in engine._ordered(now) if job.idx not in tried and engine.placement.place(job, state) is None)
    for seen, job in enumerate(itertools.chain(engine.unplaced, rest)):
        if seen >= MAX_JOBS or not any(kinds.values()):
            break
        if engine.gates and engine._held(job, now):
            continue
        for node in _dry_run(job, state, free, kinds):
            chosen.append((node, job))
    return chosen


def _dry_run(job, state, free: dict[int, list[int]], kinds: dict[tuple, list[Node]]) -> list[Node]:
    """Place the job on booting (or empty elastic) nodes, then on spare ones (one GPU model for a gang); take
    the capacity it uses out of `free` and the spare nodes it needs out of `kinds`, and
    return those. Nothing when it does not fit."""
    models = [m.model for m in state.candidate_models(job)] if job.gpu_milli else [None]
    rule = state.restrict.get(job.idx)  # a recovery strategy's, after a revocation

    def ok(n: Node) -> bool:
        return allowed_on(n, job) and (model is None or n.gpu_model == model) and (rule is None or rule(n))

    for model in models:
        left, used = job.tasks, []  # used: (node idx or spare kind, tasks, how many nodes)
        for idx, cap in free.items():
            if left and ok(state.nodes[idx]):
                room = min(empty_room(cap[0], cap[1], cap[2], job), left)
                if room:
                    used.append((idx, room, 1))
                    left -= room
        for key, nodes in kinds.items():
            if not left:
                break
            if nodes and ok(nodes[0]):
                room = empty_room(nodes[0].gpus, nodes[0].cpu_milli, nodes[0].mem_mib, job)
                if room:
                    count = min(len(nodes), -(-left // room))
                    used.append((key, min(room * count, left), count))
                    left -= min(room * count, left)
        if left:
            continue
        new: list[Node] = []
        for where, tasks, count in used:
            if isinstance(where, tuple):  # spare nodes of one kind: take `count`, the last one maybe partly
                taken, kinds[where] = kinds[where][:count], kinds[where][count:]
                per = -(-tasks // count)
                for node in taken:
                    k = min(per, tasks)
                    tasks -= k
                    free[node.idx] = _after(job, k, [node.gpus, node.cpu_milli, node.mem_mib])
                new.extend(taken)
            else:
                free[where] = _after(job, tasks, free[where])
        return new
    return []


def _after(job, tasks: int, cap: list[int]) -> list[int]:
    """Capacity left after `tasks` of the job; shares round up to whole GPUs (a safe estimate)."""
    return [cap[0] - -(-job.gpu_milli * tasks // MILLI), cap[1] - job.cpu_milli * tasks, cap[2] - job.mem_mib * tasks]
