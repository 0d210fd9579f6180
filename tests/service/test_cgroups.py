"""cgroup v2 limits in the local executor, against a fake cgroup root in a temporary folder.

This machine's /sys/fs/cgroup is cgroup v1, so the kernel's enforcement is not exercised here:
these tests check the decision (v2 and writable, or rlimits) and the files a task's cgroup gets,
and that a real task's shell joins its cgroup instead of taking RLIMIT_AS.
"""

from __future__ import annotations

import sys

from hypothesis import given
from hypothesis import strategies as st

from altostrat.service import cgroups
from altostrat.service import executor as ex

PY = sys.executable


def fake_root(tmp_path, controllers: str = "cpuset cpu io memory pids"):
    root = tmp_path / "cgroup"
    root.mkdir(parents=True)
    (root / "cgroup.controllers").write_text(controllers + "\n")
    (root / "cgroup.subtree_control").write_text("")
    return root


def test_the_decision(tmp_path):
    cg, how = cgroups.detect(fake_root(tmp_path))
    assert cg is not None and how == f"cgroup v2 at {tmp_path / 'cgroup' / 'altostrat'}"
    # both controllers enabled for the children, at the root and in altostrat/
    assert (tmp_path / "cgroup" / "cgroup.subtree_control").read_text() == "+cpu +memory"
    assert (tmp_path / "cgroup" / "altostrat" / "cgroup.subtree_control").read_text() == "+cpu +memory"
    assert [p.name for p in (tmp_path / "cgroup" / "altostrat").iterdir()] == ["cgroup.subtree_control"]  # probe gone

    v1 = tmp_path / "v1"
    v1.mkdir()  # a cgroup v1 mount has no cgroup.controllers
    assert cgroups.detect(v1) == (None, f"{v1} is not a cgroup v2 hierarchy (no cgroup.controllers)")
    no_mem = fake_root(tmp_path / "a", "cpu io pids")
    assert cgroups.detect(no_mem) == (None, f"cgroup v2 at {no_mem} lacks the memory controller")
    blocked = fake_root(tmp_path / "b")
    (blocked / "altostrat").write_text("")  # a file where the service's cgroup would go: cannot be made
    cg, why = cgroups.detect(blocked)
    assert cg is None and why.startswith(f"cgroup v2 at {blocked} is not writable (")
    assert cgroups.detect(None) == (None, "cgroups turned off")


def test_the_limit_files():
    assert cgroups.cpu_max(1.5) == "150000 100000"
    assert cgroups.cpu_max(0.25) == "25000 100000"
    assert cgroups.cpu_max(0.001) == "1000 100000"  # the kernel's least quota
    assert cgroups.cpu_max(0) == "max 100000"
    assert cgroups.memory_max(512) == "536870912"
    assert cgroups.memory_max(0) == "max"


@given(st.floats(min_value=0.01, max_value=1024, allow_nan=False))
def test_cpu_max_grants_the_vcpus(cpu):
    quota, period = map(int, cgroups.cpu_max(cpu).split())
    assert period == cgroups.PERIOD_US and abs(quota / period - cpu) <= 0.5 / period


def wait_exit(proc, log):
    proc.wait(timeout=20)
    return log.read_text()


def test_a_task_joins_its_cgroup_instead_of_taking_rlimit_as(tmp_path):
    root = fake_root(tmp_path)
    local = ex.LocalExecutor(root)
    assert local.describe().endswith(f"enforcement: cgroups v2 (each task in its own cgroup under {root / 'altostrat'}: "
                                     "cpu.max from its cpu, memory.max from its memoryGib)")
    log = tmp_path / "jobs" / "train-7" / "attempt-2.task-1.log"
    code = "import os, resource; print(os.getpid(), resource.getrlimit(resource.RLIMIT_AS)[0])"
    proc = local.spawn(ex.TaskSpec([PY, "-c", code], ex.task_env({}, {}), tmp_path, log, 1.5, 512, 0,
                                   ex.signal_number("SIGTERM")))
    local.release(proc)
    pid, rlimit = wait_exit(proc, log).split()
    folder = root / "altostrat" / "train-7.attempt-2.task-1"
    assert (folder / "cpu.max").read_text() == "150000 100000"
    assert (folder / "memory.max").read_text() == str(512 * 2**20)
    assert (folder / "cgroup.procs").read_text().split() == [pid]  # the shell's pid, which exec'd the command
    assert int(rlimit) == -1  # RLIM_INFINITY: no RLIMIT_AS under a cgroup
    assert local.exit_status(proc, ex.exit_path(log)) == 0


def test_without_cgroups_memory_is_rlimit_as(tmp_path):
    local = ex.LocalExecutor(tmp_path / "no-cgroup")
    assert "enforcement: rlimits (memory per task with RLIMIT_AS" in local.describe()
    assert local.describe().endswith(f"because {tmp_path / 'no-cgroup'} is not a cgroup v2 hierarchy "
                                     "(no cgroup.controllers)")
    log = tmp_path / "attempt-1.task-0.log"
    code = "import resource; print(resource.getrlimit(resource.RLIMIT_AS)[0])"
    proc = local.spawn(ex.TaskSpec([PY, "-c", code], ex.task_env({}, {}), tmp_path, log, 1, 2048, 0,
                                   ex.signal_number("SIGTERM")))
    local.release(proc)
    assert int(wait_exit(proc, log)) == 2048 * 2**20

