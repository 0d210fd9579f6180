"""The Philly loader on the full trace and on small hand-made files."""

import csv

import pytest

from altostrat.workload.loaders.synthetic import CPU_PER_GPU_MILLI, MEM_PER_GPU_MIB
from altostrat.workload.sources import TraceError, WorkloadContext, load_workload

HEADER = "timestamp,duration,num_gpus,gpu_time,cluster\n"


@pytest.fixture(scope="module")
def philly_path(shared_data):
    return shared_data / "traces" / "philly" / "philly.csv"


@pytest.fixture(scope="module")
def philly_jobs(philly_path):
    return load_workload(f"philly:{philly_path}", WorkloadContext())


def test_full_trace_loads_every_row(philly_jobs, philly_path):
    jobs = philly_jobs
    assert len(jobs) == 82_247
    assert len({j.id for j in jobs}) == 82_247
    assert len({j.tenant for j in jobs}) == 15  # the Philly VCs
    assert sum(j.tasks == 1 for j in jobs) == 76_627  # SOURCES.md
    # 2017-09-04 10:30:41 .. 2017-12-22 08:02:11 = 109 days - 2:28:30
    assert jobs[0].submit == 0.0 and jobs[-1].submit == 109 * 86400 - 8910
    # the loader does not read gpu_time; the file says it is duration x num_gpus on every row
    with philly_path.open() as fh:
        gpu_seconds = sum(float(r["gpu_time"]) for r in csv.DictReader(fh))
    assert sum(j.tasks * j.duration for j in jobs) == pytest.approx(gpu_seconds, rel=1e-12)


def test_rows_become_gangs_of_one_gpu_tasks(philly_jobs):
    by_id = {j.id: j for j in philly_jobs}
    first = by_id["philly-2"]  # line 2: 2017-10-09 07:01:55,66.0,1,66.0,11cb48
    assert first.submit == 35 * 86400 - (3 * 3600 + 28 * 60 + 46)  # 35 days minus 03:28:46 after the start
    assert (first.duration, first.tasks, first.gpu_milli, first.tenant) == (66.0, 1, 1000, "11cb48")
    assert (first.cpu_milli, first.mem_mib) == (CPU_PER_GPU_MILLI, MEM_PER_GPU_MIB)
    eight = by_id["philly-31568"]  # the earliest row: an 8-GPU job of 2,240,194 s
    assert (eight.submit, eight.tasks, eight.duration, eight.tenant) == (0.0, 8, 2240194.0, "7f04ca")
    assert eight.cpu_milli == CPU_PER_GPU_MILLI  # per task, and a task holds one GPU


def write(tmp_path, body: str):
    path = tmp_path / "philly.csv"
    path.write_text(HEADER + body)
    return f"philly:{path}", path


GOOD = "2017-10-01 00:00:10,100.0,2,200.0,vcA\n2017-10-01 00:00:00,50.0,1,50.0,vcB\n"


def test_small_file_submits_are_relative_to_the_earliest(tmp_path):
    spec, _ = write(tmp_path, GOOD + "\n")  # a trailing blank line, as in the real file
    jobs = load_workload(spec, WorkloadContext())
    assert [(j.id, j.submit, j.tasks, j.tenant) for j in jobs] == [("philly-3", 0.0, 1, "vcB"), ("philly-2", 10.0, 2, "vcA")]


@pytest.mark.parametrize(
    "row, field, reason",
    [
        ("2017-10-01 00:00:20,0.0,1,0.0,vcA", "duration", "> 0"),
        ("2017-10-01 00:00:20,-5,1,-5,vcA", "duration", "> 0"),
        ("2017-10-01 00:00:20,abc,1,1,vcA", "duration", "number of seconds"),
        ("2017-10-01 00:00:20,10.0,0,0.0,vcA", "num_gpus", "whole number of GPUs"),
        ("2017-10-01 00:00:20,10.0,-2,0.0,vcA", "num_gpus", "whole number of GPUs"),
        ("2017-10-01 00:00:20,10.0,1.5,15,vcA", "num_gpus", "whole number of GPUs"),
        ("2017-13-01 00:00:20,10.0,1,10.0,vcA", "timestamp", "ISO datetime"),
        ("yesterday,10.0,1,10.0,vcA", "timestamp", "ISO datetime"),
        ("2017-10-01 00:00:20,10.0,1", "row", "has 3 values but the header has 5"),
    ],
)
def test_a_malformed_row_names_file_line_field_and_reason(tmp_path, row, field, reason):
    spec, path = write(tmp_path, GOOD + row + "\n")
    with pytest.raises(TraceError) as exc:
        load_workload(spec, WorkloadContext())
    msg = str(exc.value)
    assert f"{path}, line 4: field '{field}'" in msg and reason in msg and "--skip-invalid" in msg


def test_skip_invalid_skips_and_counts_each_bad_row(tmp_path):
    bad = "2017-10-01 00:01:00,0.0,1,0.0,vcA\n2017-10-01 00:02:00,5.0,0,0.0,vcA\n2017-10-01 00:03:00,-1,4,-4,vcC\n"
    spec, _ = write(tmp_path, bad + GOOD)
    ctx = WorkloadContext(skip_invalid=True)
    jobs = load_workload(spec, ctx)
    assert [j.id for j in jobs] == ["philly-6", "philly-5"]
    assert sum(ctx.skipped.values()) == 3
    assert ctx.skipped["duration: must be a number of seconds > 0"] == 2


def test_a_file_without_the_philly_columns_lists_its_header(tmp_path):
    path = tmp_path / "other.csv"
    path.write_text("submit,runtime,gpus\n1,2,3\n")
    with pytest.raises(TraceError, match=r"no column for submit=timestamp, duration=duration.*its columns are: submit, runtime, gpus"):
        load_workload(f"philly:{path}", WorkloadContext())


def test_a_missing_file_is_a_clear_error(tmp_path):
    with pytest.raises(TraceError, match="is not a file"):
        load_workload(f"philly:{tmp_path / 'nope.csv'}", WorkloadContext())
