"""The local executor's task wrapper: nothing runs before the go-ahead, and every ending
command leaves its exit status in a file that a restarted service reads."""

from __future__ import annotations

import signal
import subprocess
import sys
import threading
import time

import pytest

from altostrat.service import executor as ex

PY = sys.executable


def start(tmp_path, code: str, release: bool = True):
    log = tmp_path / "attempt-1.task-0.log"
    proc = ex.spawn([PY, "-c", code], ex.task_env({}, {}), tmp_path, 0, log)
    if release:
        ex.release(proc)
    return proc, ex.exit_path(log), log


def test_exit_codes_and_signals_are_recorded(tmp_path):
    for code, expected in (("pass", 0), ("import sys; sys.exit(3)", 3),
                           ("import os, signal; os.kill(os.getpid(), signal.SIGKILL)", -9)):
        proc, exit_file, _ = start(tmp_path, code)
        proc.wait(timeout=20)
        assert exit_file.read_text() == f"{expected}\n"
        assert ex.exit_status(proc, exit_file) == expected
        assert proc.returncode == (expected if expected >= 0 else 128 - expected)
        assert not exit_file.with_suffix(".exit.tmp").exists()


def test_nothing_runs_without_the_go_ahead(tmp_path):
    marker = tmp_path / "ran"
    proc, exit_file, _ = start(tmp_path, f"open({str(marker)!r}, 'w')", release=False)
    proc.stdin.close()  # as when the service dies before committing the pid
    assert proc.wait(timeout=20) == 0
    assert not marker.exists() and not exit_file.exists()
    # an adopted process that ended without a record is lost: no exit status
    assert ex.exit_status(ex.Adopted(proc.pid, 1), exit_file) is None


def test_a_missing_program_is_code_127_with_its_reason_in_the_log(tmp_path):
    log = tmp_path / "attempt-1.task-0.log"
    proc = ex.spawn(["no-such-program-x"], ex.task_env({}, {}), tmp_path, 0, log)
    ex.release(proc)
    assert proc.wait(timeout=20) == 127
    assert ex.exit_path(log).read_text() == "127\n"
    assert "altostrat: cannot start 'no-such-program-x'" in log.read_text()


def test_the_group_signal_reaches_the_command_and_the_wrapper_records_its_exit(tmp_path):
    trap = ("import signal, sys, time\n"
            "signal.signal(signal.SIGUSR1, lambda *_: sys.exit(5))\n"
            "print('ready', flush=True)\n"
            "time.sleep(30)\n")
    proc, exit_file, log = start(tmp_path, trap)
    deadline = time.monotonic() + 20
    while "ready" not in log.read_text() and time.monotonic() < deadline:
        time.sleep(0.02)
    assert ex.alive(ex.Adopted(proc.pid, ex.proc_start(proc.pid)))
    ex.signal_group(proc.pid, signal.SIGUSR1)
    proc.wait(timeout=20)
    assert exit_file.read_text() == "5\n" and ex.exit_status(proc, exit_file) == 5
    assert not ex.alive(ex.Adopted(proc.pid, 1))  # gone (or another process's pid): not alive


def test_executors_are_named_in_one_registry(monkeypatch):
    assert list(ex.EXECUTORS) == ["local", "ray"]
    assert isinstance(ex.make_executor("local", cgroup_root=None), ex.LocalExecutor)
    with pytest.raises(ex.ExecutorError, match=r"^unknown executor 'slurm'; one of: local, ray$"):
        ex.make_executor("slurm")
    monkeypatch.setitem(sys.modules, "ray", None)  # as when the extra is not installed: import fails
    with pytest.raises(ex.ExecutorError) as raised:
        ex.make_executor("ray")
    assert str(raised.value) == "the ray executor needs Ray, an optional extra: pip install 'altostrat[ray]'"


def test_a_tied_wrapper_kills_its_command_when_its_starter_is_gone(tmp_path):
    """The Ray executor's mode: a Ray worker that exits kills its children (the wrapper) with
    SIGKILL; the pipe's end then makes the wrapper's sentinel kill the command too."""
    import subprocess

    log, exit_file = tmp_path / "t.log", tmp_path / "t.exit"
    with open(log, "wb") as out:
        proc = subprocess.Popen([*ex.WRAPPER, "--tied", str(exit_file), PY, "-c",
                                 "import os, time; print(os.getpid(), flush=True); time.sleep(60)"],
                                stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
    proc.stdin.write(b"\n")
    proc.stdin.flush()
    deadline = time.monotonic() + 20
    while not log.read_text().strip() and time.monotonic() < deadline:
        time.sleep(0.02)
    command = int(log.read_text())
    start = ex.proc_start(command)
    assert start is not None
    proc.kill()  # the wrapper alone, as the worker kills its children
    assert proc.wait(timeout=20) == -9
    assert ex.proc_start(command) == start  # its command lives on, orphaned…
    proc.stdin.close()  # …until the pipe's write end closes, as when the worker is gone
    deadline = time.monotonic() + 20
    while ex.alive(ex.Adopted(command, start)) and time.monotonic() < deadline:
        time.sleep(0.02)
    assert not ex.alive(ex.Adopted(command, start)) and not exit_file.exists()


def test_the_exit_watcher_calls_back_when_a_process_ends():
    watcher = ex.ExitWatcher()
    ended = [threading.Event() for _ in range(3)]
    try:
        # each runs until its stdin closes
        procs = [subprocess.Popen([PY, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE) for _ in range(2)]
        for proc, event in zip(procs, ended):
            watcher.watch(proc.pid, event.set)
        time.sleep(0.2)
        assert not any(e.is_set() for e in ended)  # they still run
        for proc, event in zip(procs, ended):
            proc.stdin.close()
            assert event.wait(10), "no call back for an ended process"
            assert proc.wait(5) == 0
        gone = subprocess.Popen([PY, "-c", "pass"])
        gone.wait()  # reaped: its pid names no process any more
        watcher.watch(gone.pid, ended[2].set)
        assert ended[2].is_set()  # at once
    finally:
        watcher.close()
