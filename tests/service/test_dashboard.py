"""The dashboard's summary (`GET /v1/dashboard`): exact counts, usage and utilization, the
engine's pending reasons, and tenant isolation; the page itself loads nothing from elsewhere."""

from __future__ import annotations

import sys
import time
from importlib.resources import files

import pytest
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from altostrat.service.api import create_app
from altostrat.service.reconciler import Reconciler
from altostrat.service.database import database_url
from altostrat.service.store import CANCELLED, FAILED, PENDING, RUNNING, SUCCEEDED, Store

# the live test below runs job processes: one live test at a time (`make test` uses --dist loadgroup)
pytestmark = pytest.mark.xdist_group("live-serve")

ADMIN = "dashboard-admin-token"
SLEEP = [sys.executable, "-c", "import time; time.sleep(60)"]


def obj(kind: str, name: str, **spec) -> dict:
    return {"apiVersion": "altostrat/v1", "kind": kind, "metadata": {"name": name}, "spec": spec}


class Board:
    """A store with tenants acme and globex (a queue each: acme-q, globex-q), pools `gpus` (2
    nodes of 2 T4, 8 vCPU, 16 GiB) and `cpus` (1 node, 4 vCPU, 8 GiB), and a token per role."""

    def __init__(self, tmp_path, reasons=None) -> None:
        self.store = Store(database_url(tmp_path, None))
        self.store.upgrade()
        self.store.ensure_admin_token(ADMIN)
        self.http = TestClient(create_app(self.store, reasons=reasons), raise_server_exceptions=False)
        self.apply(obj("Tenant", "acme"), obj("Tenant", "globex"),
                   obj("Queue", "acme-q", tenant="acme", quota={"gpu": 2, "cpu": 8}),
                   obj("Queue", "globex-q", tenant="globex", quota={"gpu": 1}),
                   obj("Pool", "gpus", nodes=2, gpu={"model": "T4", "count": 2}, cpu=8, memoryGib=16),
                   obj("Pool", "cpus", nodes=1, cpu=4, memoryGib=8))
        self.tokens = {"admin": ADMIN}
        for name, body in (("acme", {"role": "tenant", "tenant": "acme"}),
                           ("globex", {"role": "tenant", "tenant": "globex"}),
                           ("acme-viewer", {"role": "viewer", "tenant": "acme"}), ("viewer", {"role": "viewer"})):
            r = self.http.post("/v1/tokens", json=body, headers=bearer(ADMIN))
            assert r.status_code == 201, r.text
            self.tokens[name] = r.json()["token"]

    def apply(self, *objects: dict) -> None:
        for o in objects:  # one call each: each job its own createdAt
            r = self.http.post("/v1/objects", json=o, headers=bearer(ADMIN))
            assert r.status_code in (200, 201), r.text

    def set_state(self, name: str, state: str, nodes: list[str] = (), exit_code: int | None = None) -> None:
        """As the reconciler records it: the job's state and one task row per node of attempt 1."""
        with self.store.tx() as conn:
            job_id = next(r["id"] for r in self.store.jobs(conn, states=(PENDING,)) if r["name"] == name)
            self.store.update_job(conn, job_id, state, attempts=1 if nodes else None, exitCode=exit_code)
            task_state = "RUNNING" if state == RUNNING else "EXITED"
            self.store.add_tasks(conn, [dict(job_id=job_id, attempt=1, task=i, state=task_state, node=node,
                                             devices="0", exit_code=exit_code, log_path=f"{name}.{i}.log")
                                        for i, node in enumerate(nodes)])

    def get(self, who: str, query: str = "") -> dict:
        r = self.http.get(f"/v1/dashboard{query}", headers=bearer(self.tokens[who]))
        assert r.status_code == 200, r.text
        return r.json()

    def close(self) -> None:
        self.http.close()
        self.store.close()


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def board(tmp_path):
    b = Board(tmp_path)
    yield b
    b.close()


def job(name: str, queue: str, tasks: int = 1, **resources) -> dict:
    return obj("Job", name, queue=queue, command=["true"], resources=resources, tasks=tasks)


def test_counts_usage_and_utilization_are_exact(board):
    board.apply(job("acme-old", "acme-q", gpu=1),
                job("acme-train", "acme-q", gpu=1, cpu=2, memoryGib=1, tasks=2),
                job("acme-wait", "acme-q", gpu=1),
                job("globex-half", "globex-q", gpu=0.5),
                job("globex-cpu", "globex-q", cpu=3, memoryGib=2))
    board.set_state("acme-old", SUCCEEDED, ["gpus/0"], exit_code=0)
    board.set_state("acme-train", RUNNING, ["gpus/0", "gpus/1"])
    board.set_state("globex-half", RUNNING, ["gpus/1"])
    board.set_state("globex-cpu", RUNNING, ["cpus/0"])
    d = board.get("admin")

    assert (d["role"], d["tenant"], d["jobsTotal"]) == ("admin", None, 5)
    assert d["queues"] == [
        {"name": "acme-q", "tenant": "acme", "quota": {"gpu": 2.0, "cpu": 8.0, "memoryGib": None}, "weight": 1.0,
         "pending": 1, "running": 1, "used": {"gpu": 2.0, "cpu": 4.0, "memoryGib": 2.0}},
        {"name": "globex-q", "tenant": "globex", "quota": {"gpu": 1.0, "cpu": None, "memoryGib": None}, "weight": 1.0,
         "pending": 0, "running": 2, "used": {"gpu": 0.5, "cpu": 4.0, "memoryGib": 2.0}}]
    # running, then pending, then ended; the newest first in each
    assert [(j["name"], j["state"], j["nodes"]) for j in d["jobs"]] == [
        ("globex-cpu", RUNNING, ["cpus/0"]), ("globex-half", RUNNING, ["gpus/1"]),
        ("acme-train", RUNNING, ["gpus/0", "gpus/1"]), ("acme-wait", PENDING, []), ("acme-old", SUCCEEDED, ["gpus/0"])]
    wait = d["jobs"][3]
    # this app has no reconciler to ask: the reason is unknown, and says so
    assert (wait["reason"], wait["message"], wait["attempts"], wait["exitCode"]) == (
        "unknown", "no reconciler runs in this process", 0, None)
    assert d["jobs"][4]["exitCode"] == 0 and d["jobs"][4]["reason"] is None
    assert all(0 <= j["ageS"] < 60 for j in d["jobs"])
    # gpus: acme-train's two tasks (1 GPU, 2 vCPU, 1 GiB each), globex-half's 0.5 GPU and 1 vCPU;
    # acme-old's task has exited and holds nothing
    assert d["pools"] == [
        {"name": "gpus", "nodes": 2, "gpuModel": "T4", "capacity": {"gpu": 4.0, "cpu": 16.0, "memoryGib": 32.0},
         "allocated": {"gpu": 2.5, "cpu": 5.0, "memoryGib": 2.0}, "gpuUtilization": 62.5, "cpuUtilization": 31.2},
        {"name": "cpus", "nodes": 1, "gpuModel": None, "capacity": {"gpu": 0.0, "cpu": 4.0, "memoryGib": 8.0},
         "allocated": {"gpu": 0.0, "cpu": 3.0, "memoryGib": 2.0}, "gpuUtilization": None, "cpuUtilization": 75.0}]

    limited = board.get("admin", "?limit=2")
    assert ([j["name"] for j in limited["jobs"]], limited["jobsTotal"]) == (["globex-cpu", "globex-half"], 5)


def test_a_tenant_sees_only_its_queues_and_jobs_and_every_pool(board):
    board.apply(job("acme-train", "acme-q", gpu=1), job("globex-secret", "globex-q", gpu=1))
    board.set_state("globex-secret", RUNNING, ["gpus/1"])
    everything = board.get("admin")
    for who in ("acme", "acme-viewer"):
        r = board.http.get("/v1/dashboard", headers=bearer(board.tokens[who]))
        assert "globex" not in r.text  # no name of the other tenant's, anywhere in the answer
        d = r.json()
        assert (d["tenant"], d["jobsTotal"]) == ("acme", 1)
        assert [q["name"] for q in d["queues"]] == ["acme-q"]
        assert [j["name"] for j in d["jobs"]] == ["acme-train"]
        # the pools are the shared capacity: the same sums (globex's GPU included), no names
        assert d["pools"] == everything["pools"]
    assert [j["name"] for j in board.get("globex")["jobs"]] == ["globex-secret"]
    assert [j["name"] for j in board.get("viewer")["jobs"]] == ["globex-secret", "acme-train"]


def test_the_summary_needs_a_token_and_the_page_does_not(board):
    assert board.http.get("/v1/dashboard").status_code == 401
    assert board.http.get("/v1/dashboard", headers=bearer("nope")).status_code == 401
    r = board.http.get("/v1/dashboard?limit=0", headers=bearer(ADMIN))
    assert (r.status_code, r.json()["detail"][0]["field"]) == (422, "query.limit")
    r = board.http.get("/", follow_redirects=False)
    assert (r.status_code, r.headers["location"]) == (307, "/ui")
    for path, media in (("/ui", "text/html"), ("/ui/dashboard.js", "text/javascript"),
                        ("/ui/dashboard.css", "text/css")):
        r = board.http.get(path)
        assert r.status_code == 200 and r.headers["content-type"].startswith(media), path
        assert r.headers["content-security-policy"].startswith("default-src 'self'")
    assert board.http.get("/ui/other.js").status_code == 404


def test_the_page_loads_nothing_from_elsewhere():
    # no CDN, no web font: the service's machine may have no network, and the token stays here
    for name in ("dashboard.html", "dashboard.js", "dashboard.css"):
        text = (files("altostrat.service") / "static" / name).read_text(encoding="utf-8")
        assert "://" not in text and "innerHTML" not in text, name


STATES = (PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED)


def test_property_each_token_sees_exactly_its_tenants_jobs_and_counts_add_up(tmp_path):
    board = Board(tmp_path)
    model: dict[str, tuple[str, str]] = {}  # job name -> (tenant, state), kept beside the store

    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck), database=None)
    @given(st.lists(st.tuples(st.sampled_from(["acme", "globex"]), st.sampled_from(STATES)), min_size=1, max_size=4))
    def run(new_jobs):
        for tenant, state in new_jobs:
            name = f"{tenant}-{len(model)}"
            board.apply(job(name, f"{tenant}-q", gpu=0, cpu=1))
            if state != PENDING:
                board.set_state(name, state, ["cpus/0"] if state == RUNNING else [])
            model[name] = (tenant, state)
        for who, tenant in (("acme", "acme"), ("globex", "globex"), ("admin", None), ("viewer", None)):
            d = board.get(who, "?limit=1000")
            mine = {n: s for n, (t, s) in model.items() if tenant in (None, t)}
            assert {j["name"]: j["state"] for j in d["jobs"]} == mine
            assert d["jobsTotal"] == len(mine)
            for q in d["queues"]:
                assert tenant is None or q["tenant"] == tenant
                of_q = [s for n, (t, s) in model.items() if f"{t}-q" == q["name"]]
                assert (q["pending"], q["running"]) == (of_q.count(PENDING), of_q.count(RUNNING))
                assert q["used"]["cpu"] == of_q.count(RUNNING)
            running = sum(s == RUNNING for _, s in model.values())  # every tenant's, on the shared pool
            assert next(p for p in d["pools"] if p["name"] == "cpus")["allocated"]["cpu"] == running

    try:
        run()
    finally:
        board.close()


def test_pending_reasons_come_from_the_live_engine(tmp_path):
    """A real reconciler: acme-train runs, acme-wait waits for acme-q's quota, globex-big for
    free GPUs (capacity); the summary shows the engine's reasons, and none of them leaks."""
    board = Board(tmp_path, reasons=lambda names: rec.reasons(names))
    rec = Reconciler(board.store, "fcfs+best-fit", tmp_path, grace_s=2)
    try:
        board.apply(obj("Queue", "acme-q", tenant="acme", quota={"gpu": 1}), obj("Queue", "globex-q", tenant="globex"),
                    obj("Pool", "gpus", nodes=1, gpu={"model": "T4", "count": 2}, cpu=8, memoryGib=16),
                    obj("Job", "acme-train", queue="acme-q", command=SLEEP, resources={"gpu": 1}))
        rec.start()
        deadline = time.monotonic() + 30
        while board.get("admin")["jobs"][0]["state"] != RUNNING:
            assert time.monotonic() < deadline, board.get("admin")
            time.sleep(0.05)
        board.apply(obj("Job", "acme-wait", queue="acme-q", command=SLEEP, resources={"gpu": 1}),
                    obj("Job", "globex-big", queue="globex-q", command=SLEEP, resources={"gpu": 2}))
        rec.wake()
        deadline = time.monotonic() + 30
        while True:  # until the engine holds both (a job applied a moment ago is not yet taken in)
            jobs = {j["name"]: j for j in board.get("admin")["jobs"]}
            if all(jobs[n]["reason"] not in ("not-admitted", None) for n in ("acme-wait", "globex-big")):
                break
            assert time.monotonic() < deadline, jobs
            time.sleep(0.05)
        assert (jobs["acme-train"]["state"], jobs["acme-train"]["nodes"]) == (RUNNING, ["gpus/0"])
        assert (jobs["acme-wait"]["reason"], jobs["acme-wait"]["message"]) == (
            "quota", "queue acme-q uses 1/1 GPUs and the job asks 1 more (no cohort to borrow from)")
        assert (jobs["globex-big"]["reason"], jobs["globex-big"]["message"]) == (
            "capacity", "needs 2 GPU, 1 CPU, 0 GiB at once; free now: T4: 1 GPU, 7 CPU, 16 GiB")
        pool = board.get("acme")["pools"][0]
        assert (pool["allocated"]["gpu"], pool["gpuUtilization"]) == (1.0, 50.0)
        r = board.http.get("/v1/dashboard", headers=bearer(board.tokens["acme"]))
        assert "globex" not in r.text
    finally:
        rec.stop()
        board.close()
