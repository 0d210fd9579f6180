"""Executors run a job's tasks; the reconciler reaches them through the `Executor` interface.

`EXECUTORS` names them for `serve --executor`: `local` (here) and `ray` (ray_executor.py, an
optional extra). The local executor: each task is a subprocess of this machine.

Every node of every Pool is served by this one machine: a Pool declares the capacity the
engine may hand out, and GPU devices are only the numbers put in CUDA_VISIBLE_DEVICES (so a
GPU count may be declared on a machine without GPUs, for testing). A task runs in its own
session (so a signal reaches its children too, and the task outlives a crash of the
service) with stdout and stderr in one log file, under `task_wrapper.py`: the wrapper waits
for `release` (sent once the task's pid is committed) before it runs the command, and writes
the command's exit status to a file, where a restarted service that adopted the task reads it.
Where cgroup v2 is writable each task gets its own cgroup with cpu.max and memory.max
(cgroups.py); otherwise memory is enforced with RLIMIT_AS (set by `ulimit -v` in a /bin/sh that
then execs the command, because preexec_fn is unsafe in a threaded server) and CPU is
reserved by the engine but not enforced (RLIMIT_CPU caps CPU seconds, not a share).
"""

from __future__ import annotations

import os
import selectors
import signal
import subprocess
import sys
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from altostrat.service import cgroups

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


def limited(command: list[str], mem_mib: int, cgroup: Path | None = None) -> list[str]:
    """The command under its limits: in `cgroup` (a /bin/sh that joins it, then execs the
    command), else with RLIMIT_AS of `mem_mib` (none when 0)."""
    if cgroup is not None:
        return ["/bin/sh", "-c", 'echo $$ > "$0/cgroup.procs" && exec "$@"', str(cgroup), *command]
    if mem_mib:
        return ["/bin/sh", "-c", 'ulimit -v "$0" && exec "$@"', str(mem_mib * 1024), *command]
    return command


def spawn(command: list[str], env: dict[str, str], cwd: Path, mem_mib: int, log: Path,
          cgroup: Path | None = None) -> subprocess.Popen:
    """Start one task's wrapper, which runs the command once `release`d; OSError if the
    working folder is missing (a missing program is the command's exit code 127)."""
    argv = limited(command, mem_mib, cgroup)
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


@dataclass(frozen=True, slots=True)
class TaskSpec:
    """One task as the engine placed it: what an executor runs, with what resources."""

    command: list[str]
    env: dict[str, str]
    cwd: Path
    log: Path
    cpu: float  # vCPUs
    mem_mib: int  # 0: no limit
    gpu: float  # GPUs (a share of one, or whole ones); the devices are in env's CUDA_VISIBLE_DEVICES
    checkpoint_signal: int


class Executor(Protocol):
    """What the reconciler asks of an executor. A handle is the executor's own object for one
    task; `spawn` prepares it, the reconciler commits `identity(handle)` (write-ahead), then
    `release` lets the command run. `exit_status` is asked once, when `alive` turns false."""

    name: str

    def describe(self) -> str:
        """One line for `serve`'s start-up output: where tasks run and what is enforced."""

    def spawn(self, task: TaskSpec) -> object:
        """OSError when the task cannot start (its reason becomes the job's startError)."""

    def identity(self, handle: object) -> dict:
        """Task row columns (pid, proc_start) a restarted service adopts the task by."""

    def release(self, handle: object) -> None: ...

    def alive(self, handle: object) -> bool: ...

    def signal(self, handle: object, sig: int) -> None:
        """The checkpoint signal to the task and all it started."""

    def kill(self, handle: object) -> None:
        """Kill the task and all it left behind (also called once it ended)."""

    def exit_status(self, handle: object, exit_file: Path) -> int | None:
        """An ended task's exit code (negative: a signal), None when unknown (lost)."""

    def adopt(self, row: dict) -> object | None:
        """A handle for a task row a previous run of the service left, or None (never ran)."""

    def close(self) -> None: ...

    # optional: `watch(handle, on_exit)` calls on_exit (from any thread) once the task ends, so
    # that the reconciler reaps it at once; without it the reconciler notices at its next tick


class ExitWatcher:
    """Calls a task's callback once its process ends: a thread waits on the processes' pidfds
    (Linux 5.3 and later). A process that is already gone is reported at once; where pidfds are
    missing nothing is watched and the reconciler's polling notices the end."""

    def __init__(self) -> None:
        self._selector = selectors.DefaultSelector()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._closed = False

    def watch(self, pid: int, on_exit: Callable[[], None]) -> None:
        try:
            fd = os.pidfd_open(pid)
        except ProcessLookupError:
            on_exit()
            return
        except (AttributeError, OSError):  # no pidfds here: polling it is
            return
        with self._lock:
            self._selector.register(fd, selectors.EVENT_READ, on_exit)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name="exit-watcher", daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while not self._closed:
            for key, _ in self._selector.select(timeout=0.5):  # the timeout lets close() end the thread
                with self._lock:
                    self._selector.unregister(key.fd)
                os.close(key.fd)
                key.data()

    def close(self) -> None:
        self._closed = True
        if self._thread is not None:
            self._thread.join()
        for key in list(self._selector.get_map().values()):
            os.close(key.fd)
        self._selector.close()


class ExecutorError(RuntimeError):
    """An executor that cannot be made: its message is one line for the CLI."""


class LocalExecutor:
    """Tasks are subprocesses of this machine (the module's functions), limited by cgroup v2
    where `cgroup_root` is writable, else by RLIMIT_AS."""

    name = "local"

    def __init__(self, cgroup_root: Path | None = cgroups.ROOT) -> None:
        self.cgroups, self.how = cgroups.detect(cgroup_root)
        self.exits = ExitWatcher()

    def describe(self) -> str:
        where = "local executor: tasks are subprocesses of this machine, GPUs assigned with CUDA_VISIBLE_DEVICES"
        if self.cgroups is not None:
            return (f"{where}; enforcement: cgroups v2 (each task in its own cgroup under {self.cgroups.parent}: "
                    "cpu.max from its cpu, memory.max from its memoryGib)")
        return (f"{where}; enforcement: rlimits (memory per task with RLIMIT_AS, virtual memory; CPU reserved by "
                f"the scheduler, not enforced), because {self.how}")

    def spawn(self, task: TaskSpec) -> subprocess.Popen:
        cg = None
        if self.cgroups is not None:
            cg = self.cgroups.create(cgroups.cgroup_name(task.log), task.cpu, task.mem_mib)
        return spawn(task.command, task.env, task.cwd, task.mem_mib, task.log, cg)

    def identity(self, handle: subprocess.Popen) -> dict:
        return {"pid": handle.pid, "proc_start": proc_start(handle.pid)}

    def release(self, handle: subprocess.Popen) -> None:
        release(handle)

    def alive(self, handle: subprocess.Popen | Adopted) -> bool:
        return alive(handle)

    def signal(self, handle: subprocess.Popen | Adopted, sig: int) -> None:
        signal_group(handle.pid, sig)

    def kill(self, handle: subprocess.Popen | Adopted) -> None:
        signal_group(handle.pid, signal.SIGKILL)

    def exit_status(self, handle: subprocess.Popen | Adopted, exit_file: Path) -> int | None:
        if self.cgroups is not None:
            self.cgroups.remove(cgroups.cgroup_name(Path(exit_file)))
        return exit_status(handle, exit_file)

    def adopt(self, row: dict) -> Adopted | None:
        return Adopted(row["pid"], row["proc_start"]) if row["pid"] and row["proc_start"] else None

    def watch(self, handle: subprocess.Popen | Adopted, on_exit: Callable[[], None]) -> None:
        self.exits.watch(handle.pid, on_exit)

    def close(self) -> None:
        self.exits.close()


def _ray(**options) -> Executor:
    from altostrat.service.ray_executor import RayExecutor  # Ray is an optional extra

    return RayExecutor(**options)


# `serve --executor NAME`: each makes its executor from that executor's options
EXECUTORS: dict[str, Callable[..., Executor]] = {"local": LocalExecutor, "ray": _ray}


def make_executor(name: str, **options) -> Executor:
    try:
        factory = EXECUTORS[name]
    except KeyError:
        raise ExecutorError(f"unknown executor {name!r}; one of: {', '.join(EXECUTORS)}") from None
    return factory(**options)
