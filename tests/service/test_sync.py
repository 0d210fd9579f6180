"""The reconciler's incremental reads: only jobs changed since the cursor, full reads otherwise."""

from __future__ import annotations

from altostrat.service.objects import parse_object


def apply(store, doc):
    with store.tx() as conn:
        store.apply(conn, parse_object(doc))


def test_job_versions_after_a_change_are_exactly_what_changed(store):
    apply(store, {"apiVersion": "altostrat/v1", "kind": "Tenant", "metadata": {"name": "a"}})
    apply(store, {"apiVersion": "altostrat/v1", "kind": "Queue", "metadata": {"name": "q"}, "spec": {"tenant": "a"}})
    for name in ("old-1", "old-2"):
        apply(store, {"apiVersion": "altostrat/v1", "kind": "Job", "metadata": {"name": name},
                      "spec": {"queue": "q", "command": ["true"]}})
    with store.read() as conn:
        _, cursor = store.job_versions(conn, None)
    apply(store, {"apiVersion": "altostrat/v1", "kind": "Job", "metadata": {"name": "new"},
                  "spec": {"queue": "q", "command": ["true"]}})
    with store.tx() as conn:
        old = [j for j in store.jobs(conn) if j["name"] == "old-1"][0]
        store.update_job(conn, old["id"], cancelRequested=True)  # a change of status moves it past the cursor too
    with store.tx() as conn:
        names = {j["id"]: j["name"] for j in store.jobs(conn)}
        changed, last = store.job_versions(conn, cursor)
        assert sorted(names[i] for i in changed) == ["new", "old-1"] and last == cursor + 2
        assert sorted(names[i] for i in store.job_versions(conn, None)[0]) == ["new", "old-1", "old-2"]
