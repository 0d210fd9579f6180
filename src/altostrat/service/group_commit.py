"""Group commit: the requests that arrive together share one transaction, so one fsync."""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from concurrent.futures import Future

from sqlalchemy import Connection
from sqlalchemy.engine import Engine as SqlEngine

from altostrat.service import tables as t
from altostrat.service.database import insert_rows

log = logging.getLogger("altostrat.store")
WRITTEN = "altostrat_written"  # Connection.info key of a group commit's _Written


class GroupCommit:
    """Requests that arrive together share one transaction, so one fsync. One committer thread
    runs them: it takes every request waiting, runs them in one transaction, commits, answers
    each, and takes the next batch, which filled up during that commit. Every request is still
    committed before it is answered. The thread lives while there is work and exits after
    IDLE_S without any, so an idle store holds no thread.

    Threads call `run` (it blocks until the request is committed); the API's event loop awaits
    `submit`'s future, so a submission costs no worker thread of its own.

    One request's error undoes only its own writes. Savepoints would give that at two
    statements a request, and most requests succeed: so a batch runs without them first, and
    only when a request fails is its transaction rolled back and the others run again, each in
    a savepoint. A request's `fn` may therefore run twice (the first run undone): it must act
    only through its connection."""

    IDLE_S = 1.0

    def __init__(self, engine: SqlEngine, created: Callable[[list[dict]], None] = lambda rows: None) -> None:
        """`created` is told the new Job rows of each committed group (Store.created)."""
        self.engine, self.created = engine, created
        self.cond = threading.Condition()
        self.waiting: list[list] = []  # [fn, future, value, error]
        self.committer: threading.Thread | None = None

    def run(self, fn: Callable[[Connection], object]):
        return self.submit(fn).result()

    def submit(self, fn: Callable[[Connection], object]) -> Future:
        """`fn(conn)`'s result (or its error) once its transaction is committed (or rolled back)."""
        future: Future = Future()
        with self.cond:
            self.waiting.append([fn, future, None, None])
            if self.committer is None:
                self.committer = threading.Thread(target=self._commit_loop, name="group-commit", daemon=True)
                self.committer.start()
            self.cond.notify()
        return future

    def _commit_loop(self) -> None:
        while True:
            with self.cond:
                if not self.waiting:
                    self.cond.wait(self.IDLE_S)
                if not self.waiting:  # idle: a later submit starts another committer
                    self.committer = None
                    return
                batch, self.waiting = self.waiting, []
            self._commit(batch)
            for _, future, value, error in batch:
                if error is None:
                    future.set_result(value)
                else:
                    future.set_exception(error)

    def _commit(self, batch: list[list]) -> None:
        failed = self._transaction(batch, savepoints=False)
        if failed is not None:
            self._transaction([item for item in batch if item is not failed], savepoints=True)

    def _transaction(self, batch: list[list], savepoints: bool) -> list | None:
        """Run `batch` in one transaction and commit it. Without savepoints, the first request
        that fails rolls the whole transaction back and is returned (its error recorded)."""
        if not batch:
            return None
        written = _Written()
        try:
            with self.engine.begin() as conn:
                conn.info[WRITTEN] = written
                try:
                    for item in batch:
                        savepoint = conn.begin_nested() if savepoints else None
                        mark = written.mark()
                        try:
                            item[2] = item[0](conn)
                        except Exception as exc:  # noqa: BLE001  (handed to its own request)
                            item[2], item[3] = None, exc
                            if savepoint is None:
                                raise _Undo(item) from exc
                            savepoint.rollback()
                            written.undo(mark)
                        else:
                            if savepoint is not None:
                                savepoint.commit()
                finally:
                    del conn.info[WRITTEN]
                if written.audit:
                    insert_rows(conn, t.audit, written.audit)
        except _Undo as undo:
            return undo.item
        except Exception as exc:  # noqa: BLE001  (the commit failed: nothing of the batch is stored)
            for item in batch:
                item[2], item[3] = None, item[3] or exc
            return None
        if written.jobs:
            try:
                self.created(written.jobs)
            except Exception:  # noqa: BLE001  (committed: the requests succeeded; the committer goes on)
                log.exception("after a group commit")
        return None


class _Written:
    """What a group commit's requests wrote that is handled once for the whole group: their audit
    rows (Store.audit_many), written by one INSERT before the commit, and the rows of the Jobs they
    created (Store.apply, apply_many), handed to GroupCommit.created after it."""

    __slots__ = ("audit", "jobs", "referred")

    def __init__(self) -> None:
        self.audit: list[dict] = []
        self.jobs: list[dict] = []
        # (kind, name) -> row (or None) of the Queues new Jobs named, read once per group; emptied
        # by any change to a Queue or Tenant (_forget_referred)
        self.referred: dict[tuple[str, str], object] = {}

    def mark(self) -> tuple[int, int]:
        return len(self.audit), len(self.jobs)

    def undo(self, mark: tuple[int, int]) -> None:
        """Forget what was added since `mark`: its request's savepoint was rolled back."""
        del self.audit[mark[0]:]
        del self.jobs[mark[1]:]
        self.referred.clear()


class _Undo(Exception):
    """Rolls back a group commit's transaction in which `item`'s request failed."""

    def __init__(self, item: list) -> None:
        self.item = item
