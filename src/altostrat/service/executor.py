"""The local executor: each task is a subprocess of this machine.

Every node of every Pool is served by this one machine: a Pool declares the capacity the
engine may hand out, and GPU devices are only the numbers put in CUDA_VISIBLE_DEVICES (so a
GPU count may be declared on a machine without GPUs, for testing). A task runs in its own
session (so a signal reaches its children too) with stdout and stderr in one log file.
Memory is enforced with RLIMIT_AS (set by `ulimit -v` in a /bin/sh that then execs the
command, because preexec_fn is unsafe in a threaded server); CPU is reserved by the
engine but not enforced (cgroups v2 is not used; RLIMIT_CPU caps CPU seconds, not a share).
"""

from __future__ import annotations

import os
import signal
import subprocess
from pathlib import Path

ENFORCEMENT = ("local executor: tasks are subprocesses of this machine; memory is enforced per task with "
               "RLIMIT_AS (virtual memory); CPU is reserved by the scheduler but not enforced (cgroups v2 is "
               "not used); GPUs are assigned with CUDA_VISIBLE_DEVICES")
# never handed to a job: the service's own credentials
SECRET_ENV = ("ALTOSTRAT_ADMIN_TOKEN", "ALTOSTRAT_TOKEN")


def job_dir(data_dir: Path, name: str, job_id: int) -> Path:
    """A job's folder (its logs, and its working directory unless the spec names one). The row id
    keeps a re-created job of the same name apart."""
    return data_dir / "jobs" / f"{name}-{job_id}"


def log_path(data_dir: Path, name: str, job_id: int, attempt: int, task: int) -> Path:
    return job_dir(data_dir, name, job_id) / f"attempt-{attempt}.task-{task}.log"


def task_env(spec_env: dict[str, str], extra: dict[str, str]) -> dict[str, str]:
    """The server's environment without its secrets, then the job's `env`, then ours."""
    env = {k: v for k, v in os.environ.items() if k not in SECRET_ENV}
    env.update(spec_env)
    env.update(extra)
    return env


def spawn(command: list[str], env: dict[str, str], cwd: Path, mem_mib: int, log: Path) -> subprocess.Popen:
    """Start one task; OSError if its program or folder is missing."""
    argv = command
    if mem_mib:
        argv = ["/bin/sh", "-c", 'ulimit -v "$0" && exec "$@"', str(mem_mib * 1024), *command]
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "ab") as out:
        return subprocess.Popen(argv, env=env, cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                                stderr=subprocess.STDOUT, start_new_session=True)


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
