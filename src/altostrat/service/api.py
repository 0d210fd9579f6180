"""The REST API under /v1 (FastAPI; OpenAPI at /openapi.json). The two submit endpoints answer in
front of FastAPI (submit.py), on the same checks, errors and audit (calls.py).

Every call but /healthz needs `Authorization: Bearer TOKEN` (401 otherwise); what the token's
role may do and see is auth.py's (403 for a call the role never makes, 404 for another
tenant's object). Malformed input is a 422 whose `detail` lists `{field, message}`; no input
yields a 500 or a traceback. Every mutating call is written to the audit table with the
token's id and role: a successful one in the same transaction as its change, a refused one
(401, 403, 404, 409, 422) after the refusal. POST calls on objects accept an
`Idempotency-Key` header: a retry with the same key gets the first response again.
"""


import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.openapi.utils import get_openapi
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from altostrat.service import calls, submit, watch
from altostrat.service.auth import Forbidden, Principal, parse_token_request
from altostrat.service.auth_limit import FailedAuthLimit, TooManyFailures
from altostrat.service.dashboard import Reasons, add_dashboard
from altostrat.service.describe import Snapshot, describe_job
from altostrat.service.describe_objects import add_describe
from altostrat.service.objects import KINDS, ObjectError, field_path, kind_of
from altostrat.service.observability import Observer
from altostrat.service.services import LoadReport, record_load
from altostrat.service.store import Store, StoreError

LOG_TAIL_BYTES = 1 << 20  # the most of one task's log a call returns (its end)
_WHO, _AUDITED = "altostrat.who", "altostrat.audited"


MAX_AUDIT_PAGE = 1000  # audit records in one GET /v1/audit
MAX_ID = 2**63 - 1  # the largest integer SQLite (and PostgreSQL's bigint) stores: larger ids are a 422, not a 500

def create_app(store: Store, wake: Callable[[], None] = lambda: None,
               healthy: Callable[[], str | None] = lambda: None,
               explain: Callable[[str], Snapshot | None] | None = None, observer: Observer | None = None,
               reasons: Reasons | None = None, watch_max_s: float = watch.MAX_TIMEOUT_S,
               auth_limit: FailedAuthLimit | None = None) -> submit.Submissions:
    """`wake` tells the reconciler the store changed; `healthy` returns why it is not, or None;
    `explain` is Reconciler.explain (None: no engine to ask, and describe answers 503);
    `reasons` is Reconciler.reasons, the dashboard's pending reasons (None: shown as unknown);
    `observer` holds the metrics `/metrics` serves (the reconciler's; without one, the store's alone);
    `watch_max_s` caps a watch's timeoutSeconds; `auth_limit` bounds failed authentication per
    client address (default: auth_limit's BURST and PER_S). The ASGI app returned serves the submit endpoints
    itself and hands every other request to the FastAPI app (`.app`)."""
    obs = observer if observer is not None else Observer(store)
    auth_limit = auth_limit if auth_limit is not None else FailedAuthLimit()
    app = FastAPI(title="Altostrat control plane", version="v1",
                  description="Declarative objects (Tenant, Queue, Pool, Job, Service) run by the simulator's engine.")

    def principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
        """The calling token (401 without a live one), noted in the request for its audit."""
        who = request.scope[_WHO] = calls.caller(store, authorization, calls.client_address(request.scope), auth_limit)
        return who

    Who = Annotated[Principal, Depends(principal)]
    IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=submit.MAX_KEY)]

    def audit(conn, who: Principal | None, action: str, target: str, result: str) -> None:
        calls.audit(store, conn, who, [(action, target, result)])

    def mutate(request: Request, who: Principal, key: str | None, payload: object, fn) -> JSONResponse:
        """Run `fn(conn) -> (status, body, [(action, target, result)])` once per idempotency key,
        its audit rows in its transaction, and wake the reconciler once it is committed (not on a replay)."""
        status, body, replayed = store.idempotent(key, who.sha256, [request.url.path, payload],
                                                  calls.audited(store, who, fn)).result()
        request.scope[_AUDITED] = True
        if not replayed:
            wake()
        return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"} if replayed else None)

    class AuditRefusals:
        """Audits a mutating call its endpoint did not, before its answer leaves. A plain ASGI
        middleware: starlette's @app.middleware("http") costs a task and a stream per request."""

        def __init__(self, app) -> None:
            self.app = app

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] != "http" or scope["method"] not in calls.MUTATING:
                return await self.app(scope, receive, send)

            async def send_audited(message) -> None:
                if message["type"] == "http.response.start" and not scope.get(_AUDITED):
                    def record():
                        with store.tx() as conn:
                            audit(conn, scope.get(_WHO), scope["method"], Request(scope).url.path,
                                  f"refused {message['status']}")
                    await run_in_threadpool(record)
                await send(message)
            await self.app(scope, receive, send_audited)

    app.add_middleware(AuditRefusals)

    async def refused(request: Request, exc: Exception) -> JSONResponse:
        status, body, headers = calls.refusal(exc, request.method, request.url.path)
        return JSONResponse(body, status_code=status, headers=headers)

    for error in (calls.Unauthorized, TooManyFailures, Forbidden, ObjectError, StoreError, Exception):
        app.add_exception_handler(error, refused)

    @app.exception_handler(RequestValidationError)
    async def _422_request(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": [{"field": field_path(tuple(e["loc"])), "message": e["msg"]}
                                        for e in exc.errors()]}, status_code=422)

    def _kind(text: str) -> str:
        kind = kind_of(text)
        if kind is None:
            raise ObjectError([("kind", f"unknown kind {text!r}; one of: {', '.join(k.lower() + 's' for k in KINDS)}")])
        return kind

    @app.get("/healthz", tags=["meta"])
    def healthz() -> JSONResponse:
        problem = healthy()
        return JSONResponse({"ok": problem is None, "problem": problem}, status_code=200 if problem is None else 503)

    @app.get("/metrics", tags=["meta"], response_class=PlainTextResponse,
             summary="Prometheus metrics: every series, or a tenant's token only its own queues' and the shared pools'")
    def metrics(who: Who) -> Response:
        queues = None
        if who.tenant is not None:
            with store.tx() as conn:
                queues = {q["metadata"]["name"] for q in store.list(conn, "Queue", who.tenant)}
        return Response(obs.exposition(queues), media_type=CONTENT_TYPE_LATEST)

    # declared before /v1/{kind} and /v1/{kind}/{name}, whose patterns their paths also match
    add_dashboard(app, store, Who, reasons)
    add_describe(app, store, Who, reasons)

    @app.get("/v1/whoami", tags=["tokens"], summary="The calling token: its id, name, role and tenant")
    def whoami(who: Who) -> dict:
        return who.view()

    @app.get("/v1/jobs/{name}:describe", tags=["jobs"],
             summary="A job's attempts and nodes; when pending, why, its queue position and estimated start")
    def describe(name: str, who: Who) -> JSONResponse:
        with store.tx() as conn:
            view = store.get(conn, "Job", name, who.scope("Job"))
        snap = None
        if view["status"]["state"] == "PENDING":
            if explain is None:
                return JSONResponse({"detail": "no reconciler runs in this process to explain a pending job"},
                                    status_code=503)
            try:
                snap = explain(name)
            except TimeoutError:
                return JSONResponse({"detail": "the reconciler did not answer; see /healthz"}, status_code=503)
        return JSONResponse(describe_job(view, snap, time.time()))

    @app.get("/v1/tokens", tags=["tokens"], summary="Every token, live and revoked, without its secret (admin)")
    def list_tokens(who: Who) -> dict:
        who.require_admin("listing tokens")
        with store.tx() as conn:
            return {"items": store.token_views(conn)}

    @app.get("/v1/audit", tags=["tokens"],
             summary="The audit log: every mutating call, allowed or refused, oldest first (admin, cluster viewer)")
    def read_audit(who: Who, after: Annotated[int, Query(ge=0, le=MAX_ID, description="only records after this id")] = 0,
                   limit: Annotated[int, Query(ge=1, le=MAX_AUDIT_PAGE)] = 100) -> dict:
        who.require_cluster_reader("reading the audit log")
        items = [_audit_view(r) for r in store.audit_rows(after, limit)]
        return {"items": items, "last": items[-1]["id"] if items else after}

    @app.post("/v1/tokens", tags=["tokens"], status_code=201,
              summary="Create a token (admin); the response is the only place its secret ever appears")
    def create_token(
        request: Request, who: Who,
        body: Annotated[dict[str, Any], Body(description='{"role": ..., "tenant": ..., "name": ..., "expiresInS": ...}')] = ...,
    ) -> JSONResponse:
        who.require_admin("creating tokens")
        req = parse_token_request(body)
        # no Idempotency-Key here: a stored response would keep the secret in the database
        with store.tx() as conn:
            expires_at = None if req.expires_in_s is None else time.time() + req.expires_in_s
            token_id, token = store.create_token(conn, req.role, req.tenant, req.name, expires_at)
            audit(conn, who, "token create", f"Token/{token_id}", f"created ({req.role}"
                  + (f" of {req.tenant})" if req.tenant else ")"))
        request.scope[_AUDITED] = True
        return JSONResponse({"id": token_id, "token": token, "role": req.role, "tenant": req.tenant,
                             "expiresAt": expires_at},
                            status_code=201, headers={"Cache-Control": "no-store"})  # no proxy keeps the secret

    @app.delete("/v1/tokens/{token_id}", tags=["tokens"], summary="Revoke a token (admin)")
    def revoke_token(request: Request, token_id: Annotated[int, PathParam(ge=1, le=MAX_ID)], who: Who) -> dict:
        who.require_admin("revoking tokens")
        with store.tx() as conn:
            view = store.revoke_token(conn, token_id)
            audit(conn, who, "token revoke", f"Token/{token_id}", "revoked")
        request.scope[_AUDITED] = True
        return {"result": "revoked", "token": view}

    @app.post("/v1/services/{name}:load", tags=["services"],
              summary="Report a Service's current load; it runs ceil(load / targetLoad) replicas, within its bounds")
    def report_load(request: Request, name: str, who: Who,
                    body: Annotated[dict[str, Any], Body(description='{"value": load}')], key: IdemKey = None) -> JSONResponse:
        scope = who.require_write("Service")
        value = LoadReport.parse(body).value

        def fn(conn):
            view = record_load(store, conn, name, value, scope)
            return 200, {"result": "recorded", "object": view}, [("load", f"Service/{name}", f"recorded {value:g}")]
        return mutate(request, who, key, body, fn)

    @app.get("/v1/{kind}", tags=["objects"],
             summary="List the objects of a kind; with watch=true, a stream of their changes (NDJSON)")
    async def list_objects(
        request: Request, kind: str, who: Who,
        watch_: Annotated[bool, Query(alias="watch", description="stream changes as NDJSON instead")] = False,
        resource_version: Annotated[float | None, Query(alias="resourceVersion", ge=0, le=1e12, description=(
            "watch: only changes after this cursor (a list's or an event's resourceVersion); "
            "without it the stream starts with every object"))] = None,
        timeout_seconds: Annotated[float, Query(alias="timeoutSeconds", gt=0, le=watch.MAX_TIMEOUT_S,
                                                description="watch: end the stream after this long")]
        = watch.DEFAULT_TIMEOUT_S,
        max_events: Annotated[int, Query(alias="maxEvents", ge=1, le=1_000_000,
                                         description="watch: end the stream once this many events are sent")]
        = watch.DEFAULT_MAX_EVENTS,
        name: Annotated[str | None, Query(min_length=1, max_length=253, description="only the object of this name")] = None,
    ) -> Response:
        kind = _kind(kind)
        scope = who.scope(kind)
        if watch_:
            lines = watch.events(store, kind, scope, name, resource_version, min(timeout_seconds, watch_max_s),
                                 max_events, request.is_disconnected)
            return StreamingResponse(lines, media_type="application/x-ndjson")

        def read() -> list[dict]:
            with store.tx() as conn:
                return store.list(conn, kind, scope)
        items = [o for o in await run_in_threadpool(read) if name is None or o["metadata"]["name"] == name]
        return JSONResponse({"items": items, "resourceVersion": watch.cursor(items)})

    @app.get("/v1/{kind}/{name}", tags=["objects"], summary="One object, with its status")
    def get_object(kind: str, name: str, who: Who) -> dict:
        kind = _kind(kind)
        with store.tx() as conn:
            return store.get(conn, kind, name, who.scope(kind))

    @app.delete("/v1/{kind}/{name}", tags=["objects"], summary="Delete an object")
    def delete_object(request: Request, kind: str, name: str, who: Who) -> JSONResponse:
        kind = _kind(kind)
        scope = who.require_write(kind)

        def fn(conn):
            store.delete(conn, kind, name, scope)
            return 200, {"result": "deleted", "kind": kind, "name": name}, [("delete", f"{kind}/{name}", "deleted")]
        response = mutate(request, who, None, None, fn)
        if kind == "Queue":
            obs.forget_queue(name)
        return response

    @app.post("/v1/jobs/{name}:cancel", tags=["jobs"], summary="Cancel a job (its tasks get the checkpoint signal)")
    def cancel(request: Request, name: str, who: Who, key: IdemKey = None) -> JSONResponse:
        scope = who.require_write("Job")

        def fn(conn):
            view = store.request_cancel(conn, name, scope)
            return 202, {"result": "cancelling", "object": view}, [("cancel", f"Job/{name}", "cancelling")]
        return mutate(request, who, key, None, fn)

    @app.get("/v1/jobs/{name}/logs", tags=["jobs"], response_class=PlainTextResponse,
             summary="The job's task logs (stdout and stderr) of one attempt, the latest by default")
    def logs(name: str, who: Who, attempt: Annotated[int | None, Query(ge=1, le=MAX_ID)] = None,
             task: Annotated[int | None, Query(ge=0, le=MAX_ID)] = None) -> PlainTextResponse:
        with store.tx() as conn:
            attempt, paths = store.log_paths(conn, name, attempt, who.scope("Job"))
        chosen = [(t, p) for t, p in paths if task is None or t == task]
        if not chosen:
            raise ObjectError([("attempt" if task is None else "task", f"job {name} has no such attempt or task")])
        if len(chosen) == 1:
            return PlainTextResponse(_tail(Path(chosen[0][1])))
        return PlainTextResponse("".join(f"==> attempt {attempt} task {t} <==\n{_tail(Path(p))}" for t, p in chosen))

    def openapi() -> dict:
        """FastAPI's schema, with the submit endpoints that answer in front of it."""
        if app.openapi_schema is None:
            schema = get_openapi(title=app.title, version=app.version, description=app.description, routes=app.routes)
            schema["paths"].update(submit.OPENAPI_PATHS)
            app.openapi_schema = schema
        return app.openapi_schema
    app.openapi = openapi
    return submit.Submissions(app, store, wake, obs, auth_limit)


def _audit_view(r: dict) -> dict:
    return {"id": r["id"], "at": r["at"], "who": r["who"], "tokenId": r["token_id"], "role": r["role"],
            "action": r["action"], "target": r["target"], "result": r["result"]}


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
