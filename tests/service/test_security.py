"""Security of the control plane: tokens, roles, tenant isolation and the audit of every change."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
import time

import pytest
from fastapi.testclient import TestClient
from helpers import start_serve
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from altostrat.cli import app as cli_app
from altostrat.service.api import create_app
from altostrat.service.client import ClientError, connect, context_path, load_context, save_context
from altostrat.service.database import database_url, upgrade
from altostrat.service.store import SUCCEEDED, Store

# live servers and their job processes run one test at a time (`make test` uses --dist loadgroup),
# so that timings are not fought over by another live test
pytestmark = pytest.mark.xdist_group("live-serve")

ADMIN = "security-admin-token"


def obj(kind: str, name: str, **spec) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


def job(name: str, queue: str, **spec) -> dict:
    return obj("Job", name, queue=queue, command=["true"], **spec)


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


class World:
    """Tenants a, b and c (empty); queues qa, qa-spare (a) and qb (b); pool p; pending jobs ja, jb;
    ended jobs ja-old, jb-old with one logged task each; a token per role."""

    def __init__(self, tmp_path, db_url: str) -> None:
        self.dir = tmp_path
        self.store = Store(db_url)
        self.store.upgrade()
        self.store.ensure_admin_token(ADMIN)
        self.http = TestClient(create_app(self.store), raise_server_exceptions=False)
        objects = [obj("Tenant", t) for t in "abc"] + [
            obj("Queue", "qa", tenant="a"), obj("Queue", "qa-spare", tenant="a"), obj("Queue", "qb", tenant="b"),
            obj("Pool", "p", cpu=4, memoryGib=8),
            job("ja", "qa"), job("jb", "qb"), job("ja-old", "qa"), job("jb-old", "qb")]
        assert self.call(ADMIN, "POST", "/v1/objects:batch", {"objects": objects}).status_code == 200
        with self.store.tx() as conn:
            for row in self.store.jobs(conn):
                if row["name"].endswith("-old"):
                    self.store.update_job(conn, row["id"], SUCCEEDED, attempts=1, exitCode=0)
                    log = tmp_path / f"{row['name']}.log"
                    log.write_text(f"output of {row['name']}\n")
                    self.store.add_tasks(conn, [dict(job_id=row["id"], attempt=1, task=0, state="EXITED", node="p/0",
                                                     devices="", exit_code=0, log_path=str(log))])
        self.tokens = {role: self.make_token(role, tenant) for role, tenant in (
            ("tenant-a", "a"), ("tenant-b", "b"), ("viewer-a", "a"), ("viewer-all", None), ("victim", None))}
        self.tokens["admin"] = ADMIN

    def make_token(self, role: str, tenant: str | None) -> str:
        body = {"role": role.split("-")[0] if role != "victim" else "viewer", "name": role}
        if tenant:
            body["tenant"] = tenant
        r = self.call(ADMIN, "POST", "/v1/tokens", body)
        assert r.status_code == 201, r.text
        return r.json()["token"]

    def call(self, token: str, method: str, path: str, body=None):
        return self.http.request(method, path, json=body, headers=bearer(token))

    def names(self, token: str, kind: str) -> list[str]:
        r = self.call(token, "GET", f"/v1/{kind}")
        assert r.status_code == 200, r.text
        return [o["metadata"]["name"] for o in r.json()["items"]]

    def token_id(self, name: str) -> int:
        return next(t["id"] for t in self.call(ADMIN, "GET", "/v1/tokens").json()["items"] if t["name"] == name)


@pytest.fixture
def world(tmp_path, db_url):
    w = World(tmp_path, db_url)
    yield w
    w.http.close()
    w.store.close()


# (call, admin, tenant of a, viewer of a, cluster-wide viewer): the status each role gets.
# The calls run in this order on one world per role, so that a deletion comes after the reads.
MATRIX = [
    (("GET", "/v1/whoami", None), 200, 200, 200, 200),
    (("GET", "/v1/jobs", None), 200, 200, 200, 200),
    (("GET", "/v1/jobs/ja", None), 200, 200, 200, 200),
    (("GET", "/v1/queues/qa", None), 200, 200, 200, 200),
    (("GET", "/v1/tenants/a", None), 200, 200, 200, 200),
    (("GET", "/v1/pools/p", None), 200, 200, 200, 200),
    (("GET", "/v1/jobs/ja-old/logs", None), 200, 200, 200, 200),
    (("GET", "/v1/jobs/ja-old:describe", None), 200, 200, 200, 200),
    (("POST", "/v1/objects", job("new", "qa")), 201, 201, 403, 403),
    (("POST", "/v1/objects:batch", {"objects": [job("new2", "qa")]}), 200, 200, 403, 403),
    (("POST", "/v1/objects", obj("Queue", "qa", tenant="a", weight=2)), 200, 403, 403, 403),
    (("POST", "/v1/objects", obj("Tenant", "a", displayName="A")), 200, 403, 403, 403),
    (("POST", "/v1/objects", obj("Pool", "p", cpu=16, memoryGib=8)), 200, 403, 403, 403),
    (("POST", "/v1/jobs/ja:cancel", None), 202, 202, 403, 403),
    (("DELETE", "/v1/jobs/ja-old", None), 200, 200, 403, 403),
    (("DELETE", "/v1/queues/qa-spare", None), 200, 403, 403, 403),
    (("DELETE", "/v1/pools/p", None), 200, 403, 403, 403),
    (("DELETE", "/v1/tenants/c", None), 200, 403, 403, 403),
    (("GET", "/v1/tokens", None), 200, 403, 403, 403),
    (("GET", "/v1/audit", None), 200, 403, 403, 200),
    (("POST", "/v1/tokens", {"role": "viewer"}), 201, 403, 403, 403),
    (("DELETE", "/v1/tokens/VICTIM", None), 200, 403, 403, 403),
]


@pytest.mark.parametrize("column, role", list(enumerate(("admin", "tenant-a", "viewer-a", "viewer-all"), start=1)))
def test_role_matrix(world, column, role):
    victim = str(world.token_id("victim"))
    got, expected = [], []
    for row in MATRIX:
        method, path, body = row[0]
        r = world.call(world.tokens[role], method, path.replace("VICTIM", victim), body)
        got.append((method, path, r.status_code))
        expected.append((method, path, row[column]))
        assert "Traceback" not in r.text
    assert got == expected


def test_tenant_a_cannot_list_read_cancel_or_modify_tenant_b_objects(world):
    a = world.tokens["tenant-a"]
    before = {path: world.call(ADMIN, "GET", path).json()
              for path in ("/v1/tenants/b", "/v1/queues/qb", "/v1/jobs/jb", "/v1/jobs/jb-old")}

    # list: only its own tenant, queues and jobs; pools are the shared capacity
    assert world.names(a, "tenants") == ["a"]
    assert world.names(a, "queues") == ["qa", "qa-spare"]
    assert world.names(a, "jobs") == ["ja", "ja-old"]
    assert world.names(a, "pools") == ["p"]
    assert world.names(world.tokens["tenant-b"], "jobs") == ["jb", "jb-old"]

    # read, cancel, logs, delete by name: another tenant's object is answered as a missing one
    for method, path, kind, name in [("GET", "/v1/tenants/b", "Tenant", "b"), ("GET", "/v1/queues/qb", "Queue", "qb"),
                                     ("GET", "/v1/jobs/jb", "Job", "jb"), ("POST", "/v1/jobs/jb:cancel", "Job", "jb"),
                                     ("GET", "/v1/jobs/jb-old/logs", "Job", "jb-old"),
                                     ("DELETE", "/v1/jobs/jb-old", "Job", "jb-old"),
                                     ("GET", "/v1/jobs/nosuch", "Job", "nosuch")]:
        r = world.call(a, method, path)
        assert (r.status_code, r.json()) == (404, {"detail": f"no {kind} named {name!r}"}), path

    # modify: Tenants and Queues are an admin's, whoever owns them
    for method, path, body in [("DELETE", "/v1/tenants/b", None), ("DELETE", "/v1/queues/qb", None),
                               ("POST", "/v1/objects", obj("Queue", "qb", tenant="b", weight=9)),
                               ("POST", "/v1/objects", obj("Tenant", "b", displayName="mine")),
                               ("POST", "/v1/objects", obj("Queue", "qa2", tenant="b"))]:
        assert world.call(a, method, path, body).status_code == 403, path

    # a job cannot go into B's queue, new or moved there: B's queue is as unknown as a missing one
    for body in (job("sneak", "qb"), job("ja", "qb"), job("sneak", "nowhere")):
        r = world.call(a, "POST", "/v1/objects", body)
        queue = body["spec"]["queue"]
        assert (r.status_code, r.json()["detail"]) == (
            422, [{"field": "spec.queue", "message": f"no Queue named {queue!r}; apply it first"}])
    r = world.call(a, "POST", "/v1/objects:batch", {"objects": [job("fine", "qa"), job("sneak", "qb")]})
    assert (r.status_code, r.json()["detail"][0]["field"]) == (422, "objects[1].spec.queue")
    assert "fine" not in world.names(ADMIN, "jobs")  # all or none

    # names are unique across tenants: B's job name is taken, and nothing more is said
    r = world.call(a, "POST", "/v1/objects", job("jb", "qa", priority=5))
    assert (r.status_code, r.json()["detail"]) == (
        409, "a Job named 'jb' exists (names are unique across tenants); choose another name")

    after = {path: world.call(ADMIN, "GET", path).json() for path in before}
    assert after == before
    # and A still runs its own jobs
    assert world.call(a, "POST", "/v1/jobs/ja:cancel").status_code == 202
    assert world.call(a, "GET", "/v1/jobs/ja-old/logs").text == "output of ja-old\n"


def test_describe_is_scoped_as_get_and_shows_attempts(world):
    a, b = world.tokens["tenant-a"], world.tokens["tenant-b"]
    assert world.call(a, "GET", "/v1/jobs/jb-old:describe").json() == {"detail": "no Job named 'jb-old'"}
    r = world.call(b, "GET", "/v1/jobs/jb-old:describe")
    assert r.status_code == 200
    assert r.json() == {"name": "jb-old", "tenant": "b", "queue": "qb", "state": "SUCCEEDED", "reason": None,
                        "exitCode": 0, "attempts": [{"attempt": 1, "tasks": [
                            {"task": 0, "node": "p/0", "devices": "", "state": "EXITED", "exitCode": 0,
                             "startedAt": None, "endedAt": None}]}]}
    # a pending job needs the reconciler's engine, which this app (no `explain`) has not
    r = world.call(a, "GET", "/v1/jobs/ja:describe")
    assert (r.status_code, r.json()) == (503, {"detail": "no reconciler runs in this process to explain a pending job"})


def test_viewers_see_their_tenant_or_everything_and_change_nothing(world):
    assert world.names(world.tokens["viewer-a"], "jobs") == ["ja", "ja-old"]
    assert world.call(world.tokens["viewer-a"], "GET", "/v1/jobs/jb").status_code == 404
    assert world.names(world.tokens["viewer-all"], "jobs") == ["ja", "jb", "ja-old", "jb-old"]
    assert world.names(world.tokens["viewer-all"], "tenants") == ["a", "b", "c"]
    r = world.call(world.tokens["viewer-all"], "POST", "/v1/jobs/jb:cancel")
    assert (r.status_code, r.json()["detail"]) == (
        403, f"a viewer token only reads (this one is token {world.token_id('viewer-all')}, viewer)")
    r = world.call(world.tokens["viewer-a"], "POST", "/v1/objects", {"kind": "Gadget"})
    assert r.status_code == 403  # before its body is looked at
    assert world.call(world.tokens["viewer-all"], "GET", "/v1/whoami").json() == {
        "id": world.token_id("viewer-all"), "name": "viewer-all", "role": "viewer", "tenant": None}


def test_revoked_tokens_get_401(world):
    victim, vid = world.tokens["victim"], world.token_id("victim")
    assert world.call(victim, "GET", "/v1/jobs").status_code == 200
    r = world.call(ADMIN, "DELETE", f"/v1/tokens/{vid}")
    assert r.status_code == 200 and r.json()["token"]["revokedAt"] is not None
    r = world.call(victim, "GET", "/v1/jobs")
    assert r.status_code == 401 and r.headers["WWW-Authenticate"] == "Bearer"
    assert world.call(victim, "POST", "/v1/objects", job("late", "qa")).status_code == 401  # the submit path too
    assert world.call(ADMIN, "DELETE", f"/v1/tokens/{vid}").status_code == 409  # already revoked
    assert world.call(ADMIN, "DELETE", "/v1/tokens/999").status_code == 404
    r = world.call(ADMIN, "DELETE", "/v1/tokens/one")
    assert (r.status_code, r.json()["detail"][0]["field"]) == (422, "path.token_id")
    # the last admin token cannot go: nobody could create tokens any more
    r = world.call(ADMIN, "DELETE", f"/v1/tokens/{world.token_id('admin (ALTOSTRAT_ADMIN_TOKEN)')}")
    assert r.status_code == 409 and "last admin token" in r.json()["detail"]
    # a deleted tenant's tokens go with it: a later tenant of the same name is someone else
    c = world.make_token("tenant", "c")
    assert world.call(c, "GET", "/v1/tenants").status_code == 200
    assert world.call(c, "POST", "/v1/objects", job("c-job", "nope")).status_code == 422  # live: its body is read
    assert world.call(ADMIN, "DELETE", "/v1/tenants/c").status_code == 200
    assert world.call(ADMIN, "POST", "/v1/objects", obj("Tenant", "c")).status_code == 201
    assert world.call(c, "GET", "/v1/tenants").status_code == 401
    assert world.call(c, "POST", "/v1/objects", job("c-job", "nope")).status_code == 401


def test_the_audit_log_is_read_in_pages_by_admins_and_cluster_viewers(world):
    world.call(world.tokens["viewer-a"], "POST", "/v1/objects", job("refused", "qa"))  # a refusal is a record too
    stored = world.store.audit_rows()
    assert len(stored) >= 8 and stored[-1]["result"] == "refused 403"
    pages, after = [], 0
    while True:
        r = world.call(ADMIN, "GET", f"/v1/audit?after={after}&limit=3")
        assert r.status_code == 200, r.text
        pages.append(r.json()["items"])
        if not pages[-1]:
            assert r.json()["last"] == after
            break
        after = r.json()["last"]
        assert after == pages[-1][-1]["id"] and len(pages[-1]) <= 3
    read = [item for page in pages for item in page]
    assert [(i["id"], i["who"], i["tokenId"], i["role"], i["action"], i["target"], i["result"]) for i in read] == [
        (r["id"], r["who"], r["token_id"], r["role"], r["action"], r["target"], r["result"]) for r in stored]
    assert world.call(world.tokens["viewer-all"], "GET", "/v1/audit").json()["items"] == read[:100]
    for role in ("tenant-a", "viewer-a"):  # every tenant's activity: not a tenant's to read
        assert world.call(world.tokens[role], "GET", "/v1/audit").status_code == 403
    for query in ("limit=0", "limit=1001", "after=-1", "after=x"):
        r = world.call(ADMIN, "GET", f"/v1/audit?{query}")
        assert r.status_code == 422 and r.json()["detail"][0]["field"].startswith("query."), (query, r.text)
    assert len(world.store.audit_rows()) == len(stored)  # reads are not audited


def test_an_expired_token_gets_401_cached_or_not(world):
    before = time.time()
    r = world.call(ADMIN, "POST", "/v1/tokens", {"role": "tenant", "tenant": "a", "expiresInS": 2})
    assert r.status_code == 201 and before + 2 <= r.json()["expiresAt"] <= time.time() + 2
    brief, brief_id, expires = r.json()["token"], r.json()["id"], r.json()["expiresAt"]
    if time.time() < expires - 0.2:  # a machine this slow skips the live half, not the expiry below
        assert world.call(brief, "GET", "/v1/jobs").status_code == 200  # looked up, so cached
    lasting = world.call(ADMIN, "POST", "/v1/tokens", {"role": "tenant", "tenant": "a", "expiresInS": 3600}).json()
    time.sleep(max(0.0, expires - time.time()) + 0.05)
    assert world.call(brief, "GET", "/v1/jobs").status_code == 401
    assert world.call(brief, "POST", "/v1/objects", job("late", "qa")).status_code == 401  # the submit path too
    assert world.call(lasting["token"], "POST", "/v1/objects", job("on-time", "qa")).status_code == 201
    listed = {t["id"]: t for t in world.call(ADMIN, "GET", "/v1/tokens").json()["items"]}
    assert listed[brief_id]["expiresAt"] < time.time() < listed[lasting["id"]]["expiresAt"]
    assert listed[world.token_id("victim")]["expiresAt"] is None
    for bad in (0, -1, "soon", 1e12):
        r = world.call(ADMIN, "POST", "/v1/tokens", {"role": "viewer", "expiresInS": bad})
        assert r.status_code == 422 and r.json()["detail"][0]["field"] == "expiresInS", (bad, r.text)


@pytest.mark.parametrize("body, field", [
    ({"role": "root"}, "role"),
    ({"role": "tenant"}, "tenant"),
    ({"role": "admin", "tenant": "a"}, "tenant"),
    ({"role": "viewer", "tenant": "nobody"}, "tenant"),
    ({"role": "viewer", "tenant": ""}, "tenant"),
    ({"role": "viewer", "bogus": 1}, "bogus"),
    ({}, "role"),
    ({"role": "viewer", "name": "x" * 201}, "name"),
])
def test_malformed_token_requests_get_422_naming_the_field(world, body, field):
    r = world.call(ADMIN, "POST", "/v1/tokens", body)
    assert r.status_code == 422 and [d["field"] for d in r.json()["detail"]] == [field], r.json()


def test_token_plaintext_is_never_stored(world):
    tokens = [*world.tokens.values()]
    for token in tokens:  # use each one for calls that store things: audit rows, idempotency keys
        world.http.post("/v1/objects", json=job("k", "qa"), headers={**bearer(token), "Idempotency-Key": "k1"})
    r = world.call(ADMIN, "POST", "/v1/tokens", {"role": "viewer"})
    assert r.headers["Cache-Control"] == "no-store"
    tokens.append(r.json()["token"])
    listed = world.call(ADMIN, "GET", "/v1/tokens").json()["items"]
    assert len(listed) == 7 and all(set(t) == {"id", "name", "role", "tenant", "createdAt", "revokedAt", "expiresAt"}
                                    for t in listed)
    world.store.close()
    stored = b"".join(p.read_bytes() for p in world.dir.glob("altostrat.db*"))
    assert all(len(t) >= 43 for t in tokens if t != ADMIN)  # 256 random bits, URL-safe base64
    assert [t for t in tokens if t.encode() in stored] == []


def test_every_mutating_call_is_audited_with_token_and_role(world):
    start = len(world.store.audit_rows())
    a, viewer = world.tokens["tenant-a"], world.tokens["viewer-a"]
    aid, vid = world.token_id("tenant-a"), world.token_id("viewer-a")
    world.call(a, "POST", "/v1/objects", job("x", "qa"))
    world.call(a, "POST", "/v1/objects", obj("Pool", "p2", cpu=1, memoryGib=1))
    world.call(a, "POST", "/v1/jobs/jb:cancel")
    world.call(viewer, "DELETE", "/v1/jobs/ja-old")
    world.call("bogus", "POST", "/v1/jobs/ja:cancel")
    world.call(a, "GET", "/v1/jobs/jb")  # reads are not audited
    world.call(ADMIN, "POST", "/v1/tokens", {"role": "viewer", "tenant": "b"})
    world.call(ADMIN, "POST", "/v1/tokens", {"role": "wizard"})
    rows = [(r["who"], r["token_id"], r["role"], r["action"], r["target"], r["result"])
            for r in world.store.audit_rows()[start:]]
    new = world.token_id("viewer of b")
    assert rows == [
        ("tenant-a", aid, "tenant", "apply", "Job/x", "created"),
        ("tenant-a", aid, "tenant", "POST", "/v1/objects", "refused 403"),
        ("tenant-a", aid, "tenant", "POST", "/v1/jobs/jb:cancel", "refused 404"),
        ("viewer-a", vid, "viewer", "DELETE", "/v1/jobs/ja-old", "refused 403"),
        ("anonymous", None, None, "POST", "/v1/jobs/ja:cancel", "refused 401"),
        ("admin (ALTOSTRAT_ADMIN_TOKEN)", 1, "admin", "token create", f"Token/{new}", "created (viewer of b)"),
        ("admin (ALTOSTRAT_ADMIN_TOKEN)", 1, "admin", "POST", "/v1/tokens", "refused 422"),
    ]
    assert all(r["at"] > 0 for r in world.store.audit_rows())


def test_migration_0002_keeps_the_audit_rows_of_a_0001_database(db_url):
    store = Store(db_url)
    upgrade(store.engine, "0001")
    with store.engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO audit (at, who, action, target, result) VALUES (1.0, 'admin', 'apply', "
                             "'Tenant/a', 'created')")
    store.upgrade()
    assert [(r["who"], r["token_id"], r["role"]) for r in store.audit_rows()] == [("admin", None, None)]
    store.close()


def test_login_context_file(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    path = context_path()
    assert path == tmp_path / "altostrat" / "context.json" and load_context() is None
    assert save_context("http://h:0", "first") == path
    assert stat.S_IMODE(path.parent.stat().st_mode) & 0o077 == 0  # the folder is its owner's alone
    stale = path.with_name("context.json.tmp")
    stale.write_text("old")
    stale.chmod(0o644)  # a leftover of an interrupted save must not lend its mode
    assert save_context("http://h:1", "secret") == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600 and not stale.exists()
    assert load_context() == {"server": "http://h:1", "token": "secret"}

    client = connect(None, None)
    assert (client.server, client.http.headers["Authorization"]) == ("http://h:1", "Bearer secret")
    assert connect("http://h:1/", None).http.headers["Authorization"] == "Bearer secret"
    assert connect(None, "other").http.headers["Authorization"] == "Bearer other"  # to the context's server
    with pytest.raises(ClientError, match=r"^no token for http://elsewhere:1: pass --token"):
        connect("http://elsewhere:1", None)

    for text, message in (("{not json", "not a readable context"), ('{"server": 1}', "a context is")):
        path.write_text(text)
        with pytest.raises(ClientError, match=message):
            load_context()


NAMES = ["a", "b", "c", "qa", "qb", "qa-spare", "p", "ja", "jb", "ja-old", "jb-old", "zz"]
REQUESTS = st.one_of(
    st.tuples(st.sampled_from(["GET", "DELETE"]), st.sampled_from(["tenants", "queues", "pools", "jobs"]),
              st.sampled_from(NAMES)).map(lambda t: (t[0], f"/v1/{t[1]}/{t[2]}", None)),
    st.sampled_from(NAMES).map(lambda n: ("POST", f"/v1/jobs/{n}:cancel", None)),
    st.sampled_from(NAMES).map(lambda n: ("GET", f"/v1/jobs/{n}/logs", None)),
    st.sampled_from(["tenants", "queues", "pools", "jobs", "tokens"]).map(lambda k: ("GET", f"/v1/{k}", None)),
    st.tuples(st.sampled_from(NAMES), st.sampled_from(NAMES), st.integers(-1, 3)).map(
        lambda t: ("POST", "/v1/objects", job(t[0], t[1], priority=t[2]))),
    st.tuples(st.sampled_from(["Tenant", "Queue", "Pool"]), st.sampled_from(NAMES)).map(
        lambda t: ("POST", "/v1/objects", obj(t[0], t[1], tenant="b", cpu=1, memoryGib=1))),
)


def test_property_a_tenant_never_sees_or_changes_another_tenants_objects(tmp_path, db_url):
    world = World(tmp_path, db_url)
    b_objects = {p: world.call(ADMIN, "GET", p).json()
                 for p in ("/v1/tenants/b", "/v1/queues/qb", "/v1/jobs/jb", "/v1/jobs/jb-old")}

    @settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
    @given(st.lists(REQUESTS, min_size=1, max_size=6), st.sampled_from(["tenant-a", "viewer-a"]))
    def run(requests, role):
        for method, path, body in requests:
            r = world.call(world.tokens[role], method, path, body)
            assert r.status_code < 500 and "Traceback" not in r.text, (method, path, r.text)
            if r.status_code < 300 and method == "GET" and not path.endswith("/logs"):
                data = r.json()
                for o in data.get("items", [data]):
                    assert o["kind"] == "Pool" or o["metadata"]["tenant"] == "a", (path, o)
        assert {p: world.call(ADMIN, "GET", p).json() for p in b_objects} == b_objects

    try:
        run()
    finally:
        world.http.close()
        world.store.close()


def test_cli_tokens_and_login_against_a_real_server(tmp_path):
    proc, url = start_serve(tmp_path / "data", ADMIN)
    config = tmp_path / "config"
    env = {**os.environ, "XDG_CONFIG_HOME": str(config)}
    for var in ("ALTOSTRAT_SERVER", "ALTOSTRAT_TOKEN"):
        env.pop(var, None)
    runner = CliRunner()

    def cli(*args: str, token: str | None = None):
        return runner.invoke(cli_app, list(args), env={"XDG_CONFIG_HOME": str(config), "ALTOSTRAT_SERVER": None,
                                                       "ALTOSTRAT_TOKEN": token})

    try:
        # the real entry point: login checks the token and saves the context, readable by its owner only
        r = subprocess.run([sys.executable, "-m", "altostrat.cli", "login", "--server", url, "--token", ADMIN],
                           capture_output=True, text=True, env=env, timeout=60)
        context = config / "altostrat" / "context.json"
        assert r.returncode == 0 and r.stdout == f"logged in to {url} as token 1 (admin); context saved to " \
                                                 f"{context} (mode 600)\n", r.stderr
        assert stat.S_IMODE(context.stat().st_mode) == 0o600
        assert json.loads(context.read_text()) == {"server": url, "token": ADMIN}

        spec = tmp_path / "objects.yaml"
        spec.write_text("\n---\n".join(json.dumps(o) for o in (
            obj("Tenant", "a"), obj("Tenant", "b"), obj("Queue", "qa", tenant="a"), obj("Queue", "qb", tenant="b"))))
        r = cli("apply", "-f", str(spec))  # no --server, --token or environment: the context
        assert r.exit_code == 0 and r.stdout.splitlines()[-1] == "queue/qb created", r.output

        r = cli("tokens", "create", "--tenant", "a", "--role", "tenant")
        assert r.exit_code == 0 and r.stderr == "created token 2 (tenant of tenant a); store it now, it is not " \
                                                "shown again\n"
        token = r.stdout.strip()
        assert len(token) >= 43 and r.stdout == token + "\n"  # the token alone on stdout

        r = cli("get", "queues", token=token)
        assert r.exit_code == 0 and [line.split()[0] for line in r.stdout.splitlines()] == ["NAME", "qa"]
        r = cli("delete", "queue", "qa", token=token)
        assert r.exit_code == 2 and r.stderr.startswith("error: 403 a tenant token changes only Jobs")

        r = cli("tokens", "create", "--role", "viewer", "--expires-in", "30d")
        assert r.exit_code == 0 and r.stderr.startswith("created token 3 (viewer), expires 2") and \
            r.stderr.endswith(" UTC; store it now, it is not shown again\n"), r.stderr
        r = cli("tokens", "create", "--role", "viewer", "--expires-in", "soon")
        assert r.exit_code == 2 and r.stderr.startswith("error: --expires-in: 'soon' is not a duration")
        r = cli("tokens", "create", "--role", "root")
        assert r.exit_code == 2 and r.stderr == "error: 422 invalid:\n  role: 'root' is not a role; one of: " \
                                                "admin, tenant, viewer\n"
        r = cli("tokens", "revoke", "2")
        assert (r.exit_code, r.stdout) == (0, "token 2 revoked\n")
        r = cli("get", "queues", token=token)
        assert r.exit_code == 2 and r.stderr.startswith("error: 401 ")
        r = cli("audit", "--limit", "3")
        assert r.exit_code == 0 and [line.split()[0] for line in r.stdout.splitlines()] == ["ID", "1", "2", "3"]
        r = cli("audit", "--after", "3", "-o", "json")
        page = json.loads(r.stdout)
        assert r.exit_code == 0 and page["items"][0]["id"] == 4 and page["last"] == page["items"][-1]["id"]
        assert [(i["action"], i["result"]) for i in page["items"][-2:]] == [("POST", "refused 422"),
                                                                             ("token revoke", "revoked")]
        assert cli("audit", token=token).exit_code == 2  # a revoked token
        r = cli("tokens", "list")
        rows = [line.split() for line in r.stdout.splitlines()]
        assert [row[:3] for row in rows] == [["ID", "ROLE", "TENANT"], ["1", "admin", "-"], ["2", "tenant", "a"],
                                             ["3", "viewer", "-"]]
        assert rows[1][-1] == "-" and rows[2][-1] != "-" and rows[3][-1] == "-"  # REVOKED
        assert rows[1][-2] == "-" and rows[3][-2] != "-"  # EXPIRES

        # the context's token goes only to the context's server
        r = cli("get", "jobs", "--server", "http://127.0.0.1:9")
        assert r.exit_code == 2 and r.stderr.startswith("error: no token for http://127.0.0.1:9: ")
        context.chmod(0o644)
        r = cli("get", "jobs")
        assert r.exit_code == 2 and "others may read it (mode 644)" in r.stderr
    finally:
        proc.kill()
        proc.wait()


def test_failed_authentication_is_limited_per_address_but_not_for_tokens_already_seen(tmp_path):
    from altostrat.service.auth_limit import FailedAuthLimit

    clock = [0.0]
    store = Store(database_url(tmp_path, None))
    store.upgrade()
    store.ensure_admin_token(ADMIN)
    with store.tx() as conn:
        _, fresh_token = store.create_token(conn, "viewer", None, "not yet used")
    limit = FailedAuthLimit(burst=3, per_s=0.5, clock=lambda: clock[0])
    try:
        with TestClient(create_app(store, auth_limit=limit), raise_server_exceptions=False) as http:
            assert http.get("/v1/jobs", headers=bearer(ADMIN)).status_code == 200  # seen: cached
            for path in ("/v1/jobs", "/v1/objects", "/v1/jobs"):  # both layers count
                call = http.post if path == "/v1/objects" else http.get
                assert call(path, headers=bearer("guess")).status_code == 401
            for call, path in ((http.get, "/v1/jobs"), (http.post, "/v1/objects")):
                r = call(path, headers=bearer("guess"))
                assert r.status_code == 429 and r.headers["Retry-After"] == "2", r.text
                assert "too many calls without a valid token from this address" in r.json()["detail"]
            assert http.get("/v1/jobs", headers=bearer(fresh_token)).status_code == 429  # not seen yet: held back too
            assert http.get("/v1/jobs", headers=bearer(ADMIN)).status_code == 200  # seen: never held back
            clock[0] += 2.0  # one failure refilled
            assert http.get("/v1/jobs", headers=bearer(fresh_token)).status_code == 200
            assert http.get("/v1/jobs", headers=bearer("guess")).status_code == 401
            assert http.get("/v1/jobs", headers=bearer("guess")).status_code == 429
        assert [r["result"] for r in store.audit_rows()] == ["refused 401", "refused 429"]  # the POSTs
    finally:
        store.close()


def test_each_address_has_its_own_bucket_and_full_ones_are_dropped(monkeypatch):
    from altostrat.service import auth_limit
    from altostrat.service.auth_limit import FailedAuthLimit, TooManyFailures

    clock = [0.0]
    limit = FailedAuthLimit(burst=2, per_s=1.0, clock=lambda: clock[0])
    for _ in range(2):
        limit.check("10.0.0.1")
        limit.failed("10.0.0.1")
    with pytest.raises(TooManyFailures) as held:
        limit.check("10.0.0.1")
    assert held.value.retry_after_s == pytest.approx(1.0)
    limit.check("10.0.0.2")  # another address is not held back
    monkeypatch.setattr(auth_limit, "MAX_ADDRESSES", 2)
    limit.failed("10.0.0.2")
    clock[0] += 10  # both refilled: dropped when room is needed
    limit.failed("10.0.0.3")
    assert set(limit.buckets) == {"10.0.0.3"}
