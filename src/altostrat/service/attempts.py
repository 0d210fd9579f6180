"""How the end of a job's attempt settles the job: SUCCEEDED, a retry after a backoff, a rerun
after a loss (the service's failure, not the job's), or FAILED. The reconciler calls it when an
attempt's last task ends, and at start-up for attempts that ended while it was down."""

from __future__ import annotations

import time

from sqlalchemy import Connection

from altostrat.service.observability import Observer
from altostrat.service.store import EXITED, FAILED, LOST, PENDING, SUCCEEDED, Store

BACKOFF_S, BACKOFF_MAX_S = 1.0, 300.0


def backoff_s(n: int) -> float:
    """The wait before the n-th retry in a row (n >= 1): BACKOFF_S doubling, at most BACKOFF_MAX_S."""
    return min(BACKOFF_S * 2 ** (n - 1), BACKOFF_MAX_S)


def conclude(store: Store, obs: Observer, conn: Connection, job: dict, tasks: list[dict]) -> None:
    """SUCCEEDED when every task exited 0. A task that failed on its own (exited non-zero, or
    could not start) fails the attempt: a retry after a backoff while retries are left, else
    FAILED with its exit code. Otherwise a task was lost (or stopped because a task of its
    gang was): the job runs again at once and no retry is used up."""
    bad = next((r for r in tasks if r["state"] == EXITED and r["exit_code"] != 0), None)
    now = time.time()
    attempt = job["status"].get("attempts", 0)
    name, queue = job["name"], job["spec"]["queue"]
    if bad is None and tasks and all(r["state"] == EXITED for r in tasks):
        store.update_job(conn, job["id"], SUCCEEDED, exitCode=0, reason=None, finishedAt=now)
        obs.job("succeeded", name, queue, f"succeeded (attempt {attempt})", attempt=attempt, exit_code=0)
        return
    if bad is None:
        lost = ", ".join(str(r["task"]) for r in tasks if r["state"] == LOST) or "none"
        reason = (f"attempt {attempt} was lost (task(s) {lost} ended with no exit status on "
                  "record: killed, or never started); it runs again")
        store.update_job(conn, job["id"], PENDING, notBefore=None, reason=reason)
        obs.job("lost", name, queue, reason, attempt=attempt, reason=reason)
        return
    code = bad["exit_code"]
    failures = job["status"].get("failures", 0) + 1
    retries = job["spec"]["retries"]
    what = f"task {bad['task']} " + (f"exited with code {code}" if code is not None else "could not start")
    if failures <= retries:
        delay = backoff_s(failures)
        reason = f"attempt {attempt} failed: {what}; retry {failures} of {retries} in {delay:g} s"
        store.update_job(conn, job["id"], PENDING, exitCode=code, failures=failures, notBefore=now + delay,
                         reason=reason)
        obs.job("retried", name, queue, reason, attempt=attempt, exit_code=code, reason=reason)
    else:
        reason = f"{what} (attempt {attempt}, {retries} retr{'y' if retries == 1 else 'ies'} allowed)"
        store.update_job(conn, job["id"], FAILED, exitCode=code, failures=failures, finishedAt=now, reason=reason)
        obs.job("failed", name, queue, f"failed: {reason}", attempt=attempt, exit_code=code, reason=reason)
