"""Workload and Cluster spec files: the shipped examples load and simulate; bad documents name the field."""

from pathlib import Path

import pytest
import yaml

from altostrat.cluster.build import load_cluster
from altostrat.sim.run import RunRequest, run
from altostrat.spec.load import SpecError
from altostrat.workload.sources import WorkloadContext, load_workload

EXAMPLES = Path(__file__).resolve().parents[2] / "examples"
WORKLOAD, CLUSTER = str(EXAMPLES / "workload.yaml"), str(EXAMPLES / "cluster.yaml")


def test_example_cluster_builds_its_pools():
    name, state = load_cluster(CLUSTER)
    assert name == "lab-cluster" and len(state.nodes) == 2 + 4 + 4
    assert state.gpu_capacity_milli == (2 * 8 + 4 * 4) * 1000
    a100 = state.nodes[0]
    assert (a100.pool, a100.gpu_model, a100.gpus, a100.cpu_milli, a100.mem_mib, a100.region, a100.tier) == (
        "a100", "A100-80GB", 8, 96_000, 1024 * 1024, "us-east-1", "accelerated")
    cpu_node = state.nodes[-1]
    assert (cpu_node.gpu_model, cpu_node.gpus, cpu_node.tier) == (None, 0, "basic")


def test_example_workload_loads_in_internal_units():
    jobs = {j.id: j for j in load_workload(WORKLOAD, WorkloadContext())}
    assert list(jobs) == ["pretrain-llm", "preprocess", "finetune-bert", "notebook", "eval-sweep"]  # submit order
    llm = jobs["pretrain-llm"]
    assert (llm.tasks, llm.gpu_milli, llm.cpu_milli, llm.mem_mib, llm.gpu_models, llm.priority) == (
        16, 1000, 10_000, 120 * 1024, ("A100-80GB",), 10)
    assert jobs["notebook"].gpu_milli == 250
    assert (jobs["preprocess"].gpu_milli, jobs["preprocess"].cpu_milli) == (0, 16_000)  # gpu omitted: CPU-only
    bert = jobs["finetune-bert"]
    assert (bert.submit, bert.deadline, bert.speeds) == (600.0, 43200.0, {"A100-80GB": 1.0, "V100": 0.45})


def test_examples_simulate_to_hand_checked_times():
    result, _ = run(RunRequest(WORKLOAD, CLUSTER, "fcfs+best-fit"))
    m = result["metrics"]
    # pretrain-llm fills both A100 nodes: 36,000 s. preprocess runs on CPU nodes: 5,400 s.
    # finetune-bert then finds only V100s: 7,200 / 0.45 = 16,000 s (ends at 16,600 < deadline 43,200).
    # notebook takes a quarter of a V100 at speed 1: 3,600 s. eval-sweep gets 8 of the 11 whole V100s
    # left: 1,800 / 0.6 = 3,000 s. Nobody waits.
    assert (m["jobs_submitted"], m["jobs_completed"], m["avg_wait_s"]) == (5, 5, 0.0)
    assert m["avg_jct_s"] == pytest.approx((36000 + 5400 + 16000 + 3600 + 3000) / 5)
    assert m["p50_jct_s"] == pytest.approx(5400) and m["makespan_s"] == pytest.approx(36000)
    assert m["deadline_violation_rate"] == 0.0


def workload_doc(**job) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": "Workload", "metadata": {"name": "w"},
            "spec": {"jobs": [{"name": "a", "durationS": 60, **job}]}}


@pytest.mark.parametrize(
    "doc, expected",
    [
        (workload_doc(resources={"gpu": 1.5}), "spec.jobs[0].resources.gpu: Value error, gpu 1.5"),
        (workload_doc(resources={"gpu": -1}), "spec.jobs[0].resources.gpu: Input should be greater than or equal to 0"),
        (workload_doc(durationS=0), "spec.jobs[0].durationS: Input should be greater than 0"),
        (workload_doc(tasks=0), "spec.jobs[0].tasks: Input should be greater than or equal to 1"),
        (workload_doc(gpus=2), "spec.jobs[0].gpus: Extra inputs are not permitted"),
        (workload_doc(speeds={"V100": 0}), "spec.jobs[0].speeds: Value error, speeds must be > 0; fix: V100"),
        (workload_doc(submitS="soon"), "spec.jobs[0].submitS: Input should be a valid number"),
        ({**workload_doc(), "spec": {"jobs": [{"name": "a"}]}}, "spec.jobs[0].durationS: Field required"),
        ({**workload_doc(), "spec": {"jobs": []}}, "spec.jobs: List should have at least 1 item"),
        ({**workload_doc(), "metadata": {"name": "no spaces"}}, "metadata.name: String should match pattern"),
        ({**workload_doc(), "apiVersion": "v1"}, "apiVersion must be 'altostrat/v1' (got 'v1')"),
        ({**workload_doc(), "kind": "Tenant"}, "unknown kind 'Tenant'; one of: Cluster, Workload"),
        ({"apiVersion": "altostrat/v1", "kind": "Cluster", "metadata": {"name": "c"}, "spec": {"pools": [
            {"name": "p", "nodes": 1, "gpu": {"model": "V100", "count": 0}, "cpu": 8, "memoryGib": 64}]}},
         "spec.pools[0].gpu.count: Input should be greater than or equal to 1"),
    ],
)
def test_invalid_documents_name_the_file_and_field(tmp_path, doc, expected):
    path = tmp_path / "bad.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError) as exc:
        if doc.get("kind") == "Cluster":
            load_cluster(str(path))
        else:
            load_workload(str(path), WorkloadContext())
    assert str(path) in str(exc.value) and expected in str(exc.value)


def test_duplicate_job_names_and_wrong_kind_are_refused(tmp_path):
    doc = workload_doc()
    doc["spec"]["jobs"].append({"name": "a", "durationS": 5})
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(doc))
    with pytest.raises(SpecError, match="job names must be unique; 'a' appears twice"):
        load_workload(str(path), WorkloadContext())
    with pytest.raises(SpecError, match="expected exactly one Cluster document, found 0"):
        load_cluster(WORKLOAD)


def test_snake_case_keys_are_accepted_too(tmp_path):
    path = tmp_path / "snake.yaml"
    path.write_text(yaml.safe_dump(workload_doc(submit_s=30, resources={"gpu": 2, "memory_gib": 8}, deadline_s=600)))
    [job] = load_workload(str(path), WorkloadContext())
    assert (job.submit, job.duration, job.gpu_milli, job.mem_mib, job.deadline) == (30.0, 60.0, 2000, 8192, 600.0)
