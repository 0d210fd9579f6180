"""The local executor: each task is a subprocess of this machine.

Every node of every Pool is served by this one machine: a Pool declares the capacity the
engine may hand out, and GPU devices are only the numbers put in CUDA_VISIBLE_DEVICES (so a
GPU count may be declared on a machine without GPUs, for testing). A task runs in its own
session (so a signal reaches its children too, and the task outlives a crash of the
service) with stdout and stderr in one log file, under `task_wrapper.py`: the wrapper waits
for `release` (sent once the task's pid is committed) before it runs the command, and writes
the command's exit status to a file, where a restarted service that adopted the task reads it.
Memory is enforced with RLIMIT_AS (set by `ulimit -v` in a /bin/sh that then execs the
command, because preexec_fn is unsafe in a threaded server); CPU is reserved by the
engine but not enforced (cgroups v2 is not used; RLIMIT_CPU caps CPU seconds, not a share).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

ENFORCEMENT = ("local executor: tasks are subprocesses of this machine; memory is enforced per task with "
               "RLIMIT_AS (virtual memory); CPU is reserved by the scheduler but not enforced (cgroups v2 is "
               "not used); GPUs are assigned with CUDA_VISIBLE_DEVICES")
# never handed to a job: the service's own credentials
SECRET_ENV = ("ALTOSTRAT_ADMIN_TOKEN", "ALTOSTRAT_TOKEN")
# by path, isolated and without site: it needs only the standard library and starts fast
WRAPPER = (sys.executable, "-I", "-S", str(Path(__file__).with_name("task_wrapper.py")))


def job_dir(data_dir: Path, name: str, job_id: int) -> Path:
    """A job's folder (its logs, and its working directory unless the spec names one). The row id
    keeps a re-created job of the same name apart."""
    return data_dir / "jobs" / f"{name}-{job_id}"


def log_path(data_dir: Path, name: str, job_id: int, attempt: int, task: int) -> Path:
    return job_dir(data_dir, name, job_id) / f"attempt-{attempt}.task-{task}.log"


def exit_path(log: str | Path) -> Path:
    """Where a task's wrapper writes its command's exit status (beside its log)."""
    return Path(log).with_suffix(".exit")


def task_env(spec_env: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """The server's environment without its secrets, then the job's `env`, then ours."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env.update(spec_env)
    env.update(extra)
    return env


def spawn(command: list[str], env: dict[str, str], cwd: Path, mem_mib: int, log: Path) -> subprocess.Popen:
    """Start one task's wrapper, which runs the command once `release`d; OSError if the
    working folder is missing (a missing program is the command's exit code 127)."""
    argv = command
    if mem_mib:
        argv = ["/bin/sh", "-c", 'ulimit -v "$0" && exec "$@"', str(mem_mib * 1024), *command]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen([*WRAPPER, str(exit_path(log)), *argv], env=env, cwd=cwd, stdin=subprocess.PIPE,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)


def release(proc: subprocess.Popen) -> None:
    """Let a spawned task run its command: call once its pid is committed."""
    try:
        proc.stdin.write(b"\n")
        proc.stdin.close()
    except BrokenPipeError:
        pass  # the wrapper is gone already; its exit is reaped as any other


@dataclass(frozen=True, slots=True)
class Adopted:
    """A task process an earlier run of the service started: not a child of this one, so it
    is known by its pid and start time, and its outcome is read from its exit file."""

    pid: int
    start: int


def alive(proc: subprocess.Popen | Adopted) -> bool:
    if isinstance(proc, Adopted):
        return proc_start(proc.pid) == proc.start
    return proc.poll() is None


def exit_status(proc: subprocess.Popen | Adopted, exit_file: Path) -> int | None:
    """An ended task's exit code (negative: the signal that killed it) as its wrapper recorded
    it, else as wait() saw the wrapper end; None when neither is known (an adopted task whose
    wrapper was killed: it is lost)."""
    try:
        return int(exit_file.read_text())
    except (OSError, ValueError):
        return None if isinstance(proc, Adopted) else proc.returncode


def proc_start(pid: int) -> int | None:
    """The process's start time in clock ticks since boot (field 22 of /proc/PID/stat), or None
    if it is gone: with the pid it names one process, even after pids wrap around."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2:].split()  # the command name may hold spaces and parentheses
    if fields[0] == "Z":
        return None  # exited, not yet reaped
    return int(fields[19])


def signal_group(pid: int, sig: int) -> None:
    """Signal a task and everything it started (its session's process group)."""
    try:
        os.killpg(pid, sig)
    except (ProcessLookupError, PermissionError):
        pass


def signal_number(name: str) -> int:
    return int(signal.Signals[name])
