"""Group commit: requests that arrive together share one transaction; one that fails undoes only
its own writes (the others run again, each in a savepoint); none is run in a savepoint while all
succeed."""

from __future__ import annotations

import threading
import time

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import event, func, insert, select

from altostrat.service import tables as t
from altostrat.service.objects import parse_object
from altostrat.service.group_commit import GroupCommit


def audit_row(conn, n: int) -> int:
    conn.execute(insert(t.audit).values(at=time.time(), who="test", action="write", target=str(n), result="ok"))
    return n


def test_requests_waiting_behind_a_commit_share_the_next_one(store):
    commits = []
    event.listen(store.engine, "commit", lambda conn: commits.append(1))
    group = GroupCommit(store.engine)
    results, errors = {}, {}
    first_running = threading.Event()

    def slow_first(conn):
        first_running.set()
        time.sleep(0.3)  # the others arrive meanwhile and queue up
        return audit_row(conn, 0)

    def request(n):
        def fn(conn):
            if n == 7:
                audit_row(conn, 7)  # written, then undone with its savepoint
                raise ValueError("bad request 7")
            return audit_row(conn, n)
        try:
            results[n] = group.run(fn)
        except ValueError as exc:
            errors[n] = str(exc)

    leader = threading.Thread(target=lambda: results.__setitem__(0, group.run(slow_first)))
    leader.start()
    first_running.wait()
    others = [threading.Thread(target=request, args=(n,)) for n in range(1, 12)]
    for th in others:
        th.start()
    for th in [leader, *others]:
        th.join()
    assert results == {n: n for n in range(12) if n != 7} and errors == {7: "bad request 7"}
    assert len(commits) == 2  # the slow first request alone, then the eleven that queued behind it
    with store.engine.connect() as conn:
        targets = sorted(int(r) for r in conn.execute(select(t.audit.c.target)).scalars())
        assert targets == [n for n in range(12) if n != 7]
        assert conn.execute(select(func.count()).select_from(t.audit)).scalar_one() == 11


def queued_behind_a_commit(group: GroupCommit, requests: dict) -> tuple[dict, dict]:
    """Run `requests` ({n: fn}) through `group` while a first request holds the commit, so that
    they queue up and share the next one: ({n: result}, {n: error message})."""
    results, errors = {}, {}
    first_running, release = threading.Event(), threading.Event()

    def first(conn):
        first_running.set()
        release.wait(10)
        return audit_row(conn, -1)

    def request(n, fn):
        try:
            results[n] = group.run(fn)
        except ValueError as exc:
            errors[n] = str(exc)
    leader = threading.Thread(target=request, args=(-1, first))
    leader.start()
    first_running.wait()
    others = [threading.Thread(target=request, args=item) for item in requests.items()]
    for th in others:
        th.start()
    while len(group.waiting) < len(requests):  # every request queued behind the first
        time.sleep(0.01)
    release.set()
    for th in [leader, *others]:
        th.join()
    return results, errors


def statements(store, word: str) -> list:
    seen = []
    event.listen(store.engine, "before_cursor_execute",
                 lambda conn, cursor, sql, *args: seen.append(sql) if sql.startswith(word) else None)
    return seen


def test_no_savepoint_until_a_request_fails(store):
    group = GroupCommit(store.engine)
    savepoints, commits = statements(store, "SAVEPOINT"), []
    event.listen(store.engine, "commit", lambda conn: commits.append(1))
    results, errors = queued_behind_a_commit(group, {n: (lambda conn, n=n: audit_row(conn, n)) for n in range(3)})
    assert results == {-1: -1, 0: 0, 1: 1, 2: 2} and errors == {}
    assert savepoints == [] and len(commits) == 2

    def failing(conn):
        audit_row(conn, 99)
        raise ValueError("bad")
    requests = {3: lambda conn: audit_row(conn, 3), 4: failing, 5: lambda conn: audit_row(conn, 5)}
    results, errors = queued_behind_a_commit(group, requests)
    assert results == {-1: -1, 3: 3, 5: 5} and errors == {4: "bad"}
    # rolled back at the failure, then the two others again, each in a savepoint; one commit
    assert len(savepoints) == 2 and len(commits) == 4
    with store.engine.connect() as conn:
        assert sorted(int(r) for r in conn.execute(select(t.audit.c.target)).scalars()) == [-1, -1, 0, 1, 2, 3, 5]


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.tuples(st.integers(0, 2), st.booleans()), min_size=1, max_size=6))
def test_a_group_stores_exactly_the_requests_that_succeed(store, plan):
    """Each request writes `rows` rows, then fails or not: every request hears its own outcome,
    and the store holds the rows of the ones that succeeded, each once, whichever ran twice."""
    with store.tx() as conn:
        conn.execute(t.audit.delete())
    runs = {n: 0 for n in range(len(plan))}

    def request(n, rows, fails):
        def fn(conn):
            runs[n] += 1
            for k in range(rows):
                audit_row(conn, 10 * n + k)
            if fails:
                raise ValueError(f"request {n} fails")
            return n
        return fn
    results, errors = queued_behind_a_commit(
        GroupCommit(store.engine), {n: request(n, rows, fails) for n, (rows, fails) in enumerate(plan)})
    assert results == {-1: -1, **{n: n for n, (_, fails) in enumerate(plan) if not fails}}
    assert errors == {n: f"request {n} fails" for n, (_, fails) in enumerate(plan) if fails}
    assert all(1 <= r <= 2 for r in runs.values())
    with store.engine.connect() as conn:
        assert sorted(int(r) for r in conn.execute(select(t.audit.c.target)).scalars()) == sorted(
            [-1] + [10 * n + k for n, (rows, fails) in enumerate(plan) if not fails for k in range(rows)])


def test_a_failing_created_hook_neither_fails_the_requests_nor_stops_the_committer(store):
    with store.tx() as conn:
        store.apply(conn, parse_object({"apiVersion": "altostrat/v1", "kind": "Tenant", "metadata": {"name": "a"}}))
        store.apply(conn, parse_object({"apiVersion": "altostrat/v1", "kind": "Queue", "metadata": {"name": "q"},
                                        "spec": {"tenant": "a"}}))

    def broken(rows):
        raise RuntimeError("a listener's bug")
    store.created = broken

    def new_job(name):
        return lambda conn: store.apply(conn, parse_object({"apiVersion": "altostrat/v1", "kind": "Job",
                                                            "metadata": {"name": name},
                                                            "spec": {"queue": "q", "command": ["true"]}}))[0]
    assert store.group.run(new_job("j1")) == "created"  # committed, and told so
    assert store.group.run(new_job("j2")) == "created"  # the committer still runs
    with store.read() as conn:
        assert sorted(r["name"] for r in store.jobs(conn)) == ["j1", "j2"]
