"""`describe queue`, `describe pool` and `describe service` (GET /v1/{kind}/{name}:describe):
exact answers on small stores set by hand, tenant isolation, the engine's pending order from a
live reconciler, and the CLI against a live `serve`."""

from __future__ import annotations

import json
import sys
import time

import httpx
import pytest
from helpers import start_serve
from service.test_dashboard import ADMIN, SLEEP, Board, bearer, job, obj
from typer.testing import CliRunner

from altostrat.cli import app as cli_app
from altostrat.service.auth import Principal
from altostrat.service.describe_objects import describe_queue
from altostrat.service.reconciler import Reconciler
from altostrat.service.services import ServiceController
from altostrat.service.store import FAILED, PENDING, RUNNING, SUCCEEDED

# the live tests run job processes: one live test at a time (`make test` uses --dist loadgroup)
pytestmark = pytest.mark.xdist_group("live-serve")

NONE = {"gpu": 0.0, "cpu": 0.0, "memoryGib": 0.0}


@pytest.fixture
def board(tmp_path):
    b = Board(tmp_path)
    yield b
    b.close()


def describe(board: Board, who: str, kind: str, name: str) -> httpx.Response:
    return board.http.get(f"/v1/{kind}/{name}:describe", headers=bearer(board.tokens[who]))


def test_a_queue_its_cohort_usage_and_pending_jobs(board):
    board.apply(obj("Queue", "acme-lab", tenant="acme", quota={"gpu": 1}, cohort="lab", borrowingLimit={"gpu": 2},
                    weight=2),
                obj("Queue", "globex-lab", tenant="globex", quota={"gpu": 3, "cpu": 4}, cohort="lab"),
                job("acme-run", "acme-lab", gpu=1, cpu=2, memoryGib=1, tasks=2),
                job("acme-w1", "acme-lab", gpu=1), job("acme-w2", "acme-lab", gpu=1),
                job("acme-done", "acme-lab", gpu=1), job("globex-run", "globex-lab", gpu=1, cpu=3),
                job("acme-other", "acme-q", gpu=2))
    board.set_state("acme-run", RUNNING, ["gpus/0", "gpus/1"])
    board.set_state("acme-done", SUCCEEDED, ["gpus/0"], exit_code=0)
    board.set_state("globex-run", RUNNING, ["gpus/1"])
    board.set_state("acme-other", RUNNING, ["gpus/0"])
    r = describe(board, "acme", "queues", "acme-lab")
    assert r.status_code == 200 and "globex" not in r.text  # the cohort's sums name none of its queues
    d = r.json()
    created = [j.pop("createdAt") for j in d["pendingJobs"]]
    assert created == sorted(created)
    assert d == {
        "name": "acme-lab", "tenant": "acme",
        "spec": {"tenant": "acme", "quota": {"gpu": 1.0, "cpu": None, "memoryGib": None}, "weight": 2.0,
                 "cohort": "lab", "borrowingLimit": {"gpu": 2.0, "cpu": None, "memoryGib": None}, "budget": None},
        "used": {"gpu": 2.0, "cpu": 4.0, "memoryGib": 2.0},
        "borrowed": {"gpu": 1.0, "cpu": 0.0, "memoryGib": 0.0},  # no cpu quota: nothing is borrowed
        # quotas 1 + 3 GPUs; acme-lab sets no CPU quota, so the cohort has no CPU limit
        "cohort": {"name": "lab", "quota": {"gpu": 4.0, "cpu": None, "memoryGib": None},
                   "used": {"gpu": 3.0, "cpu": 7.0, "memoryGib": 2.0}},
        "budget": None, "pending": 2, "running": 1,
        # no reconciler in this app: the reasons are unknown, and the jobs in submission order
        "pendingJobs": [{"name": n, "reason": "unknown", "message": "no reconciler runs in this process"}
                        for n in ("acme-w1", "acme-w2")]}
    assert describe(board, "acme-viewer", "queues", "acme-lab").json()["pending"] == 2
    assert describe(board, "viewer", "queues", "globex-lab").json()["used"] == {"gpu": 1.0, "cpu": 3.0,
                                                                              "memoryGib": 0.0}
    plain = describe(board, "admin", "queues", "acme-q").json()
    assert (plain["cohort"], plain["used"], plain["borrowed"], plain["pendingJobs"]) == (
        None, {"gpu": 2.0, "cpu": 1.0, "memoryGib": 0.0}, NONE, [])


def test_another_tenants_queue_or_service_is_missing_word_for_word(board):
    board.apply(obj("Service", "globex-web", queue="globex-q", command=["true"], maxReplicas=2, targetLoad=1))
    for kind, name, missing in (("queues", "globex-q", "nope"), ("services", "globex-web", "nope")):
        theirs, absent = describe(board, "acme", kind, name), describe(board, "acme", kind, missing)
        assert (theirs.status_code, absent.status_code) == (404, 404)
        assert theirs.json()["detail"] == absent.json()["detail"].replace(missing, name)
        assert describe(board, "globex", kind, name).status_code == 200
        assert describe(board, "acme-viewer", kind, name).status_code == 404
    assert describe(board, "acme", "pools", "nope").json() == {"detail": "no Pool named 'nope'"}
    for kind in ("queues", "pools", "services"):
        assert board.http.get(f"/v1/{kind}/x:describe").status_code == 401


def test_what_a_queue_spent_this_budget_period(board):
    board.apply(obj("Pool", "priced", nodes=1, gpu={"model": "A100", "count": 4}, cpu=16, memoryGib=64,
                    pricePerHour=3.6),
                obj("Queue", "acme-budget", tenant="acme", budget={"usd": 10, "gpuHours": 5, "periodS": 3600}),
                job("b-two", "acme-budget", gpu=2), job("b-one", "acme-budget", gpu=1),
                job("b-old", "acme-budget", gpu=4))
    with board.store.tx() as conn:
        ids = {r["name"]: r["id"] for r in board.store.jobs(conn, states=(PENDING,))}
        board.store.add_tasks(conn, [
            # a 2-GPU task on the 3.6 USD/h node (0.001 USD/s): half the node (its GPU share)
            dict(job_id=ids["b-two"], attempt=1, task=0, state="EXITED", node="priced/0", devices="0,1",
                 log_path="a", started_at=35_000.0, ended_at=36_500.0),  # 500 s of it in this period
            dict(job_id=ids["b-two"], attempt=2, task=0, state="RUNNING", node="priced/0", devices="0,1",
                 log_path="b", started_at=37_000.0),  # running: 800 s so far
            # a Pool since deleted costs nothing, but its GPU-hours count
            dict(job_id=ids["b-one"], attempt=1, task=0, state="EXITED", node="gone/0", devices="0",
                 log_path="c", started_at=36_000.0, ended_at=36_600.0),
            dict(job_id=ids["b-old"], attempt=1, task=0, state="EXITED", node="priced/0", devices="0,1,2,3",
                 log_path="d", started_at=35_000.0, ended_at=35_500.0)])  # the previous period
    acme = Principal(0, "acme", "tenant", "acme", "")
    d = describe_queue(board.store, acme, "acme-budget", None, wall=37_800.0)
    assert d.budget.period_start == 36_000.0 and d.budget.period_end == 39_600.0
    assert d.budget.spent_usd == pytest.approx(0.001 * 0.5 * (500 + 800))
    assert d.budget.spent_gpu_hours == pytest.approx((2 * (500 + 800) + 1 * 600) / 3600)
    assert d.spec.budget.usd == 10 and d.spec.budget.gpu_hours == 5


def test_a_pool_per_node_and_the_jobs_each_token_sees(board):
    board.apply(job("acme-train", "acme-q", gpu=1, cpu=2, memoryGib=1, tasks=2), job("acme-old", "acme-q", gpu=1),
                job("globex-half", "globex-q", gpu=0.5))
    board.set_state("acme-old", SUCCEEDED, ["gpus/0"], exit_code=0)  # ended: holds nothing
    board.set_state("acme-train", RUNNING, ["gpus/0", "gpus/1"])
    board.set_state("globex-half", RUNNING, ["gpus/1"])
    node = {"capacity": {"gpu": 2.0, "cpu": 8.0, "memoryGib": 16.0}, "devices": [0]}
    acme_train = {"name": "acme-train", "tenant": "acme", "queue": "acme-q", "state": RUNNING, "tasks": [
        {"task": i, "attempt": 1, "node": f"gpus/{i}", "devices": "0", "state": RUNNING} for i in (0, 1)]}
    globex_half = {"name": "globex-half", "tenant": "globex", "queue": "globex-q", "state": RUNNING, "tasks": [
        {"task": 0, "attempt": 1, "node": "gpus/1", "devices": "0", "state": RUNNING}]}
    expected = {
        "name": "gpus", "spec": {"nodes": 2, "gpu": {"model": "T4", "count": 2}, "cpu": 8.0, "memoryGib": 16.0,
                                 "region": None, "pricePerHour": None},
        "capacity": {"gpu": 4.0, "cpu": 16.0, "memoryGib": 32.0},
        "allocated": {"gpu": 2.5, "cpu": 5.0, "memoryGib": 2.0}, "gpuUtilization": 62.5, "cpuUtilization": 31.2,
        "nodes": [{"name": "gpus/0", **node, "allocated": {"gpu": 1.0, "cpu": 2.0, "memoryGib": 1.0}, "tasks": 1},
                  {"name": "gpus/1", **node, "allocated": {"gpu": 1.5, "cpu": 3.0, "memoryGib": 1.0}, "tasks": 2}],
        "jobs": [acme_train, globex_half]}
    assert describe(board, "admin", "pools", "gpus").json() == expected
    # the allocation is every tenant's, the jobs only the token's own
    assert describe(board, "acme", "pools", "gpus").json() == {**expected, "jobs": [acme_train]}
    theirs = describe(board, "globex", "pools", "gpus")
    assert theirs.json() == {**expected, "jobs": [globex_half]} and "acme" not in theirs.text
    idle = describe(board, "acme", "pools", "cpus").json()
    assert (idle["allocated"], idle["gpuUtilization"], idle["nodes"][0]["devices"], idle["jobs"]) == (NONE, None, [], [])


def test_a_service_its_replicas_and_their_exits(board):
    now = [1000.0]
    controller = ServiceController(board.store, clock=lambda: now[0])
    board.apply(obj("Service", "web", queue="acme-q", command=["true"], minReplicas=1, maxReplicas=3, targetLoad=10))
    r = describe(board, "acme", "services", "web").json()
    assert (r["desired"], r["replicas"], r["replicaJobs"], r["lastExit"]) == (None, 0, [], None)  # not yet reconciled

    controller.reconcile()  # web-1
    board.set_state("web-1", FAILED, ["gpus/0"], exit_code=3)
    with board.store.tx() as conn:
        job_id = next(j["id"] for j in board.store.jobs(conn, states=(FAILED,)) if j["name"] == "web-1")
        board.store.update_job(conn, job_id, reason="task 0 exited with code 3", startedAt=1000.0, finishedAt=1010.0)
    now[0] = 1011.0
    controller.reconcile()  # web-1 ended 10 s after its start: a quick exit, backoff 1 s, over at 1011: web-2
    assert board.http.post("/v1/services/web:load", json={"value": 25},
                           headers=bearer(board.tokens["acme"])).status_code == 200
    now[0] = 1012.0
    controller.reconcile()  # ceil(25 / 10) = 3: web-3, web-4

    d = describe(board, "acme", "services", "web").json()
    assert d["loadReportedAt"] > 0
    assert {k: v for k, v in d.items() if k not in ("spec", "replicaJobs", "loadReportedAt")} == {
        "name": "web", "tenant": "acme", "desired": 3, "replicas": 3, "ready": 0, "terminating": 0, "load": 25.0,
        "lastScaleTime": 1012.0, "restarts": 1, "quickExits": 1, "nextRestartAt": 1011.0, "reason": None,
        "lastExit": {"replica": "web-1", "state": FAILED, "exitCode": 3, "reason": "task 0 exited with code 3",
                     "at": 1010.0}}
    assert (d["spec"]["minReplicas"], d["spec"]["maxReplicas"], d["spec"]["targetLoad"]) == (1, 3, 10.0)
    assert [(j["name"], j["state"], j["attempts"], j["exitCode"], j["nodes"], j["stopReason"]) for j in d["replicaJobs"]] == [
        ("web-4", PENDING, 0, None, [], None), ("web-3", PENDING, 0, None, [], None),
        ("web-2", PENDING, 0, None, [], None), ("web-1", FAILED, 1, 3, ["gpus/0"], None)]
    assert (d["replicaJobs"][3]["startedAt"], d["replicaJobs"][3]["finishedAt"]) == (1000.0, 1010.0)

    board.http.post("/v1/services/web:load", json={"value": 0}, headers=bearer(board.tokens["acme"]))
    for now[0] in (2000.0, 2061.0):  # 60 s (the scale-down delay) after the drop: the newest cancelled first
        controller.reconcile()
    d = describe(board, "acme-viewer", "services", "web").json()
    assert (d["desired"], d["replicas"], d["terminating"]) == (1, 1, 2)
    assert [(j["name"], j["stopReason"]) for j in d["replicaJobs"][:3]] == [
        ("web-4", "scale-down"), ("web-3", "scale-down"), ("web-2", None)]


def test_the_pending_jobs_in_the_engines_order_with_its_reasons(tmp_path):
    """A real reconciler, the `priority` order: acme-late (priority 5) comes before acme-early,
    both held by acme-q's quota, which acme-run fills."""
    board = Board(tmp_path, reasons=lambda names: rec.reasons(names))
    rec = Reconciler(board.store, "priority+best-fit", tmp_path, grace_s=2)
    try:
        board.apply(obj("Job", "acme-run", queue="acme-q", command=SLEEP, resources={"gpu": 2}))
        rec.start()
        deadline = time.monotonic() + 30
        while describe(board, "acme", "queues", "acme-q").json()["running"] != 1:
            assert time.monotonic() < deadline
            time.sleep(0.05)
        board.apply(obj("Job", "acme-early", queue="acme-q", command=SLEEP, resources={"gpu": 1}),
                    obj("Job", "acme-late", queue="acme-q", command=SLEEP, resources={"gpu": 1}, priority=5))
        rec.wake()
        deadline = time.monotonic() + 30
        while True:  # until the engine holds both (a job applied a moment ago is not yet taken in)
            pending = describe(board, "acme", "queues", "acme-q").json()["pendingJobs"]
            if len(pending) == 2 and all(j["reason"] != "not-admitted" for j in pending):
                break
            assert time.monotonic() < deadline, pending
            time.sleep(0.05)
        quota = "queue acme-q uses 2/2 GPUs and the job asks 1 more (no cohort to borrow from)"
        assert [(j["name"], j["reason"], j["message"]) for j in pending] == [
            ("acme-late", "quota", quota), ("acme-early", "quota", quota)]
    finally:
        rec.stop()
        board.close()


def test_the_cli_prints_each_kind_and_its_json(tmp_path):
    proc, url = start_serve(tmp_path / "data", ADMIN)
    runner = CliRunner()

    def cli(*args: str, token: str = ADMIN):
        return runner.invoke(cli_app, list(args), env={"ALTOSTRAT_SERVER": url, "ALTOSTRAT_TOKEN": token})

    sleeper = [sys.executable, "-c", "import time; time.sleep(60)"]
    objects = [obj("Tenant", "team-a"), obj("Tenant", "team-b"),
               obj("Queue", "research", tenant="team-a", quota={"gpu": 1}, cohort="lab", weight=2,
                   budget={"gpuHours": 100, "periodS": 86400}),
               obj("Pool", "local", nodes=1, gpu={"model": "T4", "count": 2}, cpu=8, memoryGib=16, pricePerHour=2),
               obj("Job", "train", queue="research", command=sleeper, resources={"gpu": 1}),
               obj("Job", "waits", queue="research", command=["true"], resources={"gpu": 1}),
               obj("Service", "web", queue="research", command=sleeper, maxReplicas=2, targetLoad=5,
                   resources={"cpu": 0.5})]
    try:
        http = httpx.Client(base_url=url, headers=bearer(ADMIN), timeout=10)
        assert http.post("/v1/objects:batch", json={"objects": objects}).status_code == 200
        deadline = time.monotonic() + 60
        while not (http.get("/v1/queues/research:describe").json()["running"] == 2
                   and http.get("/v1/services/web").json()["status"].get("ready") == 1
                   and http.get("/v1/queues/research:describe").json()["pendingJobs"][0]["reason"] == "quota"):
            assert time.monotonic() < deadline, http.get("/v1/jobs").json()
            time.sleep(0.1)
        other = http.post("/v1/tokens", json={"role": "tenant", "tenant": "team-b"}).json()["token"]

        r = cli("describe", "queue", "research")
        assert r.exit_code == 0, r.output
        lines = r.stdout.splitlines()
        assert lines[:5] == ["Name:      research", "Tenant:    team-a", "Weight:    2", "Quota:     gpu=1",
                             "Used:      1 GPU, 1.5 CPU, 0 GiB"]
        assert lines[5] == "Cohort:    lab: borrowing limit none (no cap); borrowed now 0 GPU, 0 CPU, 0 GiB"
        assert lines[7].startswith("Budget:    100 GPU-hours per 86400 s; spent ")  # what it spent moves on
        assert lines[8:11] == ["Jobs:      2 running, 1 pending", "Pending, in the engine's order:",
                               "#  NAME   REASON  MESSAGE"]
        assert lines[11].split()[:3] == ["0", "waits", "quota"]
        as_json = json.loads(cli("describe", "queues", "research", "-o", "json").stdout)
        assert (as_json["running"], [j["name"] for j in as_json["pendingJobs"]]) == (2, ["waits"])

        lines = cli("describe", "pool", "local").stdout.splitlines()
        assert lines[:5] == ["Name:      local", "Nodes:     1, each 2 x T4, 8 CPU, 16 GiB, 2 USD/h",
                             "Capacity:  2 GPU, 8 CPU, 16 GiB", "Allocated: 1 GPU, 1.5 CPU, 0 GiB (GPU 50 %, CPU 18.8 %)",
                             "Per node:"]
        assert lines[6].split() == ["local/0", "1/2", "1.5/8", "0/16", "0", "2"]
        assert lines[7] == "Jobs:" and [line.split()[0] for line in lines[9:]] == ["train", "web-1"]

        lines = cli("describe", "service", "web").stdout.splitlines()
        assert lines[:4] == ["Name:      web", "Queue:     research (tenant team-a)",
                             "Replicas:  1 ready, 1 active, 1 desired (1 to 2), 0 terminating",
                             "Load:      none reported (5 per replica)"]
        assert lines[-1].split()[:4] == ["web-1", "RUNNING", "1", "local/0"]
        assert json.loads(cli("describe", "services", "web", "-o", "json").stdout)["ready"] == 1

        r = cli("describe", "tenant", "team-a")
        assert r.exit_code == 2 and r.stderr == ("error: describe tenant: jobs, queues, pools and services are "
                                                 "described; use `altostrat get tenant NAME`\n")
        r = cli("describe", "queue", "research", token=other)  # another tenant's: as if it did not exist
        assert r.exit_code == 2 and r.stderr == "error: 404 no Queue named 'research'\n"
        r = cli("describe", "pool", "local", token=other)
        assert r.exit_code == 0 and "train" not in r.stdout and r.stdout.splitlines()[-1] == "none"
    finally:
        proc.terminate()
        proc.wait(timeout=60)
