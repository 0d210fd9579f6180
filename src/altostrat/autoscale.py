"""Scale-up: which elastic nodes to boot for pending jobs that fit nowhere now.

As Kubernetes' cluster-autoscaler does, it places each such job in a dry run on nodes that
are booting or could be booted, cheapest per GPU (per vCPU for CPU-only jobs) first, and
boots the nodes that dry run used. A job is estimated on booting and new nodes only, never
partly on nodes already up, so it may boot a node that a finishing job would have freed:
the price of starting work without waiting. Scale-down is the simulator's (and the
service's) timer: an elastic node empty for its `idle_s` is released.
"""

from __future__ import annotations

from altostrat.cluster.state import Node, allowed_on, empty_room
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
    # free capacity of each node in the dry run: [whole GPUs, CPU milli, memory MiB]
    free = {idx: [state.nodes[idx].gpus, state.nodes[idx].cpu_milli, state.nodes[idx].mem_mib] for idx in engine.booting}
    chosen: list[tuple[Node, object]] = []
    for seen, job in enumerate(engine._ordered(now)):
        if seen >= MAX_JOBS or not spare:
            break
        if engine.gates and engine._held(job, now):
            continue
        if engine.placement.place(job, state) is not None:
            continue  # it fits now; the next pass places it
        plan = _dry_run(job, state, free, spare)
        if plan is None:
            continue
        for node in plan:
            spare.remove(node)
            chosen.append((node, job))
    return chosen


def _dry_run(job, state, free: dict[int, list[int]], spare: list[Node]) -> list[Node] | None:
    """Place the job on booting nodes and spare ones (one GPU model for a gang); commit the
    capacity it takes in `free` and return the spare nodes it needs, or None."""
    models = [m.model for m in state.candidate_models(job)] if job.gpu_milli else [None]
    for model in models:
        ok = (lambda n: allowed_on(n, job) and (model is None or n.gpu_model == model))
        booting = [state.nodes[idx] for idx in free if ok(state.nodes[idx])]
        left, take, new = job.tasks, [], []
        for node in booting + [n for n in spare if ok(n)]:
            cap = free.get(node.idx, [node.gpus, node.cpu_milli, node.mem_mib])
            room = empty_room(cap[0], cap[1], cap[2], job)
            if not room:
                continue
            k = min(room, left)
            take.append((node, k))
            left -= k
            if not left:
                break
        if left:
            continue
        for node, k in take:
            cap = free.setdefault(node.idx, [node.gpus, node.cpu_milli, node.mem_mib])
            if node.idx not in (b.idx for b in booting):
                new.append(node)
            gpus = -(-job.gpu_milli * k // MILLI)  # shares round up to whole GPUs: a safe estimate
            cap[0] -= gpus
            cap[1] -= job.cpu_milli * k
            cap[2] -= job.mem_mib * k
        return new
    return None
