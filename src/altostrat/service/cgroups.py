"""cgroup v2 limits for the local executor: one cgroup per task with cpu.max and memory.max.

`detect(root)` decides once, at start-up, whether ROOT (normally /sys/fs/cgroup) is a
writable cgroup v2 hierarchy with the cpu and memory controllers: its `cgroup.controllers`
lists both, and a cgroup `altostrat` can be made under it with both controllers enabled for
its children, one of which can be made and removed. Then each task gets
`ROOT/altostrat/JOBDIR.attempt-N.task-I`, and the task's shell writes its own pid to that
cgroup's `cgroup.procs` before it execs the command, so the command and all it starts are
limited (its wrapper is not, and stays tiny). Otherwise the executor falls back to rlimits
and `detect` says why. The root is a parameter so that the decision and the files written
can be tested against a fake hierarchy in a folder.
"""

from __future__ import annotations

import os
from pathlib import Path

ROOT = Path("/sys/fs/cgroup")
PARENT = "altostrat"
PERIOD_US = 100_000  # cpu.max's period: the kernel's default
MIN_QUOTA_US = 1_000  # the smallest quota the kernel accepts


def cpu_max(cpu: float) -> str:
    """cpu.max for `cpu` vCPUs: a quota per period (so 1.5 vCPUs is 150 ms of CPU time every
    100 ms); 0 vCPUs (none declared) is no limit."""
    if cpu <= 0:
        return f"max {PERIOD_US}"
    return f"{max(MIN_QUOTA_US, round(cpu * PERIOD_US))} {PERIOD_US}"


def memory_max(mem_mib: int) -> str:
    """memory.max in bytes; 0 MiB (none declared) is no limit."""
    return str(mem_mib * 1024 * 1024) if mem_mib > 0 else "max"


def cgroup_name(log: Path) -> str:
    """A task's cgroup name from its log (or exit) file: `NAME-ID.attempt-N.task-I`, so that a
    restarted service finds the cgroup of a task it adopted."""
    return f"{log.parent.name}.{log.stem}"


class Cgroups:
    """The `altostrat` cgroup under a writable cgroup v2 root: makes and removes task cgroups."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.parent = root / PARENT

    def create(self, name: str, cpu: float, mem_mib: int) -> Path:
        """A task's cgroup with its limits written; OSError if it cannot be made."""
        path = self.parent / name
        path.mkdir(exist_ok=True)
        (path / "cpu.max").write_text(cpu_max(cpu))
        (path / "memory.max").write_text(memory_max(mem_mib))
        return path

    def remove(self, name: str) -> None:
        """Remove an ended task's cgroup; one whose processes have not all exited yet stays
        until the next start-up's sweep."""
        try:
            (self.parent / name).rmdir()
        except OSError:
            pass

    def sweep(self) -> None:
        """Remove the cgroups of tasks that are gone (a cgroup that still holds a process, an
        adopted task's, cannot be removed and stays)."""
        for child in self.parent.iterdir():
            if child.is_dir():
                self.remove(child.name)


def detect(root: Path | None = ROOT) -> tuple[Cgroups | None, str]:
    """(Cgroups, how) when `root` is a writable cgroup v2 hierarchy with the cpu and memory
    controllers, else (None, why not). `root` None: cgroups are not to be used."""
    if root is None:
        return None, "cgroups turned off"
    try:
        controllers = (root / "cgroup.controllers").read_text().split()
    except OSError:
        return None, f"{root} is not a cgroup v2 hierarchy (no cgroup.controllers)"
    missing = [c for c in ("cpu", "memory") if c not in controllers]
    if missing:
        return None, f"cgroup v2 at {root} lacks the {' and '.join(missing)} controller"
    cg = Cgroups(root)
    probe = cg.parent / f"probe-{os.getpid()}"
    try:
        (root / "cgroup.subtree_control").write_text("+cpu +memory")
        cg.parent.mkdir(exist_ok=True)
        (cg.parent / "cgroup.subtree_control").write_text("+cpu +memory")
        probe.mkdir(exist_ok=True)
        probe.rmdir()
    except OSError as exc:
        return None, f"cgroup v2 at {root} is not writable ({exc.strerror or exc})"
    cg.sweep()
    return cg, f"cgroup v2 at {cg.parent}"
