"""The Gavel loader on the MSR seed-0 traces and on small hand-made files."""

import json
from collections import Counter

import pytest

from altostrat.workload.loaders.synthetic import CPU_PER_GPU_MILLI
from altostrat.workload.sources import TraceError, WorkloadContext, load_workload

ROWS_PER_FILE = {  # SOURCES.md
    "0e4a51": 1181, "103959": 986, "11cb48": 2000, "23dbec": 9, "2869ce": 533, "51b7ef": 18, "6214e9": 2000,
    "6c71a0": 2000, "795a4c": 3, "7f04ca": 972, "925e2b": 4, "b436b2": 2000, "e13805": 607, "ed69ec": 951,
    "ee9e8c": 2000,
}


@pytest.fixture(scope="module")
def gavel_dir(shared_data):
    return shared_data / "traces" / "gavel" / "msr-seed0"


@pytest.fixture(scope="module")
def msr_jobs(gavel_dir):
    return {j.id: j for j in load_workload(f"gavel:{gavel_dir}", WorkloadContext())}


def test_folder_loads_every_row_of_every_file(msr_jobs):
    jobs = list(msr_jobs.values())
    assert len(jobs) == 15_264
    assert Counter(j.tenant for j in jobs) == ROWS_PER_FILE  # the file stem (VC id) is the tenant
    assert min(j.submit for j in jobs) == 0.0 and max(j.submit for j in jobs) == 10_817_570.0
    assert all(j.gpu_milli == 1000 and j.cpu_milli == CPU_PER_GPU_MILLI for j in jobs)
    # K80 throughput is 0 for ResNet-50 (batch size 128) on 2, 4 and 8 GPUs: those 182 jobs may not use K80
    restricted = [j for j in jobs if j.gpu_models is not None]
    assert len(restricted) == 182 and {j.gpu_models for j in restricted} == {("P100", "V100")}
    assert all(j.job_type == "ResNet-50 (batch size 128)" and j.tasks > 1 for j in restricted)


def test_durations_and_speeds_follow_the_throughput_table(msr_jobs):
    # 0e4a51 line 1: Transformer (batch size 128), 95,121 steps, 1 GPU, arrival 0.
    # v100 / p100 / k80 solo throughputs 5.44610521981264 / 3.0735350560514787 / 0.9815827061299781 it/s
    job = msr_jobs["0e4a51-1"]
    assert (job.submit, job.tasks, job.tenant) == (0.0, 1, "0e4a51")
    assert job.duration == pytest.approx(95121 / 5.44610521981264)  # 17,465.88 s on a V100
    assert job.speeds == pytest.approx({"V100": 1.0, "P100": 0.5643546960624488, "K80": 0.18023572195392637})
    assert job.gpu_models is None
    # 23dbec line 5: ResNet-50 (batch size 128) on 8 GPUs: v100 10.293183147179176, p100 9.934969604819724, k80 0
    job = msr_jobs["23dbec-5"]
    assert (job.submit, job.tasks) == (188006.0, 8)
    assert job.duration == pytest.approx(33895 / 10.293183147179176)
    assert job.speeds == pytest.approx({"V100": 1.0, "P100": 0.9651989537893708})
    assert job.gpu_models == ("P100", "V100")


def test_gang_sizes_beyond_the_table_scale_from_the_nearest_size_below(msr_jobs):
    # e13805 line 220: A3C on 12 GPUs; the table has A3C on 1 GPU only (7.175767179667988 it/s on V100),
    # so 12 GPUs run 12x as fast: 11,106 steps / (7.1758 x 12) = 128.98 s; the speed ratios stay those of 1 GPU
    job = msr_jobs["e13805-220"]
    assert (job.job_type, job.tasks) == ("A3C", 12)
    assert job.duration == pytest.approx(11106 / (7.175767179667988 * 12))
    assert job.speeds == pytest.approx({"V100": 1.0, "P100": 0.7917405858207791, "K80": 0.47921953750337537})


def row(job_type="Tiny", steps="1000", arrival="5.0", gpus="1"):
    return "\t".join([job_type, "python3 train.py", "--steps", "1", steps, arrival, gpus]) + "\n"


@pytest.fixture
def tiny(tmp_path):
    """A hand-made table: Tiny measured on 1 and 2 GPUs; K80 cannot run it on 2."""
    table = {
        "v100": {"('Tiny', 1)": {"null": 10.0}, "('Tiny', 2)": {"null": 16.0}},
        "p100": {"('Tiny', 1)": {"null": 5.0}, "('Tiny', 2)": {"null": 8.0}},
        "k80": {"('Tiny', 1)": {"null": 2.0}, "('Tiny', 2)": {"null": 0.0}},
        "k80_unconsolidated": {"('Tiny', 1)": {"null": 1.0}},
    }
    (tmp_path / "simulation_throughputs.json").write_text(json.dumps(table))
    traces = tmp_path / "traces"
    traces.mkdir()
    return traces


def test_hand_made_table_scaling_and_throughputs_found_in_the_parent_folder(tiny):
    (tiny / "vc1.trace").write_text(row(steps="1000", gpus="1") + row(steps="1600", gpus="2") + row(steps="2400", gpus="3"))
    (tiny / "vc2.trace").write_text(row(arrival="0.0", steps="500"))
    jobs = load_workload(f"gavel:{tiny}", WorkloadContext())
    got = {j.id: (j.submit, j.tasks, j.duration, j.speeds, j.gpu_models, j.tenant) for j in jobs}
    assert got == {
        "vc2-1": (0.0, 1, 50.0, {"V100": 1.0, "P100": 0.5, "K80": 0.2}, None, "vc2"),
        "vc1-1": (5.0, 1, 100.0, {"V100": 1.0, "P100": 0.5, "K80": 0.2}, None, "vc1"),
        "vc1-2": (5.0, 2, 100.0, {"V100": 1.0, "P100": 0.5}, ("P100", "V100"), "vc1"),
        # 3 GPUs scale from 2: 16 x 3/2 = 24 it/s on V100
        "vc1-3": (5.0, 3, 100.0, {"V100": 1.0, "P100": 0.5}, ("P100", "V100"), "vc1"),
    }
    one_file = load_workload(f"gavel:{tiny / 'vc2.trace'}", WorkloadContext())
    assert [j.id for j in one_file] == ["vc2-1"]


def test_throughputs_named_explicitly(tiny, tmp_path):
    elsewhere = tmp_path / "other" / "vcs"  # neither it nor its parent holds the table
    elsewhere.mkdir(parents=True)
    (elsewhere / "t.trace").write_text(row())
    with pytest.raises(TraceError, match=r"no simulation_throughputs.json in .*#throughputs=PATH"):
        load_workload(f"gavel:{elsewhere}", WorkloadContext())
    jobs = load_workload(f"gavel:{elsewhere}#throughputs={tmp_path / 'simulation_throughputs.json'}", WorkloadContext())
    assert [(j.id, j.duration) for j in jobs] == [("t-1", 100.0)]


@pytest.mark.parametrize(
    "bad, field, reason",
    [
        (row(job_type="Huge"), "job_type", "job type not in simulation_throughputs.json"),
        (row(steps="0"), "total_steps", "whole number of steps > 0"),
        (row(steps="1e3"), "total_steps", "whole number of steps > 0"),
        (row(arrival="-1"), "arrival_time", "seconds >= 0"),
        (row(gpus="0"), "scale_factor", "whole number of GPUs > 0"),
        ("Tiny\tpython3\t5.0\t1\n", "row", "has 4 tab-separated values"),
    ],
)
def test_a_malformed_row_names_file_line_field_and_reason(tiny, bad, field, reason):
    path = tiny / "vc.trace"
    path.write_text(row() + "\n" + bad)  # a blank line 2: the bad row is line 3
    with pytest.raises(TraceError) as exc:
        load_workload(f"gavel:{path}", WorkloadContext())
    msg = str(exc.value)
    assert f"{path}, line 3: field '{field}': " in msg and reason in msg


def test_skip_invalid_counts_bad_rows(tiny):
    (tiny / "vc.trace").write_text(row() + row(job_type="Huge") + row(gpus="x") + row(job_type="Huge") + row())
    ctx = WorkloadContext(skip_invalid=True)
    jobs = load_workload(f"gavel:{tiny}", ctx)
    assert [j.id for j in jobs] == ["vc-1", "vc-5"]
    assert dict(ctx.skipped) == {
        "job_type: job type not in simulation_throughputs.json": 2,
        "scale_factor: must be a whole number of GPUs > 0": 1,
    }


def test_bad_paths_and_tables(tmp_path):
    with pytest.raises(TraceError, match="neither a .trace file nor a folder"):
        load_workload(f"gavel:{tmp_path / 'missing'}", WorkloadContext())
    with pytest.raises(TraceError, match="holds no .trace files"):
        load_workload(f"gavel:{tmp_path}", WorkloadContext())
    (tmp_path / "a.trace").write_text(row())
    (tmp_path / "simulation_throughputs.json").write_text(json.dumps({"v100": {}, "p100": {}}))
    with pytest.raises(TraceError, match="lacks GPU types k80"):
        load_workload(f"gavel:{tmp_path}", WorkloadContext())
    (tmp_path / "simulation_throughputs.json").write_text(json.dumps({t: {"Tiny, 1": {"null": 1}} for t in ("v100", "p100", "k80")}))
    with pytest.raises(TraceError, match=r"entry v100.Tiny, 1 must be keyed \"\(job_type, scale_factor\)\""):
        load_workload(f"gavel:{tmp_path}", WorkloadContext())
    (tmp_path / "simulation_throughputs.json").write_text(json.dumps({t: {"('Tiny', 1)": {"null": 1}} for t in ("v100", "p100", "k80")}))
    (tmp_path / "a.trace").write_bytes(b"\xff\xfe\x00binary")
    with pytest.raises(TraceError, match="is not UTF-8 text"):
        load_workload(f"gavel:{tmp_path}", WorkloadContext())
