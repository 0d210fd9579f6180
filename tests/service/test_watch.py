"""`GET /v1/{kind}?watch=true`: the changes after a cursor, as NDJSON, scoped to the token's tenant."""

from __future__ import annotations

import json

import pytest
from fastapi.testclient import TestClient

from altostrat.service.api import create_app
from altostrat.service.objects import parse_object
from altostrat.service.store import SUCCEEDED

ADMIN = "watch-admin-token"


def obj(kind: str, name: str, **spec) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def job(name: str, queue: str = "qa") -> dict:
    return obj("Job", name, queue=queue, command=["true"])


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def api(store):
    store.ensure_admin_token(ADMIN)
    client = TestClient(create_app(store), raise_server_exceptions=False)
    objects = [obj("Tenant", "a"), obj("Tenant", "b"), obj("Queue", "qa", tenant="a"), obj("Queue", "qb", tenant="b"),
               job("ja1"), job("jb1", "qb")]
    assert client.post("/v1/objects:batch", json={"objects": objects}, headers=bearer(ADMIN)).status_code == 200
    client.tokens = {t: client.post("/v1/tokens", json={"role": "tenant", "tenant": t},
                                    headers=bearer(ADMIN)).json()["token"] for t in "ab"}
    client.tokens["admin"] = ADMIN
    client.store = store
    return client


def watch(api, token: str, kind: str = "jobs", on_event=lambda event: None, **params) -> list[tuple[str, str | None]]:
    """(type, object name) of each event of one stream; `on_event` may change the store meanwhile."""
    seen = []
    with api.stream("GET", f"/v1/{kind}", params={"watch": "true", **params}, headers=bearer(api.tokens[token])) as r:
        assert r.status_code == 200 and r.headers["content-type"] == "application/x-ndjson"
        for line in r.iter_lines():
            event = json.loads(line)
            seen.append((event["type"], event["object"]["metadata"]["name"] if "object" in event else None))
            on_event(event)
    return seen


def change(api, *objects: dict) -> None:
    with api.store.tx() as conn:
        for o in objects:
            api.store.apply(conn, parse_object(o))


def end(api, name: str) -> None:
    with api.store.tx() as conn:
        row = next(j for j in api.store.jobs(conn) if j["name"] == name)
        api.store.update_job(conn, row["id"], SUCCEEDED, exitCode=0)


def test_a_watch_from_a_cursor_sends_only_later_changes_of_the_callers_tenant(api):
    listed = api.get("/v1/jobs", headers=bearer(api.tokens["a"])).json()
    assert [j["metadata"]["name"] for j in listed["items"]] == ["ja1"]
    assert listed["resourceVersion"] == listed["items"][0]["metadata"]["updatedAt"]  # the newest change it lists
    cursor = api.get("/v1/jobs", headers=bearer(ADMIN)).json()["resourceVersion"]  # jb1's, made after ja1
    change(api, job("ja2"), job("jb2", "qb"))
    end(api, "ja1")
    events = watch(api, "a", resourceVersion=cursor, timeoutSeconds=0.3)
    assert events == [("ADDED", "ja2"), ("MODIFIED", "ja1"), ("SYNCED", None), ("BOOKMARK", None)]
    assert watch(api, "b", resourceVersion=cursor, timeoutSeconds=0.3) == [
        ("ADDED", "jb2"), ("SYNCED", None), ("BOOKMARK", None)]
    # the admin sees both tenants'; nothing after the newest change
    newest = api.get("/v1/jobs", headers=bearer(ADMIN)).json()["resourceVersion"]
    assert watch(api, "admin", resourceVersion=newest, timeoutSeconds=0.3) == [("SYNCED", None), ("BOOKMARK", None)]


def test_a_watch_starts_with_every_object_then_streams_changes_and_deletions(api):
    steps = iter([lambda: change(api, job("jb2", "qb"), job("ja2")),  # another tenant's change, then one of a's
                  lambda: end(api, "ja2"),
                  lambda: api.delete("/v1/jobs/ja2", headers=bearer(ADMIN))])

    def next_step(event):
        if event["type"] in ("SYNCED", "ADDED", "MODIFIED") and event.get("object", {}).get("metadata", {}).get(
                "name") != "ja1":
            next(steps)()

    # three changes after the initial object: the stream ends at maxEvents = 4
    events = watch(api, "a", on_event=next_step, timeoutSeconds=30, maxEvents=4)
    assert events == [("ADDED", "ja1"), ("SYNCED", None), ("ADDED", "ja2"), ("MODIFIED", "ja2"), ("DELETED", "ja2"),
                      ("BOOKMARK", None)]


def test_a_watch_of_one_name_and_of_services(api):
    change(api, obj("Service", "web", queue="qa", command=["true"], maxReplicas=2, targetLoad=1))
    assert watch(api, "a", name="ja1", timeoutSeconds=0.3) == [("ADDED", "ja1"), ("SYNCED", None), ("BOOKMARK", None)]
    assert watch(api, "a", "services", timeoutSeconds=0.3) == [("ADDED", "web"), ("SYNCED", None), ("BOOKMARK", None)]
    assert watch(api, "b", "services", timeoutSeconds=0.3) == [("SYNCED", None), ("BOOKMARK", None)]


@pytest.mark.parametrize("params, field", [
    ({"resourceVersion": -1}, "query.resourceVersion"),
    ({"resourceVersion": "yesterday"}, "query.resourceVersion"),
    ({"timeoutSeconds": 0}, "query.timeoutSeconds"),
    ({"timeoutSeconds": 7200}, "query.timeoutSeconds"),
    ({"maxEvents": 0}, "query.maxEvents"),
])
def test_bad_watch_parameters_are_a_422_naming_them(api, params, field):
    r = api.get("/v1/jobs", params={"watch": "true", **params}, headers=bearer(ADMIN))
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == field, r.text


def test_the_server_caps_a_watchs_timeout(store):
    store.ensure_admin_token(ADMIN)
    client = TestClient(create_app(store, watch_max_s=0.2))
    with client.stream("GET", "/v1/jobs", params={"watch": "true", "timeoutSeconds": 3000}, headers=bearer(ADMIN)) as r:
        assert [json.loads(line)["type"] for line in r.iter_lines()] == ["SYNCED", "BOOKMARK"]
