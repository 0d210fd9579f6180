"""The reconciler's incremental reads: only jobs changed since the cursor, full reads otherwise."""

from __future__ import annotations

import time

from altostrat.service.objects import parse_object


def apply(store, doc):
    with store.tx() as conn:
        store.apply(conn, parse_object(doc))


def test_jobs_since_returns_only_what_changed(store):
    apply(store, {"apiVersion": "altostrat/v1", "kind": "Tenant", "metadata": {"name": "a"}})
    apply(store, {"apiVersion": "altostrat/v1", "kind": "Queue", "metadata": {"name": "q"}, "spec": {"tenant": "a"}})
    for name in ("old-1", "old-2"):
        apply(store, {"apiVersion": "altostrat/v1", "kind": "Job", "metadata": {"name": name},
                      "spec": {"queue": "q", "command": ["true"]}})
    cursor = time.time()
    time.sleep(0.01)
    apply(store, {"apiVersion": "altostrat/v1", "kind": "Job", "metadata": {"name": "new"},
                  "spec": {"queue": "q", "command": ["true"]}})
    with store.tx() as conn:
        old = [j for j in store.jobs(conn) if j["name"] == "old-1"][0]
        store.update_job(conn, old["id"], cancelRequested=True)  # a change of status moves it past the cursor too
    with store.tx() as conn:
        assert sorted(j["name"] for j in store.jobs(conn, since=cursor)) == ["new", "old-1"]
        assert sorted(j["name"] for j in store.jobs(conn)) == ["new", "old-1", "old-2"]
