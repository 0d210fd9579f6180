"""Job dependencies (`spec.dependsOn`), with Slurm's `afterok` meaning: a job is handed to the
engine only once every job it names has SUCCEEDED; if one of them ends FAILED or CANCELLED, or
is deleted, the job ends FAILED without ever running.

A dependency must exist, in the job's tenant, when the job is created, and `dependsOn` cannot
change afterwards: every dependency is older than its dependents, so no cycle can form (and
a failure cascades down a chain in one pass over the jobs in id order). The reconciler holds a
dependent out of the engine and settles it with `verdict` at each sync, until it first starts.
"""

from __future__ import annotations

from typing import NamedTuple

from sqlalchemy import Connection, select

from altostrat.service import tables as t
from altostrat.service.objects import JobObject, ObjectError, _Object
from altostrat.service.store import CANCELLED, FAILED, SUCCEEDED

WAIT, RUN, FAIL = "wait", "run", "fail"
_CHUNK = 10_000  # names per IN (...): below SQLite's limit on bound parameters


class Dependency(NamedTuple):
    id: int
    tenant: str | None
    state: str


def found(conn: Connection, names: set[str]) -> dict[str, Dependency]:
    """The Jobs of these names (names are unique across tenants), whatever their state."""
    wanted, out = sorted(names), {}
    for k in range(0, len(wanted), _CHUNK):
        q = select(t.objects.c.name, t.objects.c.id, t.objects.c.tenant, t.objects.c.state).where(
            t.objects.c.kind == "Job", t.objects.c.name.in_(wanted[k:k + _CHUNK]))
        out.update({name: Dependency(i, tenant, state) for name, i, tenant, state in conn.execute(q)})
    return out


def check(conn: Connection, obj: _Object, tenant: str | None, row) -> None:
    """At apply (the store's, in its transaction): a new Job's dependencies must exist in its
    tenant (a missing job and another tenant's get the same words, so that no name leaks), and
    an existing Job's `dependsOn` cannot change. `row`: the job's current row, or None."""
    if not isinstance(obj, JobObject):
        return
    wanted = obj.spec.depends_on
    if row is not None:
        old = row["spec"].get("dependsOn", [])
        if old != wanted:
            raise ObjectError([("spec.dependsOn", f"cannot change once the job exists (it is {old}); apply a job of "
                                                  "a new name for other dependencies")])
        return
    jobs = found(conn, set(wanted)) if wanted else {}
    errors = [(f"spec.dependsOn[{i}]", f"no Job named {name!r} in this job's tenant; apply it first (a dependency "
                                       "must exist before its dependents)")
              for i, name in enumerate(wanted) if name not in jobs or jobs[name].tenant != tenant]
    if errors:
        raise ObjectError(errors)


def held(row: dict) -> bool:
    """Whether a PENDING job's dependencies still decide whether it may run: it has some and
    has never started (a retry or a rerun after a loss does not wait for them again)."""
    return bool(row["spec"].get("dependsOn")) and not row["status"].get("attempts")


def verdict(row: dict, jobs: dict[str, Dependency]) -> tuple[str, str, list[str]]:
    """(RUN, "", []) once every dependency SUCCEEDED; (FAIL, the job's reason, []) once one
    ended otherwise or is gone; else (WAIT, what it waits for, the unmet dependencies' names)."""
    waits = []
    for name in row["spec"]["dependsOn"]:
        dep = jobs.get(name)
        # a job of that name created after this one (or another tenant's) is not the one it named
        if dep is None or dep.id > row["id"] or dep.tenant != row["tenant"]:
            return FAIL, f"dependency {name} was deleted", []
        if dep.state in (FAILED, CANCELLED):
            return FAIL, f"dependency {name} ended {dep.state}", []
        if dep.state != SUCCEEDED:
            waits.append(name)
    if not waits:
        return RUN, "", []
    return WAIT, "waits for " + ", ".join(f"job {name} ({jobs[name].state})" for name in waits), waits
