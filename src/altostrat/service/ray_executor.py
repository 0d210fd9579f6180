"""The `ray` executor: each task is a Ray task on a Ray cluster (`pip install 'altostrat[ray]'`).

`serve --executor ray` connects to the cluster at the configured address (`--config`'s
`ray.address`, else RAY_ADDRESS) or starts a Ray of its own on this machine. Each task of an
attempt becomes one Ray task whose resource request is the task's share of the engine's
placement: `num_cpus` = its cpu, `memory` = its memoryGib, and its GPUs as `num_gpus` where the
cluster has GPUs, else as the custom resource `altostrat_gpu` (GPUs declared on machines
without them, as a Pool may declare them for the local executor). The Ray task runs the job's
command as a subprocess under the local executor's wrapper, with the job's environment,
working folder and log file (paths on the Ray node: the data dir must be shared with the
nodes, or the cluster be this machine), and returns its exit code, also written to the exit
file beside the log.

Stopping (preemption, cancel, shutdown): `ray.cancel` interrupts the Ray task, which sends the
job's checkpoint signal to the command's process group and waits for it; after the grace
period the reconciler's kill is a forced `ray.cancel`, which kills the worker, and the wrapper
(`--tied`) then kills the command. Ray's own retries are off: a failed attempt is retried by
the reconciler, with its backoff, as for the local executor.

After a crash of the service its Ray tasks die with it (a driver's tasks end with the
driver; the tied wrapper makes sure of the command): a restarted service does not adopt them.
A task whose exit file holds a status ended before the crash and is concluded from it; every
other one is LOST, and its job runs again without using up a retry.
"""

from __future__ import annotations

import logging
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

from altostrat.service import executor as ex
from altostrat.service.executor import ExecutorError, TaskSpec

MISSING = "the ray executor needs Ray, an optional extra: pip install 'altostrat[ray]'"
DECLARED_GPU = "altostrat_gpu"  # the custom resource of GPUs declared on nodes without them
# A Ray this service starts itself declares this many GPUs: on a machine without GPUs, as for
# the local executor, the Pools (the engine) and not Ray bound how many are handed out.
LOCAL_DECLARED_GPUS = 1024
LOCAL_OBJECT_STORE = 100 * 2**20  # tasks pass only exit codes: a small object store suffices
POLL_S = 0.05
NOT_EXECUTABLE = 126  # as the wrapper's code for a command that cannot start


def run_task(argv: list[str], env: dict[str, str], cwd: str, log: str, exit_file: str, checkpoint_signal: int) -> int | None:
    """The body of one Ray task, on a Ray worker: the command under the tied wrapper, its exit
    code returned (None when the wrapper was killed before recording one)."""
    import ray

    gpu_ids = ray.get_gpu_ids()
    if gpu_ids:  # real GPUs: Ray's assignment on this node, not the engine's device numbers
        env = {**env, "CUDA_VISIBLE_DEVICES": ",".join(map(str, gpu_ids))}
    Path(log).parent.mkdir(parents=True, exist_ok=True)
    ctx = ray.get_runtime_context()
    resources = ", ".join(f"{k}={v:.12g}" for k, v in sorted(ctx.get_assigned_resources().items()))
    with open(log, "ab") as out:
        out.write(f"altostrat: ray task on node {ctx.get_node_id()} with {resources}\n".encode())
        out.flush()
        try:
            proc = subprocess.Popen([*ex.WRAPPER, "--tied", exit_file, *argv], env=env,
                                    cwd=cwd, stdin=subprocess.PIPE, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        except OSError as exc:  # its working folder is missing on this node
            out.write(f"altostrat: cannot start the task in {cwd!r}: {exc.strerror}\n".encode())
            return NOT_EXECUTABLE
    proc.stdin.write(b"\n")  # the go-ahead; the pipe stays open: its end tells the wrapper we are gone
    proc.stdin.flush()
    try:
        while proc.poll() is None:
            time.sleep(POLL_S)
    except KeyboardInterrupt:  # ray.cancel: stop the command as the local executor would
        ex.signal_group(proc.pid, checkpoint_signal)
        proc.wait()
    proc.stdin.close()
    try:
        return int(Path(exit_file).read_text())
    except (OSError, ValueError):
        return None


@dataclass
class RayTask:
    """One task's Ray call: its options until released, then its ObjectRef (None: a task of a
    previous run of the service, known only by its exit file)."""

    task: TaskSpec | None
    options: dict
    ref: object = None


class RayExecutor:
    name = "ray"

    def __init__(self, address: str | None = None) -> None:
        try:
            import ray
        except ImportError:
            raise ExecutorError(MISSING) from None
        self.ray = ray
        address = address or os.environ.get("RAY_ADDRESS")
        # workers' output goes to the task logs; Ray's own chatter stays out of serve's output
        common = dict(include_dashboard=False, log_to_driver=False, logging_level=logging.WARNING)
        try:
            if address:
                ray.init(address=address, **common)
            else:
                ray.init(address="local", object_store_memory=LOCAL_OBJECT_STORE,
                         resources={DECLARED_GPU: LOCAL_DECLARED_GPUS}, **common)
        except Exception as exc:  # Ray raises ConnectionError, RuntimeError, ValueError…: one line for the CLI
            raise ExecutorError(f"cannot connect to Ray at {address or 'a new local cluster'}: "
                                f"{str(exc).splitlines()[0] if str(exc) else type(exc).__name__}") from None
        self.address = address
        self.remote = ray.remote(run_task)
        total = ray.cluster_resources()
        self.gpu_key = "GPU" if total.get("GPU", 0) > 0 else DECLARED_GPU if total.get(DECLARED_GPU, 0) > 0 else None
        self.total = total

    def describe(self) -> str:
        shown = ", ".join(f"{k} {self.total.get(k, 0):g}" for k in ("CPU", "GPU", DECLARED_GPU) if self.total.get(k))
        gpus = {"GPU": "num_gpus", DECLARED_GPU: f"the {DECLARED_GPU} resource", None: "none (the cluster has none)"}
        return (f"ray executor: tasks run on the Ray cluster at {self.address or 'a local Ray started by serve'} "
                f"({shown}), each requesting num_cpus, memory and GPUs as {gpus[self.gpu_key]} as the engine placed "
                "it; enforcement: memory per task with RLIMIT_AS on its node; CPU and GPUs are Ray's reservations")

    def options(self, task: TaskSpec) -> dict:
        """The Ray task's resource request: the task's share of the engine's placement."""
        opts: dict = {"num_cpus": task.cpu, "max_retries": 0, "retry_exceptions": False}
        if task.mem_mib:
            opts["memory"] = task.mem_mib * 2**20
        if task.gpu:
            if self.gpu_key == "GPU":
                opts["num_gpus"] = task.gpu
            elif self.gpu_key is not None:
                opts["resources"] = {self.gpu_key: task.gpu}
            else:
                raise OSError(f"the Ray cluster has no GPUs: start its nodes with num_gpus, or declare them with "
                              f"--resources='{{\"{DECLARED_GPU}\": N}}'")
        return opts

    def spawn(self, task: TaskSpec) -> RayTask:
        task.log.parent.mkdir(parents=True, exist_ok=True)
        return RayTask(task, self.options(task))

    def identity(self, handle: RayTask) -> dict:
        return {}  # not adopted after a restart: no process of this machine to record

    def release(self, handle: RayTask) -> None:
        t = handle.task
        argv = ex.limited(t.command, t.mem_mib)
        handle.ref = self.remote.options(**handle.options).remote(
            argv, t.env, str(t.cwd), str(t.log), str(ex.exit_path(t.log)), t.checkpoint_signal)

    def alive(self, handle: RayTask) -> bool:
        if handle.ref is None:
            return False
        ready, _ = self.ray.wait([handle.ref], timeout=0)
        return not ready

    def signal(self, handle: RayTask, sig: int) -> None:
        """Interrupt the Ray task, which sends the job's checkpoint signal (the only one the
        reconciler sends) to the command."""
        if handle.ref is not None:
            self.ray.cancel(handle.ref)

    def kill(self, handle: RayTask) -> None:
        if self.alive(handle):
            self.ray.cancel(handle.ref, force=True)

    def exit_status(self, handle: RayTask, exit_file: Path) -> int | None:
        """The Ray task's return value; where it has none (cancelled before it ran, killed, a
        previous run's), the exit file; None when neither is known. An error raised by the
        task itself (e.g. altostrat missing on the node) is the command's failure to start:
        code 126, with the error in the log."""
        if handle.ref is not None:
            from ray.exceptions import RayError, RayTaskError

            try:
                code = self.ray.get(handle.ref, timeout=0)
            except RayTaskError as exc:
                with open(handle.task.log, "a") as out:
                    out.write(f"altostrat: the ray task failed: {exc}\n")
                return NOT_EXECUTABLE
            except RayError:
                code = None  # cancelled, or its worker or node died
            if code is not None:
                return code
        try:
            return int(Path(exit_file).read_text())
        except (OSError, ValueError):
            return None

    def adopt(self, row: dict) -> RayTask:
        return RayTask(None, {})

    def close(self) -> None:
        self.ray.shutdown()
