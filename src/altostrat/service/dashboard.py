"""The web dashboard: one page (static/dashboard.html, .js, .css: package data, no build step)
and `GET /v1/dashboard`, the summary it draws every few seconds.

The page and its script hold no data and are served to anyone; the summary needs a token like
every `/v1` call and shows what that token sees (auth.py): a tenant's token its own queues and
jobs, and every pool (the shared capacity, whose allocation is a sum that names nobody). A
pending job's reason is the engine's (describe.pending_reason, asked of the reconciler thread
as `describe` does, but for all the jobs shown at once and without the estimate); a job the
engine does not hold says why (retry backoff, not yet taken in), as `describe` does.
"""

import time
from collections.abc import Callable
from importlib.resources import files
from typing import Annotated

from fastapi import FastAPI, Query
from fastapi.responses import RedirectResponse, Response
from pydantic import Field

from altostrat.service.auth import Principal
from altostrat.service.describe import not_in_engine
from altostrat.service.objects import QuotaSpec
from altostrat.service.store import PENDING, RUNNING, Store, pool_of
from altostrat.spec.schema import Model

# job name -> (reason, message) for the jobs of a set of names the engine holds pending, in its order
Reasons = Callable[[set[str]], dict[str, tuple[str, str]]]
STATE_ORDER = {RUNNING: 0, PENDING: 1}  # the active jobs first, then the ended ones
STATIC = {"dashboard.js": "text/javascript", "dashboard.css": "text/css"}
# the page runs only its own script and style, and is never framed
HEADERS = {"Content-Security-Policy": "default-src 'self'; frame-ancestors 'none'; form-action 'none'",
           "X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"}


class Amounts(Model):
    gpu: float
    cpu: float
    memory_gib: float


class QueueRow(Model):
    name: str
    tenant: str
    quota: QuotaSpec
    weight: float
    pending: int = Field(description="its jobs PENDING")
    running: int = Field(description="its jobs RUNNING")
    used: Amounts = Field(description="what its RUNNING jobs hold, all tasks: what the quota bounds")


class JobRow(Model):
    name: str
    tenant: str | None
    queue: str
    state: str
    reason: str | None = Field(description="a PENDING job's reason (docs/service.md, Describe); else null")
    message: str | None = Field(description="a PENDING job's numbers behind its reason; else the job's status reason")
    nodes: list[str] = Field(description="the nodes of its latest attempt (none while PENDING)")
    attempts: int
    exit_code: int | None
    created_at: float
    age_s: float = Field(description="seconds since it was submitted")


class PoolRow(Model):
    name: str
    nodes: int
    gpu_model: str | None
    capacity: Amounts
    allocated: Amounts = Field(description="what the tasks alive on its nodes hold (starting, running, stopping)")
    gpu_utilization: float | None = Field(description="allocated GPUs in % of its GPUs; null without GPUs")
    cpu_utilization: float = Field(description="allocated vCPUs in % of its vCPUs")


class Dashboard(Model):
    generated_at: float
    role: str
    tenant: str | None = Field(description="the tenant the token sees, or null: every tenant")
    queues: list[QueueRow]
    jobs: list[JobRow] = Field(description="running, then pending, then ended jobs, newest first in each; "
                                           "at most `limit`")
    jobs_total: int = Field(description="every job the token sees")
    pools: list[PoolRow]


def _percent(part: float, whole: float) -> float:
    return round(100.0 * part / whole, 1)


def total_amounts(resources: list[dict], times: list[int] | None = None) -> Amounts:
    """The sum of job `resources` specs (per task), each `times` over (its tasks)."""
    times = times or [1] * len(resources)
    return Amounts(**{field: sum(r[key] * n for r, n in zip(resources, times)) for field, key in
                      (("gpu", "gpu"), ("cpu", "cpu"), ("memory_gib", "memoryGib"))})


def summarize(store: Store, who: Principal, reasons: Reasons | None, limit: int, wall: float) -> Dashboard:
    with store.tx() as conn:
        queues = store.list(conn, "Queue", who.scope("Queue"))
        jobs = store.list(conn, "Job", who.scope("Job"))
        pools = store.list(conn, "Pool")
        live = store.live_tasks(conn)  # every tenant's: a pool's allocation is one sum
        per_task = {job_id: store.job(conn, job_id)["spec"]["resources"] for job_id in {r["job_id"] for r in live}}
    return Dashboard(generated_at=wall, role=who.role, tenant=who.tenant, queues=_queues(queues, jobs),
                     jobs=_jobs(jobs, reasons, limit, wall), jobs_total=len(jobs),
                     pools=pool_rows(pools, [(task["node"], per_task[task["job_id"]]) for task in live]))


def _queues(queues: list[dict], jobs: list[dict]) -> list[QueueRow]:
    rows = []
    for q in queues:
        mine = [j for j in jobs if j["spec"]["queue"] == q["metadata"]["name"]]
        running = [j["spec"] for j in mine if j["status"]["state"] == RUNNING]
        rows.append(QueueRow(name=q["metadata"]["name"], tenant=q["spec"]["tenant"],
                             quota=QuotaSpec.model_validate(q["spec"]["quota"]), weight=q["spec"]["weight"],
                             pending=sum(j["status"]["state"] == PENDING for j in mine), running=len(running),
                             used=total_amounts([s["resources"] for s in running], [s["tasks"] for s in running])))
    return rows


def explain_pending(pending: list[dict], reasons: Reasons | None, wall: float) -> dict[str, tuple[str, str]]:
    """Job name -> (reason, message) of PENDING Job views: first those the engine holds, in its
    order, then the others (retry backoff, not yet taken in) in the order given; all `unknown`
    when there is no reconciler to ask or it does not answer."""
    engine_says, unknown = None, "no reconciler runs in this process"
    if pending and reasons is not None:
        try:
            engine_says = reasons({j["metadata"]["name"] for j in pending})
        except TimeoutError:
            unknown = "the reconciler did not answer; see /healthz"
    if engine_says is None:
        return {j["metadata"]["name"]: ("unknown", unknown) for j in pending}
    return {**engine_says, **{j["metadata"]["name"]: not_in_engine(j["status"], wall)[:2] for j in pending
                              if j["metadata"]["name"] not in engine_says}}


def _jobs(jobs: list[dict], reasons: Reasons | None, limit: int, wall: float) -> list[JobRow]:
    shown = sorted(jobs, key=lambda j: (STATE_ORDER.get(j["status"]["state"], 2), -j["metadata"]["createdAt"]))[:limit]
    explained = explain_pending([j for j in shown if j["status"]["state"] == PENDING], reasons, wall)
    rows = []
    for j in shown:
        status, name = j["status"], j["metadata"]["name"]
        reason, message = explained.get(name, (None, status.get("reason")))
        latest = max((t["attempt"] for t in status["tasks"]), default=0)
        nodes = [] if status["state"] == PENDING else list(dict.fromkeys(
            t["node"] for t in status["tasks"] if t["attempt"] == latest and t["node"]))
        rows.append(JobRow(name=name, tenant=j["metadata"].get("tenant"), queue=j["spec"]["queue"],
                           state=status["state"], reason=reason, message=message, nodes=nodes,
                           attempts=status.get("attempts", 0), exit_code=status.get("exitCode"),
                           created_at=j["metadata"]["createdAt"],
                           age_s=round(max(0.0, wall - j["metadata"]["createdAt"]), 1)))
    return rows


def pool_rows(pools: list[dict], tasks: list[tuple[str, dict]]) -> list[PoolRow]:
    """`tasks`: (node, the job's per-task resources) of every task alive."""
    rows = []
    for p in pools:
        spec, name = p["spec"], p["metadata"]["name"]
        gpu = spec.get("gpu")
        n = spec["nodes"]
        cap = Amounts(gpu=n * gpu["count"] if gpu else 0, cpu=n * spec["cpu"], memory_gib=n * spec["memoryGib"])
        held = total_amounts([res for node, res in tasks if pool_of(node) == name])
        rows.append(PoolRow(name=name, nodes=n, gpu_model=gpu["model"] if gpu else None, capacity=cap, allocated=held,
                            gpu_utilization=_percent(held.gpu, cap.gpu) if cap.gpu else None,
                            cpu_utilization=_percent(held.cpu, cap.cpu)))
    return rows


def add_dashboard(app: FastAPI, store: Store, who_dependency, reasons: Reasons | None) -> None:
    """Register `/`, `/ui` (the page and its two files) and `GET /v1/dashboard` on `app`;
    `who_dependency` is the API's token check, `reasons` Reconciler.reasons (None: no engine).
    FastAPI reads `who_dependency` from the route's annotations at run time, which is why this
    module does without `from __future__ import annotations`."""
    static = files("altostrat.service") / "static"

    def serve_file(name: str, media: str) -> Callable[[], Response]:
        body = (static / name).read_text(encoding="utf-8")
        return lambda: Response(body, media_type=media, headers=HEADERS)

    @app.get("/", include_in_schema=False)
    def root() -> RedirectResponse:
        return RedirectResponse("/ui")

    app.get("/ui", include_in_schema=False)(serve_file("dashboard.html", "text/html"))
    for name, media in STATIC.items():
        app.get(f"/ui/{name}", include_in_schema=False)(serve_file(name, media))

    @app.get("/v1/dashboard", tags=["dashboard"], response_model=Dashboard,
             summary="Queues, jobs (with pending reasons) and pools as the calling token sees them")
    def dashboard(who: who_dependency,  # type: ignore[valid-type]
                  limit: Annotated[int, Query(ge=1, le=1000, description="the most jobs listed")] = 200) -> Dashboard:
        return summarize(store, who, reasons, limit, time.time())
