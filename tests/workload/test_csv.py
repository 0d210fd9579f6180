"""`csv:PATH#MAPPING`: users' own traces through a column mapping."""

import pytest

from altostrat.workload.loaders.synthetic import CPU_PER_GPU_MILLI, MEM_PER_GPU_MIB
from altostrat.workload.sources import TraceError, WorkloadContext, load_workload


def load(tmp_path, text: str, mapping: str, **ctx):
    path = tmp_path / "mine.csv"
    path.write_text(text)
    return load_workload(f"csv:{path}#{mapping}", WorkloadContext(**ctx)), path


def test_numeric_submits_with_every_optional_column(tmp_path):
    text = (
        "name,t,run_s,g,team,prio,due,vcpu,ram,model\n"
        "a,100,60,4,vision,2,1000,32,256,V100\n"
        "b,30,10.5,0.5,,,,,,\n"
        "c,50,20,0,nlp,-1,,8,16,\n"
    )
    jobs, _ = load(tmp_path, text, "id=name,submit=t,duration=run_s,gpus=g,tenant=team,priority=prio,"
                   "deadline=due,cpu=vcpu,memory_gib=ram,gpu_model=model")
    b, c, a = jobs  # sorted by submit; numeric submits are kept as given
    assert (a.id, a.submit, a.duration, a.tasks, a.gpu_milli) == ("a", 100.0, 60.0, 4, 1000)
    assert (a.cpu_milli, a.mem_mib) == (8000, 64 * 1024)  # job totals 32 vCPU / 256 GiB over 4 tasks
    assert (a.tenant, a.priority, a.deadline, a.gpu_models) == ("vision", 2, 1000.0, ("V100",))
    # half a GPU: one fractional task with half the per-GPU host share; empty cells take defaults
    assert (b.tasks, b.gpu_milli, b.cpu_milli, b.mem_mib) == (1, 500, CPU_PER_GPU_MILLI // 2, MEM_PER_GPU_MIB // 2)
    assert (b.tenant, b.priority, b.deadline, b.gpu_models) == ("default", 0, None, None)
    assert (c.tasks, c.gpu_milli, c.cpu_milli, c.mem_mib, c.priority) == (1, 0, 8000, 16 * 1024, -1)  # CPU-only


def test_iso_submits_and_deadlines_are_seconds_after_the_earliest_submit(tmp_path):
    text = "ts,dur,n,due\n2024-03-01T12:00:00,60,1,2024-03-01T13:00:00\n2024-03-01 11:30:00,60,2,\n2024-03-01T11:00:00+00:00,5,1,\n"
    jobs, _ = load(tmp_path, text, "submit=ts,duration=dur,gpus=n,deadline=due")
    assert [(j.id, j.submit, j.deadline) for j in jobs] == [
        ("mine-4", 0.0, None), ("mine-3", 1800.0, None), ("mine-2", 3600.0, 7200.0),
    ]


def test_line_numbers_count_quoted_newlines(tmp_path):
    text = 'note,t,d,g\n"two\nlines",0,10,1\nok,5,-1,1\n'
    with pytest.raises(TraceError, match=r"mine.csv, line 4: field 'd': must be a number of seconds > 0"):
        load(tmp_path, text, "submit=t,duration=d,gpus=g")


@pytest.mark.parametrize(
    "row, field, reason",
    [
        ("x,2024-01-01,10,1,,", "t", "number of seconds >= 0 (as in the first row)"),
        ("x,-3,10,1,,", "t", "number of seconds >= 0"),
        ("x,5,nan,1,,", "d", "number of seconds > 0"),
        ("x,5,10,0,,", "g", "or 0 for a CPU-only job with cpu > 0"),
        ("x,5,10,2.5,,", "g", "whole number of GPUs"),
        ("x,5,10,1,-4,", "c", "vCPUs >= 0"),
        ("x,5,10,1,,high", "p", "must be an integer"),
        ("first,5,10,1,,", "id", "unique, non-empty job id"),
        (",5,10,1,,", "id", "unique, non-empty job id"),
    ],
)
def test_bad_rows_name_line_field_and_reason(tmp_path, row, field, reason):
    text = f"id,t,d,g,c,p\nfirst,0,10,1,,\n{row}\n"
    with pytest.raises(TraceError) as exc:
        load(tmp_path, text, "id=id,submit=t,duration=d,gpus=g,cpu=c,priority=p")
    msg = str(exc.value)
    assert f"mine.csv, line 3: field '{field}': " in msg and reason in msg


def test_skip_invalid_counts_per_reason(tmp_path):
    text = "t,d,g\n0,10,1\n1,0,1\n2,-1,1\n3,10,zero\n4,10\n5,10,8\n"
    ctx = WorkloadContext(skip_invalid=True)
    path = tmp_path / "mine.csv"
    path.write_text(text)
    jobs = load_workload(f"csv:{path}#submit=t,duration=d,gpus=g", ctx)
    assert [(j.id, j.tasks) for j in jobs] == [("mine-2", 1), ("mine-7", 8)]
    assert dict(ctx.skipped) == {
        "d: must be a number of seconds > 0": 2,
        "g: must be a whole number of GPUs >= 1 or a share of one GPU in (0, 1)": 1,
        "row: has 2 values but the header has 3": 1,
    }


def test_mapping_errors_list_the_header(tmp_path):
    with pytest.raises(TraceError, match=r"mapping needs gpus=COLUMN .*columns of .*mine.csv are: t, d, g"):
        load(tmp_path, "t,d,g\n0,1,1\n", "submit=t,duration=d")
    with pytest.raises(TraceError, match=r"no column for gpus=n; its columns are: t, d, g"):
        load(tmp_path, "t,d,g\n0,1,1\n", "submit=t,duration=d,gpus=n")
    with pytest.raises(TraceError, match=r"unknown mapping field 'user'; fields are: submit, duration, gpus, tenant"):
        load(tmp_path, "t,d,g\n0,1,1\n", "submit=t,duration=d,gpus=g,user=t")
    with pytest.raises(TraceError, match=r"name the file and a column mapping"):
        load_workload(f"csv:{tmp_path / 'mine.csv'}", WorkloadContext())


def test_a_binary_file_is_a_clear_error(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_bytes(b"t,d,g\n0,1,1\n\xff\xfe,2,1\n")
    with pytest.raises(TraceError, match=r"mine.csv, line \d+: not a readable CSV row"):
        load_workload(f"csv:{path}#submit=t,duration=d,gpus=g", WorkloadContext())
