from helpers import check_state, cluster, job

from altostrat.resources import MILLI


def test_allocate_and_release_restore_free_capacity_and_indexes():
    state = cluster(("V100", 4, 2))
    j = job("a", 0, 10, gpus=3, cpu_milli=2000)
    alloc = state.allocate(j, [(0, 2), (1, 1)])
    assert [len(d) for _, d in alloc] == [1, 1, 1]
    assert state.nodes[0].free_whole == 2 and state.nodes[1].free_whole == 3
    assert state.models["V100"].free_whole == 5
    assert state.gpu_allocated_milli == 3 * MILLI and state.cpu_allocated_milli == 6000
    check_state(state)
    state.release(j, alloc)
    assert state.models["V100"].free_whole == 8 and state.gpu_allocated_milli == 0
    check_state(state)


def test_fractional_tasks_share_the_tightest_gpu():
    state = cluster(("T4", 2, 1))
    a = job("a", 0, 1, tasks=1, gpu_milli=600)
    b = job("b", 0, 1, tasks=1, gpu_milli=300)
    state.allocate(a, [(0, 1)])
    alloc_b = state.allocate(b, [(0, 1)])
    assert alloc_b == ((0, (0,)),)  # 400 free on GPU 0 is tighter than 1000 on GPU 1
    assert state.nodes[0].gpu_free == [100, 1000]
    assert state.room(state.nodes[0], job("c", 0, 1, tasks=1, gpu_milli=500)) == 1
    assert state.room(state.nodes[0], job("d", 0, 1, tasks=1, gpu_milli=1000)) == 1
    check_state(state)


def test_room_counts_cpu_memory_and_model_limits():
    state = cluster(("V100", 8, 1), cpu=8, mem_gib=64)
    assert state.room(state.nodes[0], job("a", 0, 1, gpus=8, cpu_milli=2000)) == 4
    assert state.room(state.nodes[0], job("b", 0, 1, gpus=8, mem_mib=32 * 1024)) == 2
    assert state.room(state.nodes[0], job("c", 0, 1, gpus=1, gpu_models=("A100",))) == 0


def test_never_fits_counts_the_whole_cluster():
    state = cluster(("V100", 4, 2), ("K80", 8, 1))
    assert state.never_fits(job("a", 0, 1, gpus=8)) is None
    assert state.never_fits(job("b", 0, 1, gpus=9, gpu_models=("V100",))) is not None
    assert state.never_fits(job("c", 0, 1, gpus=17)) is not None
    assert state.never_fits(job("d", 0, 1, gpus=1, gpu_models=("H100",))) is not None
    assert state.never_fits(job("e", 0, 1, gpus=1, cpu_milli=65 * MILLI)) is not None


def test_restore_undoes_release_exactly():
    state = cluster(("V100", 4, 2))
    j = job("a", 0, 10, gpus=5)
    alloc = state.allocate(j, [(0, 4), (1, 1)])
    before = [list(n.gpu_free) for n in state.nodes]
    state.release(j, alloc)
    state.restore(j, alloc)
    assert [n.gpu_free for n in state.nodes] == before
    check_state(state)
