"""FGD: hand-checked choices on toy clusters, and every choice against the paper's definition.

Fragmentation of a node for a task class m is all its free GPU milli when m cannot run
there, else the free milli of its GPUs with less free than m asks; F = Σ p_m F(m).
"""

import random

from helpers import cluster, job

from altostrat.policy.registry import build_piece
from altostrat.resources import MILLI


def fgd(target=None):
    piece = build_piece("placement", "fgd")
    if target is not None:
        piece.prepare(target)
    return piece


def share(name, milli, cpu=0, **kw):
    return job(name, 0, 1, tasks=1, gpu_milli=milli, cpu_milli=cpu, **kw)


def test_a_share_goes_to_the_gpu_that_keeps_the_target_class_runnable():
    # One node, GPUs free [600, 300]; the target workload is only 300-milli shares.
    # The 200 pod on GPU0 leaves [400, 300]: both still take a 300 share, F stays 0.
    # On GPU1 it leaves [600, 100]: the 100 is a fragment, F = 100. FGD takes GPU0;
    # best-fit (tightest GPU) would take GPU1.
    s = cluster(("T4", 2, 1))
    s.allocate(share("x", 400), [(0, 1, 0)])
    s.allocate(share("y", 700), [(0, 1, 1)])
    assert s.nodes[0].gpu_free == [600, 300]
    plan = fgd([share("t", 300)]).place(share("a", 200), s)
    assert plan == [(0, 1, 0)]
    s.allocate(share("a", 200), plan)
    assert s.nodes[0].gpu_free == [400, 300]


def three_nodes():
    # n0: one GPU with 500 free; n1: one empty GPU; n2: CPU-only. 8 cores each.
    s = cluster(("T4", 1, 2), (None, 0, 1), cpu=8)
    s.allocate(share("x", 500), [(0, 1)])
    return s


def test_fgd_avoids_the_tightest_gpu_when_it_strands_the_popular_share():
    # Target: shares of 500 with 6 cores (3 pods) and a CPU-only pod (1), so p = 3/4, 1/4.
    # For a 300 pod with 1 core, F(after) - F(before) on each node:
    #   n0: F before = 1/4*500 (the CPU-only class counts all free GPU as fragment) = 125;
    #       after = 3/4*200 + 1/4*200 = 200  -> +75
    #   n1: F before = 1/4*1000 = 250; after: 700 >= 500 and 7 >= 6 cores -> 3/4*0 + 1/4*700 = 175 -> -75
    # so FGD picks n1, where best-fit picks n0.
    target = [share(f"t{i}", 500, cpu=6000) for i in range(3)] + [share("c", 0, cpu=1000)]
    s = three_nodes()
    assert fgd(target).place(share("a", 300, cpu=1000), s) == [(1, 1, 0)]
    assert build_piece("placement", "best-fit").place(share("a", 300, cpu=1000), s) == [(0, 1)]


def test_a_cpu_only_pod_goes_where_no_class_loses_its_cpu():
    # A 4-core CPU-only pod leaves 4 cores: the 6-core class can no longer run there.
    #   n0: F 125 -> 3/4*500 + 1/4*500 = 500 (+375); n1: 250 -> 1000 (+750); n2: no GPU, F = 0 (+0).
    target = [share(f"t{i}", 500, cpu=6000) for i in range(3)] + [share("c", 0, cpu=1000)]
    s = three_nodes()
    assert fgd(target).place(share("a", 0, cpu=4000), s) == [(2, 1)]


def test_whole_gpus_go_where_the_popular_gang_size_is_already_lost():
    # Nodes of 4 GPUs: n0 empty, n1 with 2 free. Target: 4-GPU pods.
    # A 2-GPU pod on n0 leaves 2 free GPUs that a 4-GPU pod cannot use: F 0 -> 2000.
    # On n1 it takes the 2 GPUs that were already fragments: F 2000 -> 0.
    s = cluster(("V100", 4, 2))
    s.allocate(job("x", 0, 1, gpus=2), [(1, 2)])
    assert fgd([job("t", 0, 1, tasks=1, gpu_milli=4 * MILLI)]).place(job("a", 0, 1, tasks=1, gpu_milli=2 * MILLI), s) == [(1, 1)]


def test_ties_go_to_the_lowest_node_and_no_room_gives_none():
    s = cluster(("T4", 1, 3))
    piece = fgd([share("t", 500)])
    assert piece.place(share("a", 500), s) == [(0, 1, 0)]
    assert piece.place(share("b", 500, gpu_models=("V100",)), s) is None
    assert piece.place(job("c", 0, 1, tasks=1, gpu_milli=2 * MILLI), s) is None
    assert piece.place(share("d", 300, mem_mib=10**9), s) is None


def test_a_gang_is_placed_task_by_task_all_or_nothing():
    # Two 1-GPU nodes with 600 free each; a gang of two 500 shares needs both nodes.
    s = cluster(("T4", 1, 2))
    for i in range(2):
        s.allocate(share(f"x{i}", 400), [(i, 1)])
    piece = fgd([share("t", 500)])
    gang = job("g", 0, 1, tasks=2, gpu_milli=500)
    plan = piece.place(gang, s)
    assert sorted(plan) == [(0, 1, 0), (1, 1, 0)]
    assert piece.place(job("h", 0, 1, tasks=3, gpu_milli=500), s) is None
    s.allocate(gang, plan)
    assert [n.gpu_free for n in s.nodes] == [[100], [100]]


# -- every decision against the paper's definition, on random small clusters -----------------

def frag(node_free, cpu_free, model, classes):
    """F_n = Σ_m p_m F_n(m) straight from the definition (weights unnormalised)."""
    total = sum(node_free)
    out = 0
    for (cpu, gpus, milli, models), weight in classes.items():
        if gpus == 0:
            out += weight * total
            continue
        runnable = (model is not None and (models is None or model in models) and cpu_free >= cpu
                    and sum(f >= milli for f in node_free) >= gpus)
        out += weight * (sum(f for f in node_free if f < milli) if runnable else total)
    return out


def options(state, j):
    """Every (node, device) a one-task job could take, with the rise of F it causes."""
    for node in state.nodes:
        if state.room(node, j) < 1:
            continue
        devices = [None]
        if 0 < j.gpu_milli < MILLI:
            devices = [d for d, f in enumerate(node.gpu_free) if f >= j.gpu_milli]
        for d in devices:
            after = list(node.gpu_free)
            if d is not None:
                after[d] -= j.gpu_milli
            else:
                for i in [i for i, f in enumerate(after) if f == MILLI][: j.gpu_milli // MILLI]:
                    after[i] = 0
            yield node.idx, d, after, node.cpu_free - j.cpu_milli


def test_every_choice_minimises_the_rise_of_expected_fragmentation():
    rng = random.Random(7)
    sizes = [100, 250, 300, 500, 700, 1000, 2000]
    for case in range(60):
        s = cluster(("A", 4, 2), ("B", 2, 2), (None, 0, 1), cpu=16)
        target = []
        for i in range(6):
            g = rng.choice(sizes + [0])
            models = rng.choice([None, None, ("A",), ("B",)]) if g else None
            target.append(share(f"t{i}", g, cpu=rng.choice([0, 2000, 8000]), gpu_models=models))
        piece = fgd(target)
        classes = {}
        for t in target:
            g = t.gpu_milli
            key = (t.cpu_milli, g // MILLI if g >= MILLI else int(g > 0), min(g, MILLI), t.gpu_models)
            classes[key] = classes.get(key, 0) + 1
        running = []
        for step in range(25):
            j = share(f"p{case}-{step}", rng.choice(sizes + [0]), cpu=rng.choice([0, 1000, 6000]),
                      gpu_models=rng.choice([None, ("A",)]))
            opts = list(options(s, j))
            plan = piece.place(j, s)
            if not opts:
                assert plan is None
                continue
            rise = {}
            for idx, d, after, cpu_after in opts:
                node = s.nodes[idx]
                rise[(idx, d)] = frag(after, cpu_after, node.gpu_model, classes) - frag(
                    node.gpu_free, node.cpu_free, node.gpu_model, classes)
            (entry,) = plan
            chosen = (entry[0], entry[2] if len(entry) > 2 else None)
            assert rise[chosen] == min(rise.values()), (case, step, chosen, rise)
            running.append((j, s.allocate(j, plan)))
            if running and rng.random() < 0.3:  # departures: the cached terms must follow the state
                gone, alloc = running.pop(rng.randrange(len(running)))
                s.release(gone, alloc)
