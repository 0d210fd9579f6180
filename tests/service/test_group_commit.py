"""Group commit: requests that arrive together share one transaction, each in its own savepoint."""

from __future__ import annotations

import threading
import time

from sqlalchemy import event, func, insert, select

from altostrat.service import tables as t
from altostrat.service.store import GroupCommit


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
