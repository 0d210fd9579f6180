"""`describe queue`, `describe pool` and `describe service`: one object with what the control
plane knows about it now (`describe job` is describe.py's).

    GET /v1/queues/{name}:describe    quota, cohort, budget and what it spent this period,
                                      usage now, its pending jobs in order with their reasons
    GET /v1/pools/{name}:describe     capacity, and per node what is allocated; the jobs on it
    GET /v1/services/{name}:describe  desired and ready replicas, load, recent replicas and their exits

Each is scoped as `GET /v1/{kind}/{name}`: another tenant's Queue or Service is a 404, and a
Pool (every tenant reads the shared capacity) lists only the jobs the token sees, its
allocation summing every tenant's tasks without naming them. The pending reasons are the
dashboard's (explain_pending): the engine's, asked of the reconciler thread for all the
queue's pending jobs at once. FastAPI reads `who_dependency` from the routes' annotations at
run time, which is why this module does without `from __future__ import annotations`.
"""

import math
import time

from fastapi import FastAPI
from pydantic import Field
from sqlalchemy import Connection, or_, select

from altostrat.engine import task_share
from altostrat.resources import MILLI
from altostrat.service import tables as t
from altostrat.service.auth import Principal
from altostrat.service.dashboard import Amounts, Reasons, total_amounts, pool_rows, explain_pending
from altostrat.service.objects import PoolSpec, QuotaSpec, QueueSpec, ServiceSpec
from altostrat.service.services import SERVICE_ID_LABEL
from altostrat.service.store import PENDING, RUNNING, Store, pool_of
from altostrat.service.twin import live_job, pool_nodes
from altostrat.spec.schema import Model


class PendingJob(Model):
    name: str
    reason: str = Field(description="why it waits (docs/service.md, Describe)")
    message: str
    created_at: float


class CohortUse(Model):
    name: str
    quota: QuotaSpec = Field(description="the sum of its queues' quotas (null: a queue of it has none: unlimited)")
    used: Amounts = Field(description="what the RUNNING jobs of all its queues hold")


class BudgetUse(Model):
    period_start: float = Field(description="Unix time the current period began (a multiple of periodS)")
    period_end: float
    spent_usd: float = Field(description="what its tasks cost so far this period, at their Pools' pricePerHour")
    spent_gpu_hours: float


class QueueDescription(Model):
    name: str
    tenant: str
    spec: QueueSpec = Field(description="quota, cohort, borrowingLimit, weight, budget")
    used: Amounts = Field(description="what its RUNNING jobs hold, all tasks: what the quota bounds")
    borrowed: Amounts = Field(description="what it holds beyond its quota (borrowed from its cohort)")
    cohort: CohortUse | None
    budget: BudgetUse | None
    pending: int
    running: int
    pending_jobs: list[PendingJob] = Field(description="first those the engine holds, in the order it looks at "
                                                       "them, then those it does not hold yet (retry backoff, just "
                                                       "submitted)")


class NodeUse(Model):
    name: str
    capacity: Amounts
    allocated: Amounts = Field(description="what the tasks alive on it hold, every tenant's")
    devices: list[int] = Field(description="the GPU devices its live tasks hold")
    tasks: int = Field(description="tasks alive on it (starting, running, stopping), every tenant's")


class PoolTask(Model):
    task: int
    attempt: int
    node: str
    devices: str
    state: str


class PoolJob(Model):
    name: str
    tenant: str | None
    queue: str
    state: str
    tasks: list[PoolTask] = Field(description="its tasks alive on this pool")


class PoolDescription(Model):
    name: str
    spec: PoolSpec
    capacity: Amounts
    allocated: Amounts
    gpu_utilization: float | None
    cpu_utilization: float
    nodes: list[NodeUse]
    jobs: list[PoolJob] = Field(description="the jobs with tasks alive on it that the token sees")


class ReplicaExit(Model):
    replica: str
    state: str
    exit_code: int | None
    reason: str | None
    at: float


class Replica(Model):
    name: str
    state: str
    attempts: int
    exit_code: int | None
    reason: str | None
    stop_reason: str | None = Field(description="why the service stopped it (scale-down, deletion); null: it "
                                                "ended on its own, or runs")
    nodes: list[str] = Field(description="the nodes of its latest attempt")
    created_at: float
    started_at: float | None
    finished_at: float | None


class ServiceDescription(Model):
    name: str
    tenant: str
    spec: ServiceSpec
    desired: int | None = Field(description="null until the controller's first pass")
    replicas: int
    ready: int
    terminating: int
    load: float | None
    load_reported_at: float | None
    last_scale_time: float | None
    restarts: int
    quick_exits: int
    next_restart_at: float | None
    reason: str | None
    last_exit: ReplicaExit | None
    replica_jobs: list[Replica] = Field(description="its replica Jobs, the newest first: the active ones and the "
                                                    "last ended ones kept")


def _sum(jobs: list[dict]) -> Amounts:
    return total_amounts([j["spec"]["resources"] for j in jobs], [j["spec"]["tasks"] for j in jobs])


def _beyond(used: Amounts, quota: dict) -> Amounts:
    return Amounts(**{f: max(0.0, getattr(used, f) - quota[k]) if quota.get(k) is not None else 0.0
                      for f, k in (("gpu", "gpu"), ("cpu", "cpu"), ("memory_gib", "memoryGib"))})


def describe_queue(store: Store, who: Principal, name: str, reasons: Reasons | None, wall: float) -> QueueDescription:
    with store.tx() as conn:
        queue = store.get(conn, "Queue", name, who.scope("Queue"))
        spec = queue["spec"]
        jobs = [j for j in store.list(conn, "Job", spec["tenant"]) if j["spec"]["queue"] == name]
        cohort = None
        if spec.get("cohort"):
            # sums over the cohort's queues, some maybe other tenants': they name none of them
            members = {q: s for q, s in store.specs(conn, "Queue").items() if s.get("cohort") == spec["cohort"]}
            running = [j for j in store.jobs(conn, (RUNNING,)) if j["spec"]["queue"] in members]
            quota = {k: None if any(s["quota"].get(k) is None for s in members.values())
                     else sum(s["quota"][k] for s in members.values()) for k in ("gpu", "cpu", "memoryGib")}
            cohort = CohortUse(name=spec["cohort"], quota=QuotaSpec.model_validate(quota), used=_sum(running))
        budget = _budget_use(conn, store, name, spec["budget"], wall) if spec.get("budget") else None
    pending = [j for j in jobs if j["status"]["state"] == PENDING]
    explained = explain_pending(pending, reasons, wall)
    created = {j["metadata"]["name"]: j["metadata"]["createdAt"] for j in pending}
    used = _sum([j for j in jobs if j["status"]["state"] == RUNNING])
    return QueueDescription(
        name=name, tenant=spec["tenant"], spec=QueueSpec.model_validate(spec), used=used,
        borrowed=_beyond(used, spec["quota"]), cohort=cohort, budget=budget, pending=len(pending),
        running=sum(j["status"]["state"] == RUNNING for j in jobs),
        pending_jobs=[PendingJob(name=n, reason=r, message=m, created_at=created[n])
                      for n, (r, m) in explained.items() if n in created])


def _budget_use(conn: Connection, store: Store, queue: str, budget: dict, wall: float) -> BudgetUse:
    """What the tasks of the queue's jobs spent in the current period up to `wall`, ended and
    running alike, each priced as the budget gate prices it (book_past_runs): its Pool's
    pricePerHour now times the task's dominant share of its node (a Pool since deleted: 0)."""
    period = budget["periodS"]
    start = math.floor(wall / period) * period
    nodes = {n.name: n for n in pool_nodes(store.specs(conn, "Pool"))}
    a = t.attempts.c
    rows = conn.execute(select(a.node, a.started_at, a.ended_at, t.objects.c.spec)
                        .join(t.objects, a.job_id == t.objects.c.id)
                        .where(t.objects.c.kind == "Job", t.objects.c.spec["queue"].as_string() == queue,
                               a.started_at.is_not(None), or_(a.ended_at.is_(None), a.ended_at > start)))
    usd = gpu_hours = 0.0
    for row in rows.mappings():
        seconds = max(0.0, min(wall, row["ended_at"] or wall) - max(start, row["started_at"]))
        job = live_job("", row["spec"], queue, 0.0, -1)
        node = nodes.get(row["node"])
        if node is not None and node.price_per_s:
            usd += node.price_per_s * task_share(node, job) * seconds
        gpu_hours += job.gpu_milli / MILLI / 3600 * seconds
    return BudgetUse(period_start=start, period_end=start + period, spent_usd=usd, spent_gpu_hours=gpu_hours)


def describe_pool(store: Store, who: Principal, name: str) -> PoolDescription:
    with store.tx() as conn:
        pool = store.get(conn, "Pool", name)
        live = [r for r in store.live_tasks(conn) if pool_of(r["node"]) == name]
        jobs = {job_id: store.job(conn, job_id) for job_id in {r["job_id"] for r in live}}
    spec = pool["spec"]
    row = pool_rows([pool], [(r["node"], jobs[r["job_id"]]["spec"]["resources"]) for r in live])[0]
    gpu = spec.get("gpu")
    shape = Amounts(gpu=gpu["count"] if gpu else 0, cpu=spec["cpu"], memory_gib=spec["memoryGib"])
    on: dict[str, list[dict]] = {}
    for r in live:
        on.setdefault(r["node"], []).append(r)
    nodes = []
    for i in range(spec["nodes"]):
        node = f"{name}/{i}"
        mine = on.get(node, [])
        nodes.append(NodeUse(name=node, capacity=shape, allocated=total_amounts([jobs[r["job_id"]]["spec"]["resources"]
                                                                            for r in mine]),
                             devices=sorted({int(d) for r in mine for d in r["devices"].split(",") if d}),
                             tasks=len(mine)))
    scope, seen = who.scope("Job"), []
    for job_id, job in sorted(jobs.items()):
        if scope is None or job["tenant"] == scope:
            seen.append(PoolJob(name=job["name"], tenant=job["tenant"], queue=job["spec"]["queue"], state=job["state"],
                                tasks=[PoolTask(task=r["task"], attempt=r["attempt"], node=r["node"],
                                                devices=r["devices"], state=r["state"])
                                       for r in sorted(live, key=lambda r: (r["attempt"], r["task"]))
                                       if r["job_id"] == job_id]))
    return PoolDescription(name=name, spec=PoolSpec.model_validate(spec), capacity=row.capacity,
                           allocated=row.allocated, gpu_utilization=row.gpu_utilization,
                           cpu_utilization=row.cpu_utilization, nodes=nodes, jobs=seen)


def describe_service(store: Store, who: Principal, name: str) -> ServiceDescription:
    with store.tx() as conn:
        view = store.get(conn, "Service", name, who.scope("Service"))
        tenant = view["metadata"]["tenant"]
        service_id = conn.execute(select(t.objects.c.id).where(t.objects.c.kind == "Service",
                                                                t.objects.c.name == name)).scalar_one()
        # its replicas as services.py owns them: the Jobs of its tenant that carry its id
        replicas = [j for j in store.list(conn, "Job", tenant)
                    if j["metadata"]["labels"].get(SERVICE_ID_LABEL) == str(service_id)]
    status = view["status"]
    rows = []
    for j in reversed(replicas):  # store.list lists in creation (id) order
        st = j["status"]
        latest = max((task["attempt"] for task in st["tasks"]), default=0)
        nodes = list(dict.fromkeys(task["node"] for task in st["tasks"] if task["attempt"] == latest))
        rows.append(Replica(name=j["metadata"]["name"], state=st["state"], attempts=st.get("attempts", 0),
                            exit_code=st.get("exitCode"), reason=st.get("reason"), stop_reason=st.get("stopReason"),
                            nodes=nodes,
                            created_at=j["metadata"]["createdAt"], started_at=st.get("startedAt"),
                            finished_at=st.get("finishedAt")))
    last = status.get("lastExit")
    return ServiceDescription(
        name=name, tenant=tenant, spec=ServiceSpec.model_validate(view["spec"]), desired=status.get("desired"),
        replicas=status.get("replicas", 0), ready=status.get("ready", 0), terminating=status.get("terminating", 0),
        load=status.get("load"), load_reported_at=status.get("loadReportedAt"),
        last_scale_time=status.get("lastScaleTime"), restarts=status.get("restarts", 0),
        quick_exits=status.get("quickExits", 0), next_restart_at=status.get("nextRestartAt"),
        reason=status.get("reason"), last_exit=None if last is None else ReplicaExit.model_validate(last),
        replica_jobs=rows)


def add_describe(app: FastAPI, store: Store, who_dependency, reasons: Reasons | None) -> None:
    """Register the three describe routes on `app` (before `/v1/{kind}/{name}`, whose pattern
    their paths also match); `who_dependency` is the API's token check, `reasons`
    Reconciler.reasons (None: the pending reasons are `unknown`)."""

    @app.get("/v1/queues/{name}:describe", tags=["queues"], response_model=QueueDescription,
             summary="A queue's quota, cohort and budget with what it uses and spent; its pending jobs in order, "
                     "with their reasons")
    def queue(name: str, who: who_dependency) -> QueueDescription:  # type: ignore[valid-type]
        return describe_queue(store, who, name, reasons, time.time())

    @app.get("/v1/pools/{name}:describe", tags=["pools"], response_model=PoolDescription,
             summary="A pool's capacity and, per node, what is allocated; the jobs on it the token sees")
    def pool(name: str, who: who_dependency) -> PoolDescription:  # type: ignore[valid-type]
        return describe_pool(store, who, name)

    @app.get("/v1/services/{name}:describe", tags=["services"], response_model=ServiceDescription,
             summary="A service's desired and ready replicas, its load, and its recent replicas with their exits")
    def service(name: str, who: who_dependency) -> ServiceDescription:  # type: ignore[valid-type]
        return describe_service(store, who, name)
