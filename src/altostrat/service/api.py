"""The REST API under /v1 (FastAPI; OpenAPI at /openapi.json).

Every call but /healthz needs `Authorization: Bearer TOKEN` (401 otherwise); what the token's
role may do and see is auth.py's (403 for a call the role never makes, 404 for another
tenant's object). Malformed input is a 422 whose `detail` lists `{field, message}`; no input
yields a 500 or a traceback. Every mutating call is written to the audit table with the
token's id and role: a successful one in the same transaction as its change, a refused one
(401, 403, 404, 409, 422) after the refusal. POST calls on objects accept an
`Idempotency-Key` header: a retry with the same key gets the first response again.
"""


import json
import logging
import time
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

from fastapi import Body, Depends, FastAPI, Header, Query, Request
from fastapi import Path as PathParam
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse, Response, StreamingResponse
from prometheus_client import CONTENT_TYPE_LATEST

from altostrat.service import watch
from altostrat.service.auth import Forbidden, Principal, parse_token_request
from altostrat.service.dashboard import Reasons, add_dashboard
from altostrat.service.describe import Snapshot, describe_job
from altostrat.service.describe_objects import add_describe
from altostrat.service.objects import KINDS, ObjectError, field_path, kind_of, parse_object
from altostrat.service.observability import Observer
from altostrat.service.services import LoadReport, record_load
from altostrat.service.store import Store, StoreError

log = logging.getLogger("altostrat.api")
MUTATING = ("POST", "PUT", "PATCH", "DELETE")
LOG_TAIL_BYTES = 1 << 20  # the most of one task's log a call returns (its end)
_WHO, _AUDITED = "altostrat.who", "altostrat.audited"
MAX_KEY = 200  # the longest Idempotency-Key (its column's length)


class Unauthorized(Exception):
    pass


MAX_ID = 2**63 - 1  # the largest integer SQLite (and PostgreSQL's bigint) stores: larger ids are a 422, not a 500

def create_app(store: Store, wake: Callable[[], None] = lambda: None,
               healthy: Callable[[], str | None] = lambda: None,
               explain: Callable[[str], Snapshot | None] | None = None, observer: Observer | None = None,
               reasons: Reasons | None = None, watch_max_s: float = watch.MAX_TIMEOUT_S) -> FastAPI:
    """`wake` tells the reconciler the store changed; `healthy` returns why it is not, or None;
    `explain` is Reconciler.explain (None: no engine to ask, and describe answers 503);
    `reasons` is Reconciler.reasons, the dashboard's pending reasons (None: shown as unknown);
    `observer` holds the metrics `/metrics` serves (the reconciler's; without one, the store's alone);
    `watch_max_s` caps a watch's timeoutSeconds."""
    obs = observer if observer is not None else Observer(store)
    app = FastAPI(title="Altostrat control plane", version="v1",
                  description="Declarative objects (Tenant, Queue, Pool, Job, Service) run by the simulator's engine.")

    def authenticate(scope: dict, authorization: str | None) -> Principal:
        """The calling token (401 without a live one), noted in the request for its audit."""
        scheme, _, token = (authorization or "").partition(" ")
        found = store.principal(token.strip()) if scheme.lower() == "bearer" and token.strip() else None
        if found is None:
            raise Unauthorized()
        who = Principal(found["id"], found["name"], found["role"], found["tenant"], found["sha256"])
        scope[_WHO] = who
        return who

    def principal(request: Request, authorization: Annotated[str | None, Header()] = None) -> Principal:
        return authenticate(request.scope, authorization)

    Who = Annotated[Principal, Depends(principal)]
    IdemKey = Annotated[str | None, Header(alias="Idempotency-Key", max_length=MAX_KEY)]

    def audit(conn, who: Principal | None, action: str, target: str, result: str) -> None:
        audit_all(conn, who, [(action, target, result)])

    def audit_all(conn, who: Principal | None, records: list[tuple[str, str, str]]) -> None:
        if who is None:
            store.audit_many(conn, "anonymous", records)
        else:
            store.audit_many(conn, who.name, records, token_id=who.id, role=who.role)

    def mutate(request: Request, who: Principal, key: str | None, payload: object, fn,
               applied: Callable[[dict], list[dict]] = lambda body: []) -> JSONResponse:
        """Run `fn(conn) -> (status, body, [(action, target, result)])` once per idempotency key,
        its audit rows in its transaction; once committed (not on a replay), log the Jobs among
        `applied(body)` (`{result, object}` items) that it created."""
        def run(conn):
            status, body, records = fn(conn)
            audit_all(conn, who, records)
            return status, body

        status, body, replayed = store.idempotent(key, who.sha256, [request.url.path, payload], run)
        request.scope[_AUDITED] = True
        if not replayed:
            wake()
            for item in applied(body):
                job = item["object"]
                if item["result"] == "created" and job["kind"] == "Job":
                    obs.job("submitted", job["metadata"]["name"], job["spec"]["queue"], "submitted",
                            tenant=job["metadata"]["tenant"])
        return JSONResponse(body, status_code=status, headers={"Idempotent-Replayed": "true"} if replayed else None)

    class AuditRefusals:
        """Audits a mutating call its endpoint did not, before its answer leaves. A plain ASGI
        middleware: starlette's @app.middleware("http") costs a task and a stream per request."""

        def __init__(self, app) -> None:
            self.app = app

        async def __call__(self, scope, receive, send) -> None:
            if scope["type"] != "http" or scope["method"] not in MUTATING:
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

    @app.exception_handler(Unauthorized)
    async def _401(request: Request, exc: Unauthorized):
        return JSONResponse({"detail": "missing or invalid token; send Authorization: Bearer TOKEN"},
                            status_code=401, headers={"WWW-Authenticate": "Bearer"})

    @app.exception_handler(Forbidden)
    async def _403(request: Request, exc: Forbidden):
        return JSONResponse({"detail": str(exc)}, status_code=403)

    @app.exception_handler(ObjectError)
    async def _422(request: Request, exc: ObjectError):
        return JSONResponse({"detail": [{"field": f, "message": m} for f, m in exc.errors]}, status_code=422)

    @app.exception_handler(RequestValidationError)
    async def _422_request(request: Request, exc: RequestValidationError):
        return JSONResponse({"detail": [{"field": field_path(tuple(e["loc"])), "message": e["msg"]}
                                        for e in exc.errors()]}, status_code=422)

    @app.exception_handler(StoreError)
    async def _store(request: Request, exc: StoreError):
        return JSONResponse({"detail": str(exc)}, status_code=exc.status_code)

    @app.exception_handler(Exception)
    async def _500(request: Request, exc: Exception):  # a bug: logged here, never shown to the client
        log.exception("internal error on %s %s", request.method, request.url.path)
        return JSONResponse({"detail": "internal error; the server log has the details"}, status_code=500)

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

    @app.post("/v1/tokens", tags=["tokens"], status_code=201,
              summary="Create a token (admin); the response is the only place its secret ever appears")
    def create_token(
        request: Request, who: Who,
        body: Annotated[dict[str, Any], Body(description='{"role": ..., "tenant": ..., "name": ...}')] = ...,
    ) -> JSONResponse:
        who.require_admin("creating tokens")
        req = parse_token_request(body)
        # no Idempotency-Key here: a stored response would keep the secret in the database
        with store.tx() as conn:
            token_id, token = store.create_token(conn, req.role, req.tenant, req.name)
            audit(conn, who, "token create", f"Token/{token_id}", f"created ({req.role}"
                  + (f" of {req.tenant})" if req.tenant else ")"))
        request.scope[_AUDITED] = True
        return JSONResponse({"id": token_id, "token": token, "role": req.role, "tenant": req.tenant},
                            status_code=201, headers={"Cache-Control": "no-store"})  # no proxy keeps the secret

    @app.delete("/v1/tokens/{token_id}", tags=["tokens"], summary="Revoke a token (admin)")
    def revoke_token(request: Request, token_id: Annotated[int, PathParam(ge=1, le=MAX_ID)], who: Who) -> dict:
        who.require_admin("revoking tokens")
        with store.tx() as conn:
            view = store.revoke_token(conn, token_id)
            audit(conn, who, "token revoke", f"Token/{token_id}", "revoked")
        request.scope[_AUDITED] = True
        return {"result": "revoked", "token": view}

    # The submit endpoints take their body raw and do all their work in one worker thread: the
    # token lookup, the body parsed once, the transaction. Resolved by FastAPI, the token (a
    # dependency) and the body would cost a thread hop and a validation pass more per request.
    Authorization = Annotated[str | None, Header()]
    RawKey = Annotated[str | None, Header(alias="Idempotency-Key", json_schema_extra={"maxLength": MAX_KEY})]

    def submission(request: Request, authorization: str | None, key: str | None, raw: bytes) -> tuple[Principal, Any]:
        """The caller and the JSON body of a submission, checked in the order the other calls
        are: the token (401), the Idempotency-Key (422), a writer's role (403), the body (422)."""
        who = authenticate(request.scope, authorization)
        if key is not None and len(key) > MAX_KEY:
            raise ObjectError([("header.Idempotency-Key", f"String should have at most {MAX_KEY} characters")])
        who.require_writer()
        ctype = request.headers.get("content-type", "application/json").partition(";")[0].strip().lower()
        if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
            raise ObjectError([("body", f"send JSON (Content-Type: application/json), not {ctype or 'nothing'}")])
        if not raw:
            raise ObjectError([("body", "Field required")])
        try:
            return who, json.loads(raw)
        except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError; too deep a nesting recurses
            raise ObjectError([("body", f"JSON decode error: {exc}")]) from None

    @app.post("/v1/objects", tags=["objects"], summary="Create or update one object",
              openapi_extra=_json_body({"type": "object", "additionalProperties": True,
                                        "description": "an altostrat/v1 object"}))
    async def apply(request: Request, authorization: Authorization = None, key: RawKey = None) -> JSONResponse:
        return await run_in_threadpool(apply_one, request, authorization, key, await request.body())

    def apply_one(request: Request, authorization: str | None, key: str | None, raw: bytes) -> JSONResponse:
        who, body = submission(request, authorization, key, raw)
        if not isinstance(body, dict):
            raise ObjectError([("body", "an object must be a mapping with apiVersion, kind, metadata and spec")])
        obj = parse_object(body)
        scope = who.require_write(obj.kind)

        def fn(conn):
            result, view = store.apply(conn, obj, scope)
            return 201 if result == "created" else 200, {"result": result, "object": view}, \
                [("apply", f"{obj.kind}/{obj.metadata.name}", result)]
        return mutate(request, who, key, body, fn, lambda done: [done])

    @app.post("/v1/objects:batch", tags=["objects"], summary="Apply several objects in one transaction",
              openapi_extra=_json_body({"type": "object", "required": ["objects"], "additionalProperties": False,
                                        "properties": {"objects": {"type": "array", "items": {
                                            "type": "object", "additionalProperties": True}}},
                                        "description": '{"objects": [...]}'}))
    async def apply_batch(request: Request, authorization: Authorization = None, key: RawKey = None) -> JSONResponse:
        return await run_in_threadpool(apply_several, request, authorization, key, await request.body())

    def apply_several(request: Request, authorization: str | None, key: str | None, raw: bytes) -> JSONResponse:
        who, body = submission(request, authorization, key, raw)
        if not isinstance(body, dict) or set(body) != {"objects"} or not isinstance(body["objects"], list):
            raise ObjectError([("objects", 'the body is {"objects": [object, ...]}')])
        objs, errors = [], []
        for i, item in enumerate(body["objects"]):
            try:
                objs.append(parse_object(item))
            except ObjectError as exc:
                errors += [(f"objects[{i}].{f}" if f else f"objects[{i}]", m) for f, m in exc.errors]
        if errors:
            raise ObjectError(errors)
        scope = None
        for i, obj in enumerate(objs):
            try:
                scope = who.require_write(obj.kind)
            except Forbidden as exc:
                raise Forbidden(f"objects[{i}] ({obj.kind} {obj.metadata.name}): {exc}") from None

        def fn(conn):
            done = store.apply_many(conn, objs, scope)
            return 200, {"results": [{"result": result, "object": view} for result, view in done]}, \
                [("apply", f"{obj.kind}/{obj.metadata.name}", result) for obj, (result, _) in zip(objs, done)]
        return mutate(request, who, key, body, fn, lambda done: done["results"])

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

    return app


def _json_body(schema: dict) -> dict:
    """The OpenAPI of a JSON request body that an endpoint reads itself."""
    return {"requestBody": {"required": True, "content": {"application/json": {"schema": schema}}}}


def _tail(path: Path) -> str:
    try:
        with open(path, "rb") as f:
            f.seek(0, 2)
            size = f.tell()
            f.seek(max(0, size - LOG_TAIL_BYTES))
            return f.read().decode(errors="replace")
    except FileNotFoundError:
        return ""
