"""Watching a kind: `GET /v1/{kind}?watch=true`, a stream of changes as NDJSON (one event a line).

The cursor (`resourceVersion`) is the store's `updated_at` of the latest change seen (Unix
seconds): every write of an object sets it, and SQLite serialises writes (BEGIN IMMEDIATE), so
objects changed after a cursor are exactly those whose updated_at is greater. A watch

- without `resourceVersion` starts with every object as ADDED, then SYNCED;
- with `resourceVersion=N` starts with the objects changed after N (ADDED if created after N,
  else MODIFIED), then SYNCED;

then polls the store every POLL_S (a cheap count and newest change first) and sends each
change: ADDED, MODIFIED (the object as it is now: changes within one poll are one event), or
DELETED (`{kind, metadata: {name}}`). A BOOKMARK with the cursor is sent every HEARTBEAT_S of
quiet and ends the stream, after `timeoutSeconds` or once `maxEvents` object events are sent
(a poll's events are sent whole). A deletion is seen only while a stream is open: a client that
resumes with N after a break learns of deletions in between by a watch without
`resourceVersion` (every object again), as `altostrat get -w` does.

The stream shows only what the token may list (auth.Principal.scope), like a list call.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable

import anyio
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import func, select

from altostrat.service import tables as t
from altostrat.service.store import NotFound, Store

POLL_S = 0.25
HEARTBEAT_S = 10.0
DEFAULT_TIMEOUT_S = 300.0
MAX_TIMEOUT_S = 3600.0
DEFAULT_MAX_EVENTS = 10_000


def cursor(items: list[dict]) -> float:
    """The cursor of a list: its newest change (0 for none)."""
    return max((o["metadata"]["updatedAt"] for o in items), default=0.0)


class _Reader:
    """What one watch reads from the store, on a worker thread each time."""

    def __init__(self, store: Store, kind: str, scope: str | None, name: str | None) -> None:
        self.store, self.kind, self.scope, self.name = store, kind, scope, name
        where = [t.objects.c.kind == kind]
        if scope is not None:
            where.append(t.objects.c.tenant == scope)
        if name is not None:
            where.append(t.objects.c.name == name)
        self.where = where

    def signature(self) -> tuple:
        """(how many, newest change): any insert, update or delete changes it."""
        with self.store.tx() as conn:
            return tuple(conn.execute(select(func.count(), func.max(t.objects.c.updated_at)).where(*self.where)).one())

    def versions(self) -> dict[str, tuple[int, float, float]]:
        """name -> (resource version, updated_at, created_at) of every watched object."""
        with self.store.tx() as conn:
            rows = conn.execute(select(t.objects.c.name, t.objects.c.resource_version, t.objects.c.updated_at,
                                       t.objects.c.created_at).where(*self.where)).all()
        return {r.name: (r.resource_version, r.updated_at, r.created_at) for r in rows}

    def views(self, names: list[str]) -> dict[str, dict]:
        """The views of `names` (as GET shows them); a name deleted meanwhile is left out."""
        with self.store.tx() as conn:
            if len(names) > 50:  # many changes at once (the initial list): one list call
                wanted = set(names)
                return {v["metadata"]["name"]: v for v in self.store.list(conn, self.kind, self.scope)
                        if v["metadata"]["name"] in wanted}
            found = {}
            for n in names:
                try:
                    found[n] = self.store.get(conn, self.kind, n, self.scope)
                except NotFound:
                    pass
            return found


async def events(store: Store, kind: str, scope: str | None, name: str | None, since: float | None,
                 timeout_s: float, max_events: int, disconnected: Callable) -> AsyncIterator[str]:
    """The NDJSON lines of one watch (see the module's docstring). `disconnected` is the
    request's `is_disconnected`: the stream ends soon after the client has gone."""
    reader = _Reader(store, kind, scope, name)
    deadline = time.monotonic() + timeout_s
    known: dict[str, int] = {}  # name -> the resource version the client was sent (or has, with `since`)
    pos, sig, sent, first = since or 0.0, None, 0, True
    quiet_since = time.monotonic()
    while True:
        batch: list[str] = []
        now_sig = await run_in_threadpool(reader.signature)
        if now_sig != sig:
            sig = now_sig
            current = await run_in_threadpool(reader.versions)
            changes = {}
            for n, (rv, updated, created) in current.items():
                if n in known:
                    if known[n] != rv:
                        changes[n] = "MODIFIED"
                elif first and since is not None:  # resumed: what changed after the cursor
                    if updated > since:
                        changes[n] = "ADDED" if created > since else "MODIFIED"
                    else:
                        known[n] = rv
                else:
                    changes[n] = "ADDED"
            views = await run_in_threadpool(reader.views, list(changes)) if changes else {}
            for n in sorted(views, key=lambda n: current[n][1]):
                batch.append(_line(changes[n], views[n], current[n][1]))
                known[n] = current[n][0]
            for n in sorted(set(known) - set(current)):
                batch.append(_line("DELETED", {"kind": kind, "metadata": {"name": n}}, pos))
                del known[n]
            pos = max([pos, *(v[1] for v in current.values())])
            sent += len(batch)
        if first:
            batch.append(json.dumps({"type": "SYNCED", "resourceVersion": pos}) + "\n")
            first = False
        if batch:
            quiet_since = time.monotonic()
            yield "".join(batch)
        if sent >= max_events or time.monotonic() >= deadline or await disconnected():
            break
        if time.monotonic() - quiet_since >= HEARTBEAT_S:
            quiet_since = time.monotonic()
            yield _bookmark(pos)
        await anyio.sleep(min(POLL_S, max(0.0, deadline - time.monotonic())))
    yield _bookmark(pos)


def _line(kind: str, obj: dict, pos: float) -> str:
    return json.dumps({"type": kind, "object": obj, "resourceVersion": pos}) + "\n"


def _bookmark(pos: float) -> str:
    return json.dumps({"type": "BOOKMARK", "resourceVersion": pos}) + "\n"
