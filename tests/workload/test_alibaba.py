"""The Alibaba GPU 2023 loader and cluster, on the full files and on malformed ones."""

import math
from collections import Counter

import pytest

from altostrat.cluster.build import load_cluster
from altostrat.resources import MILLI
from altostrat.sim.run import RunRequest, run
from altostrat.spec.load import SpecError
from altostrat.workload.sources import TraceError, WorkloadContext, load_workload

HEADER = "name,cpu_milli,memory_mib,num_gpu,gpu_milli,gpu_spec,qos,pod_phase,creation_time,deletion_time,scheduled_time\n"


@pytest.fixture(scope="module")
def trace(shared_data):
    return shared_data / "traces" / "alibaba-gpu-v2023"


def load(spec, skip=False):
    ctx = WorkloadContext(skip_invalid=skip)
    return load_workload(spec, ctx), ctx


def test_default_pod_list_loads_every_pod(trace):
    jobs, ctx = load(f"alibaba-v2023:{trace}")
    assert len(jobs) == 8152 and not ctx.skipped
    kinds = Counter("cpu" if j.gpu_milli == 0 else "share" if j.gpu_milli < MILLI else j.gpu_milli // MILLI for j in jobs)
    # counted with an independent csv pass over the file: num_gpu 0/1/2/4/8, and shares (num_gpu 1, gpu_milli < 1000)
    assert kinds == {"cpu": 1088, "share": 3078, 1: 3911, 2: 16, 4: 15, 8: 44}
    assert sum(j.gpu_milli_total for j in jobs) == 6_086_800
    assert all(j.tasks == 1 and j.gpu_models is None for j in jobs)
    first = next(j for j in jobs if j.id == "openb-pod-0001")  # 6000,12288,1,460,,LS,Running,427061,12902960
    assert (first.cpu_milli, first.mem_mib, first.gpu_milli) == (6000, 12288, 460)
    assert (first.submit, first.duration) == (427061, 12902960 - 427061)
    # a pending pod deleted in the second it was created runs 0 s (the only one in the list)
    assert [j.id for j in jobs if j.duration == 0] == ["openb-pod-7285"]


def test_gpu_spec_becomes_allowed_models(trace):
    jobs, _ = load(f"alibaba-v2023:{trace}#openb_pod_list_gpuspec33")
    constrained = Counter(j.gpu_models for j in jobs if j.gpu_models is not None)
    assert sum(constrained.values()) == 8152 - 5764  # rows with a non-empty gpu_spec
    assert constrained[("T4",)] == 1291
    assert all(len(m) >= 1 and all(m) for m in constrained)


def test_untimed_multigpu_list_is_for_fill_mode_only(trace):
    jobs, _ = load(f"alibaba-v2023:{trace}#openb_pod_list_multigpu50")
    assert len(jobs) == 9061
    assert all(j.submit == 0 and math.isnan(j.duration) for j in jobs)
    req = RunRequest(f"alibaba-v2023:{trace}#openb_pod_list_multigpu50", "philly-like", "fcfs")
    with pytest.raises(TraceError, match="--arrivals fill"):
        run(req)


def test_node_list_is_the_real_cluster(trace):
    name, state = load_cluster(f"alibaba-v2023:{trace}")
    assert len(state.nodes) == 1523
    gpus = Counter()
    for n in state.nodes:
        gpus[n.gpu_model] += n.gpus
    assert gpus == {"G2": 4392, "T4": 842, "G3": 312, "P100": 265, "V100M32": 204, "V100M16": 195, "A10": 2, None: 0}
    assert sum(1 for n in state.nodes if n.gpu_model is None) == 310
    assert state.gpu_capacity_milli == 6212 * MILLI
    g3 = next(n for n in state.nodes if n.gpu_model == "G3")
    assert (g3.gpus, g3.cpu_milli, g3.mem_mib) == (8, 128000, 786432)


def test_missing_pod_list_names_the_choices(trace, tmp_path):
    with pytest.raises(TraceError, match="openb_pod_list_default"):
        load(f"alibaba-v2023:{trace}#no_such_list")
    with pytest.raises(TraceError, match="does not exist"):
        load(f"alibaba-v2023:{tmp_path / 'nowhere'}")


@pytest.mark.parametrize(
    "row, line_field, reason",
    [
        ("p1,abc,1024,1,500,,LS,Running,0,10,0", "field 'cpu_milli'", "is not an integer"),
        ("p1,1000,1024,0,500,,LS,Running,0,10,0", "field 'gpu_milli'", "CPU-only pod"),
        ("p1,1000,1024,2,500,,LS,Running,0,10,0", "field 'gpu_milli'", "only a one-GPU pod may take a share"),
        ("p1,1000,1024,1,1500,,LS,Running,0,10,0", "field 'gpu_milli'", "must be 1..1000"),
        ("p1,1000,1024,1,500,,LS,Running,10,5,0", "field 'deletion_time'", "before creation_time"),
        ("p1,1000,-1,1,500,,LS,Running,0,10,0", "field 'memory_mib'", "must be >= 0"),
        (",1000,1024,1,500,,LS,Running,0,10,0", "field 'name'", "is empty"),
    ],
)
def test_malformed_rows_name_file_line_field_and_reason(tmp_path, row, line_field, reason):
    (tmp_path / "pods.csv").write_text(HEADER + "p0,1000,1024,1,1000,,LS,Running,0,10,0\n" + row + "\n")
    with pytest.raises(TraceError) as err:
        load(f"alibaba-v2023:{tmp_path}#pods")
    msg = str(err.value)
    assert f"pods.csv:3: {line_field}" in msg and reason in msg and "--skip-invalid" in msg
    jobs, ctx = load(f"alibaba-v2023:{tmp_path}#pods", skip=True)
    assert [j.id for j in jobs] == ["p0"] and sum(ctx.skipped.values()) == 1


def test_bad_headers_and_duplicates(tmp_path):
    (tmp_path / "short.csv").write_text("name,cpu_milli,num_gpu\np0,1,1\n")
    with pytest.raises(TraceError, match="short.csv:1: missing column.*memory_mib"):
        load(f"alibaba-v2023:{tmp_path}#short")
    (tmp_path / "half.csv").write_text("name,cpu_milli,memory_mib,num_gpu,gpu_milli,creation_time\np0,1,1,1,1000,0\n")
    with pytest.raises(TraceError, match="half.csv:1: has creation_time"):
        load(f"alibaba-v2023:{tmp_path}#half")
    (tmp_path / "dup.csv").write_text(HEADER + "p0,1,1,1,1000,,LS,Running,0,10,0\np0,1,1,1,1000,,LS,Running,0,10,0\n")
    with pytest.raises(TraceError, match="dup.csv:3: field 'name'.*appears twice"):
        load(f"alibaba-v2023:{tmp_path}#dup")
    (tmp_path / "spec.csv").write_text(HEADER + "p0,1,1,1,300,A10| T4 ,LS,Running,5,10,5\n")
    (pod,), _ = load(f"alibaba-v2023:{tmp_path}#spec")
    assert (pod.gpu_models, pod.gpu_milli, pod.submit, pod.duration) == (("A10", "T4"), 300, 5.0, 5.0)


def test_malformed_node_list(tmp_path):
    path = tmp_path / "openb_node_list_small.csv"
    path.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,32000,1024,0,\nn1,32000,1024,8,\n")
    with pytest.raises(SpecError, match="small.csv:3: field 'model'"):
        load_cluster(f"alibaba-v2023:{tmp_path}#openb_node_list_small")
    path.write_text("sn,cpu_milli,memory_mib,gpu,model\nn0,many,1024,0,\n")
    with pytest.raises(SpecError, match="small.csv:2: field 'cpu_milli'"):
        load_cluster(f"alibaba-v2023:{tmp_path}#openb_node_list_small")
    with pytest.raises(SpecError, match="node lists there: openb_node_list_small"):
        load_cluster(f"alibaba-v2023:{tmp_path}")
