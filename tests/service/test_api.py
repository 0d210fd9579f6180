"""The /v1 API in-process (FastAPI's TestClient): auth, validation, idempotency, audit."""

from __future__ import annotations

import pytest
from fastapi.testclient import TestClient

from altostrat.service.api import create_app
from altostrat.service.store import Store

TOKEN = "test-admin-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
TENANT = {"apiVersion": "altostrat/v1", "kind": "Tenant", "metadata": {"name": "a"}}
QUEUE = {"apiVersion": "altostrat/v1", "kind": "Queue", "metadata": {"name": "q"}, "spec": {"tenant": "a"}}


def job(name: str, **spec) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": "Job", "metadata": {"name": name},
            "spec": {"queue": "q", "command": ["true"], **spec}}


@pytest.fixture
def store(db_url):
    s = Store(db_url)
    s.upgrade()
    s.ensure_admin_token(TOKEN)
    yield s
    s.close()


@pytest.fixture
def client(store):
    wakes = []
    app = create_app(store, wake=lambda: wakes.append(1))
    with TestClient(app, raise_server_exceptions=False) as c:
        c.wakes = wakes
        yield c


def test_requests_without_a_valid_token_get_401_and_are_audited(client, store):
    for headers in ({}, {"Authorization": "Bearer wrong"}, {"Authorization": TOKEN}, {"Authorization": "Basic " + TOKEN}):
        r = client.post("/v1/objects", json=TENANT, headers=headers)
        assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert client.get("/v1/jobs").status_code == 401
    rows = store.audit_rows()
    assert [(r["who"], r["action"], r["target"], r["result"]) for r in rows] == [
        ("anonymous", "POST", "/v1/objects", "refused 401")] * 4  # reads are not audited


def test_apply_creates_updates_and_reports_unchanged(client, store):
    assert client.post("/v1/objects", json=TENANT, headers=AUTH).status_code == 201
    r = client.post("/v1/objects", json=QUEUE, headers=AUTH)
    assert r.status_code == 201 and r.json()["object"]["metadata"]["tenant"] == "a"
    r = client.post("/v1/objects", json=QUEUE, headers=AUTH)
    assert (r.status_code, r.json()["result"], r.json()["object"]["metadata"]["resourceVersion"]) == (200, "unchanged", 1)
    r = client.post("/v1/objects", json={**QUEUE, "spec": {"tenant": "a", "weight": 2}}, headers=AUTH)
    assert (r.json()["result"], r.json()["object"]["metadata"]["resourceVersion"]) == ("updated", 2)
    r = client.post("/v1/objects", json=job("j", resources={"gpu": 2, "memoryGib": 1}), headers=AUTH)
    assert r.status_code == 201
    status = r.json()["object"]["status"]
    assert status == {"state": "PENDING", "tasks": []}
    assert [j["metadata"]["name"] for j in client.get("/v1/jobs", headers=AUTH).json()["items"]] == ["j"]
    assert client.get("/v1/Job/j", headers=AUTH).json()["spec"]["resources"] == {"gpu": 2.0, "cpu": 1.0, "memoryGib": 1.0}
    assert len(client.wakes) == 5  # the reconciler hears of every apply (a replay would not wake it)
    assert [(r["who"], r["action"], r["target"], r["result"]) for r in store.audit_rows()] == [
        ("admin (ALTOSTRAT_ADMIN_TOKEN)", "apply", "Tenant/a", "created"),
        ("admin (ALTOSTRAT_ADMIN_TOKEN)", "apply", "Queue/q", "created"),
        ("admin (ALTOSTRAT_ADMIN_TOKEN)", "apply", "Queue/q", "unchanged"),
        ("admin (ALTOSTRAT_ADMIN_TOKEN)", "apply", "Queue/q", "updated"),
        ("admin (ALTOSTRAT_ADMIN_TOKEN)", "apply", "Job/j", "created")]


@pytest.mark.parametrize("body, field", [
    (job("j", resources={"gpu": 1.5}), "spec.resources.gpu"),
    (job("j", tasks=0), "spec.tasks"),
    (job("j", checkpointSignal="SIGKILL"), "spec.checkpointSignal"),
    (job("j", command=[]), "spec.command"),
    (job("j", bogus=1), "spec.bogus"),
    (job("j", queue="nowhere"), "spec.queue"),
    ({**job("j"), "metadata": {"name": "no/slash"}}, "metadata.name"),
    ({**job("j"), "metadata": {"name": "x" * 254}}, "metadata.name"),
    ({**job("j"), "kind": "Gadget"}, "kind"),
    ({**job("j"), "apiVersion": "v2"}, "apiVersion"),
    ({**QUEUE, "spec": {"tenant": "nobody"}}, "spec.tenant"),
    ({"apiVersion": "altostrat/v1", "kind": "Pool", "metadata": {"name": "p"}, "spec": {"cpu": 4}}, "spec.memoryGib"),
])
def test_malformed_objects_get_422_naming_the_field(client, body, field):
    client.post("/v1/objects:batch", json={"objects": [TENANT, QUEUE]}, headers=AUTH)
    r = client.post("/v1/objects", json=body, headers=AUTH)
    assert r.status_code == 422
    assert field in [d["field"] for d in r.json()["detail"]], r.json()


@pytest.mark.parametrize("content, ctype", [("not json", "application/json"), ("[1, 2]", "application/json"),
                                            ("", "application/json"), ("\xff", "text/plain")])
def test_bodies_that_are_not_objects_get_422_not_500(client, content, ctype):
    r = client.post("/v1/objects", content=content.encode("latin-1"), headers={**AUTH, "Content-Type": ctype})
    assert r.status_code == 422 and isinstance(r.json()["detail"], list)


def test_batch_is_all_or_nothing_with_indexed_fields(client):
    r = client.post("/v1/objects:batch", json={"objects": [TENANT, QUEUE, job("j1"), job("j2", tasks=-1)]}, headers=AUTH)
    assert r.status_code == 422 and [d["field"] for d in r.json()["detail"]] == ["objects[3].spec.tasks"]
    r = client.post("/v1/objects:batch", json={"objects": [TENANT, job("j1", queue="later"), QUEUE]}, headers=AUTH)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "objects[1].spec.queue"
    assert client.get("/v1/tenants", headers=AUTH).json()["items"] == []  # the first object was rolled back
    r = client.post("/v1/objects:batch", json={"objects": [TENANT, QUEUE, job("j1")]}, headers=AUTH)
    assert [x["result"] for x in r.json()["results"]] == ["created"] * 3


def test_idempotency_key_replays_the_first_response(client, store):
    client.post("/v1/objects:batch", json={"objects": [TENANT, QUEUE]}, headers=AUTH)
    headers = {**AUTH, "Idempotency-Key": "req-1"}
    first = client.post("/v1/objects", json=job("j"), headers=headers)
    again = client.post("/v1/objects", json=job("j"), headers=headers)
    assert first.status_code == again.status_code == 201
    assert again.json() == first.json() and again.headers["Idempotent-Replayed"] == "true"
    assert "Idempotent-Replayed" not in first.headers
    # without the key a repeat is an apply like any other: unchanged
    assert client.post("/v1/objects", json=job("j"), headers=AUTH).json()["result"] == "unchanged"
    r = client.post("/v1/objects", json=job("j", priority=5), headers=headers)
    assert r.status_code == 422 and r.json()["detail"][0]["field"] == "Idempotency-Key"
    applies = [r for r in store.audit_rows() if r["target"] == "Job/j"]
    assert [r["result"] for r in applies] == ["created", "unchanged"]  # the replay changed nothing


def test_cancel_delete_and_conflicts(client):
    client.post("/v1/objects:batch", json={"objects": [TENANT, QUEUE, job("j")]}, headers=AUTH)
    r = client.delete("/v1/jobs/j", headers=AUTH)
    assert r.status_code == 409 and "cancel it first" in r.json()["detail"]
    r = client.post("/v1/jobs/j:cancel", headers=AUTH)
    assert r.status_code == 202 and r.json()["object"]["status"]["cancelRequested"] is True
    assert client.delete("/v1/queues/q", headers=AUTH).status_code == 409
    assert client.delete("/v1/tenants/a", headers=AUTH).status_code == 409
    assert client.post("/v1/jobs/zz:cancel", headers=AUTH).status_code == 404
    assert client.get("/v1/gadgets", headers=AUTH).status_code == 422
    assert client.get("/v1/jobs/zz/logs", headers=AUTH).status_code == 404


def test_an_internal_error_is_a_json_500_without_traceback(client, store, monkeypatch):
    def broken(conn, kind):
        raise RuntimeError("secret internals")
    monkeypatch.setattr(store, "list", broken)
    r = client.get("/v1/jobs", headers=AUTH)
    assert r.status_code == 500
    assert r.json() == {"detail": "internal error; the server log has the details"}
    assert "secret" not in r.text and "Traceback" not in r.text


def test_openapi_is_published(client):
    paths = client.get("/openapi.json").json()["paths"]
    assert {"/v1/objects", "/v1/objects:batch", "/v1/{kind}", "/v1/{kind}/{name}", "/v1/jobs/{name}:cancel",
            "/v1/jobs/{name}/logs"} <= set(paths)


@pytest.mark.parametrize("path", ["/v1/objects", "/v1/objects:batch"])
def test_a_request_without_a_body_is_a_422(client, path):
    response = client.post(path, headers=AUTH)  # found by the schemathesis fuzz test: it was a 500
    assert response.status_code == 422


def test_ids_beyond_what_the_database_stores_are_a_422(client):
    huge = 2**70  # found by the schemathesis fuzz test: SQLite raised OverflowError, a 500
    assert client.delete(f"/v1/tokens/{huge}", headers=AUTH).status_code == 422
    assert client.get("/v1/jobs/x/logs", params={"attempt": huge}, headers=AUTH).status_code == 422
