"""`altostrat workloads inspect` as a user runs it, and the statistics behind it."""

import json
import os
import subprocess
import sys
from collections import Counter

import pytest
from helpers import job

from altostrat.workload.inspect import gpu_bucket, trace_stats

ALTOSTRAT = [sys.executable, "-m", "altostrat.cli", "workloads", "inspect"]

# 4 jobs 1 h apart; one bad row (duration 0) on line 4
TRACE = "t,d,g,team\n0,100,1,a\n3600,200,2,b\n7200,0,1,a\n7200,300,0.5,a\n10800,400,8,c\n"
MAPPING = "submit=t,duration=d,gpus=g,tenant=team"


def inspect(*args, check=True):
    # a wide console: the table's title holds the temporary path, whose length varies
    env = {**os.environ, "COLUMNS": "250"}
    return subprocess.run([*ALTOSTRAT, *args], capture_output=True, text=True, check=check, timeout=120, env=env)


def test_inspect_json_on_a_small_trace_with_a_skipped_row(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(TRACE)
    stats = json.loads(inspect(f"csv:{path}#{MAPPING}", "--skip-invalid", "--json").stdout)
    assert stats == {
        "workload": f"csv:{path}#{MAPPING}",
        "jobs": 4,
        "span_s": 10800.0,
        "span_days": 0.125,
        "gpu_mix": {"fractional": 0.25, "1": 0.25, "2": 0.25, "5-8": 0.25},
        # numpy's linear interpolation over 100, 200, 300, 400
        "duration_p50_s": 250.0,
        "duration_p90_s": pytest.approx(370.0),
        "duration_p99_s": pytest.approx(397.0),
        "arrival_rate_per_h": 1.0,  # 3 inter-arrivals in 3 h
        "tenants": 3,
        "gpu_hours": pytest.approx((1 * 100 + 2 * 200 + 0.5 * 300 + 8 * 400) / 3600),
        "skipped_rows": 1,
        "skipped_reasons": {"d: must be a number of seconds > 0": 1},
    }


def test_inspect_table_and_errors(tmp_path):
    path = tmp_path / "mine.csv"
    path.write_text(TRACE)
    table = inspect(f"csv:{path}#{MAPPING}", "--skip-invalid").stdout
    for text in ("jobs", "10,800 s (0.1 days)", "1.0 jobs/h", "250 / 370 / 397 s", "jobs with 5-8 GPUs",
                 "25.00% (1)", "fractional jobs", "skipped rows"):
        assert text in table, text
    failed = inspect(f"csv:{path}#{MAPPING}", check=False)
    assert failed.returncode == 2 and failed.stdout == ""
    assert "mine.csv, line 4: field 'd': must be a number of seconds > 0" in " ".join(failed.stderr.split())


def test_inspect_philly_json(shared_data):
    path = shared_data / "traces" / "philly" / "philly.csv"
    stats = json.loads(inspect(f"philly:{path}", "--json").stdout)
    assert (stats["jobs"], stats["tenants"], stats["skipped_rows"]) == (82_247, 15, 0)
    assert stats["span_s"] == 9_408_690.0  # 2017-09-04 10:30:41 .. 2017-12-22 08:02:11
    assert stats["gpu_mix"]["1"] == pytest.approx(76_627 / 82_247)
    assert list(stats["gpu_mix"]) == ["1", "2", "3-4", "5-8", "9-16", "17-32", "33-64", "65-128"]
    # about 374 GPUs busy on average over the span, as the issue says of Philly
    assert 370 < stats["gpu_hours"] / (stats["span_s"] / 3600) < 378


def test_inspect_synthetic_honours_seed_and_cluster():
    a = json.loads(inspect("synthetic:jobs=200", "--seed", "4", "--cluster", "gavel-108", "--json").stdout)
    b = json.loads(inspect("synthetic:jobs=200,seed=4", "--cluster", "gavel-108", "--json").stdout)
    c = json.loads(inspect("synthetic:jobs=200,seed=4", "--json").stdout)  # philly-like: 512 GPUs, not 108
    assert a["jobs"] == 200 and {k: v for k, v in a.items() if k != "workload"} == {
        k: v for k, v in b.items() if k != "workload"}
    assert c["duration_p50_s"] == a["duration_p50_s"] and c["span_s"] < a["span_s"]


def test_gpu_buckets():
    assert [gpu_bucket(job("x", 0, 1, gpus=g)) for g in (1, 2, 3, 4, 5, 8, 9, 16, 128)] == [
        "1", "2", "3-4", "3-4", "5-8", "5-8", "9-16", "9-16", "65-128"]
    assert gpu_bucket(job("x", 0, 1, tasks=4, gpu_milli=500)) == "fractional"
    assert gpu_bucket(job("x", 0, 1, tasks=1, gpu_milli=0, cpu_milli=2000)) == "cpu-only"
    assert gpu_bucket(job("x", 0, 1, tasks=2, gpu_milli=2000)) == "3-4"  # 2 tasks x 2 GPUs


def test_trace_stats_of_one_job_has_no_rate():
    stats = trace_stats([job("x", 5, 60, gpus=2)], Counter())
    assert (stats.jobs, stats.span_s, stats.arrival_rate_per_h, stats.gpu_hours) == (1, 0.0, None, 120 / 3600)
    with pytest.raises(ValueError):
        trace_stats([])


def test_inspect_pod_list_without_times(tmp_path):
    # Like the multigpu* lists: no creation/deletion times, so no time statistics.
    (tmp_path / "pods.csv").write_text(
        "name,cpu_milli,memory_mib,num_gpu,gpu_milli\n"
        "p0,1000,1024,1,1000\np1,1000,1024,1,500\np2,1000,1024,4,1000\np3,4000,1024,0,0\n"
    )
    spec = f"alibaba-v2023:{tmp_path}#pods"
    stats = json.loads(inspect(spec, "--json").stdout)
    assert stats == {
        "workload": spec, "jobs": 4, "span_s": None, "span_days": None,
        "gpu_mix": {"cpu-only": 0.25, "fractional": 0.25, "1": 0.25, "3-4": 0.25},
        "duration_p50_s": None, "duration_p90_s": None, "duration_p99_s": None, "arrival_rate_per_h": None,
        "tenants": 1, "gpu_hours": None, "skipped_rows": 0, "skipped_reasons": {},
    }
    table = " ".join(inspect(spec).stdout.split())
    assert " nan " not in table
    for text in ("span │ – (no times: usable with --arrivals fill:F)", "duration p50 / p90 / p99 │ –",
                 "GPU-hours │ –", "jobs with 3-4 GPUs │ 25.00% (1)"):
        assert text in table, text
