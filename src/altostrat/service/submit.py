"""The submit endpoints, `POST /v1/objects` and `POST /v1/objects:batch`, as a plain ASGI app in
front of the FastAPI one.

At hundreds of submissions a second, FastAPI's middleware stack, routing and dependency
resolution, and a worker thread per request, cost the server's one interpreter more than the
submission itself (docs/service.md, "Load and benchmarks"). `Submissions` answers these two
paths on the event loop: the token from the store's PrincipalCache (a worker thread reads the
database only for a token not seen yet), the checks in the order the other calls make them
(token 401, Idempotency-Key 422, a writer's role 403, the body 422), and the transaction awaited
from the store's committer thread, which commits requests that arrive together at once. Every
other request goes to the FastAPI app unchanged. Refusals are audited and answered as
FastAPI's calls answer them (calls.py); the two paths' OpenAPI entries are `OPENAPI_PATHS`.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from altostrat.service import calls
from altostrat.service.auth import Forbidden, Principal
from altostrat.service.auth_limit import FailedAuthLimit
from altostrat.service.objects import ObjectError, parse_object
from altostrat.service.observability import Observer
from altostrat.service.store import Store

MAX_KEY = 200  # the longest Idempotency-Key (its column's length)
MAX_BODY = 64 << 20  # a larger body is refused (422 on `body`) before it is read whole
INLINE_BODY = 64 << 10  # a larger body is parsed on a worker thread, so the event loop goes on answering

# (status, body, [(action, target, result)]) of a submission's transaction
Outcome = tuple[int, dict, list[tuple[str, str, str]]]
# what a parsed submission writes (in its transaction), and the {result, object} items it applied
Prepared = tuple[Callable[[Any], Outcome], Callable[[dict], list[dict]]]


class BodyTooLarge(ObjectError):
    def __init__(self) -> None:
        super().__init__([("body", f"larger than {MAX_BODY >> 20} MiB; send the objects in several batches")])


class Disconnected(Exception):
    """The client went away before its body arrived: nobody to answer."""


class Submissions:
    """The ASGI app `serve` runs: the two submit paths here, everything else to `app`."""

    def __init__(self, app, store: Store, wake: Callable[[], None], obs: Observer, auth_limit: FailedAuthLimit) -> None:
        self.app, self.store, self.wake, self.obs, self.auth_limit = app, store, wake, obs, auth_limit
        self.routes: dict[str, Callable[[Principal, Any], Prepared]] = {
            "/v1/objects": self.one, "/v1/objects:batch": self.several}

    async def __call__(self, scope, receive, send) -> None:
        parse = self.routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" else None
        if parse is None:
            return await self.app(scope, receive, send)
        try:
            await self.submit(scope, receive, send, parse)
        except Disconnected:
            pass

    async def submit(self, scope, receive, send, parse: Callable[[Principal, Any], Prepared]) -> None:
        who = None
        try:
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            raw = await _body(receive, headers)
            who = await self.caller(headers.get("authorization"), calls.client_address(scope))
            key = headers.get("idempotency-key")
            if key is not None and len(key) > MAX_KEY:
                raise ObjectError([("header.Idempotency-Key", f"String should have at most {MAX_KEY} characters")])
            who.require_writer()
            _check_json(headers.get("content-type", "application/json"), raw)

            def prepare() -> tuple[Any, Prepared]:
                payload = _json(raw)
                return payload, parse(who, payload)
            payload, (write, applied) = prepare() if len(raw) <= INLINE_BODY else await asyncio.to_thread(prepare)

            status, body, replayed = await asyncio.wrap_future(
                self.store.idempotent(key, who.sha256, [scope["path"], payload], calls.audited(self.store, who, write)))
        except Exception as exc:  # noqa: BLE001  (every refusal and failure is answered, and audited)
            status, body, extra = calls.refusal(exc, "POST", scope["path"])
            refused = [("POST", scope["path"], f"refused {status}")]
            await asyncio.wrap_future(self.store.group.submit(lambda conn: calls.audit(self.store, conn, who, refused)))
            return await _send(send, status, body, extra)
        if not replayed:
            self.wake()
            calls.log_created(self.obs, applied(body))
        await _send(send, status, body, {"Idempotent-Replayed": "true"} if replayed else {})

    async def caller(self, authorization: str | None, address: str) -> Principal:
        """The calling token; one not cached yet is read on a worker thread, off the event loop."""
        if not calls.seen(self.store, authorization):
            return await asyncio.to_thread(calls.caller, self.store, authorization, address, self.auth_limit)
        return calls.caller(self.store, authorization, address, self.auth_limit)

    def one(self, who: Principal, payload: Any) -> Prepared:
        if not isinstance(payload, dict):
            raise ObjectError([("body", "an object must be a mapping with apiVersion, kind, metadata and spec")])
        obj = parse_object(payload)
        scope = who.require_write(obj.kind)

        def write(conn) -> Outcome:
            result, view = self.store.apply(conn, obj, scope)
            return 201 if result == "created" else 200, {"result": result, "object": view}, \
                [("apply", f"{obj.kind}/{obj.metadata.name}", result)]
        return write, lambda body: [body]

    def several(self, who: Principal, payload: Any) -> Prepared:
        if not isinstance(payload, dict) or set(payload) != {"objects"} or not isinstance(payload["objects"], list):
            raise ObjectError([("objects", 'the body is {"objects": [object, ...]}')])
        objs, errors = [], []
        for i, item in enumerate(payload["objects"]):
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

        def write(conn) -> Outcome:
            done = self.store.apply_many(conn, objs, scope)
            return 200, {"results": [{"result": result, "object": view} for result, view in done]}, \
                [("apply", f"{obj.kind}/{obj.metadata.name}", result) for obj, (result, _) in zip(objs, done)]
        return write, lambda body: body["results"]


async def _body(receive, headers: dict[str, str]) -> bytes:
    """The request's body, refused past MAX_BODY (announced or as it arrives)."""
    announced = headers.get("content-length", "")
    if announced.isdigit() and int(announced) > MAX_BODY:  # uvicorn checks it is a number; others may not
        raise BodyTooLarge()
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise Disconnected()
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > MAX_BODY:
            raise BodyTooLarge()
        chunks.append(chunk)
        if not message.get("more_body", False):
            return b"".join(chunks)


def _check_json(content_type: str, raw: bytes) -> None:
    ctype = content_type.partition(";")[0].strip().lower()
    if ctype != "application/json" and not (ctype.startswith("application/") and ctype.endswith("+json")):
        raise ObjectError([("body", f"send JSON (Content-Type: application/json), not {ctype or 'nothing'}")])
    if not raw:
        raise ObjectError([("body", "Field required")])


def _json(raw: bytes) -> Any:
    try:
        return json.loads(raw)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError; too deep a nesting recurses
        raise ObjectError([("body", f"JSON decode error: {exc}")]) from None


async def _send(send, status: int, body: dict, headers: dict[str, str]) -> None:
    """A JSON answer, encoded as starlette's JSONResponse encodes one."""
    content = json.dumps(body, ensure_ascii=False, allow_nan=False, separators=(",", ":")).encode()
    await send({"type": "http.response.start", "status": status,
                "headers": [(b"content-length", str(len(content)).encode()), (b"content-type", b"application/json"),
                            *((k.lower().encode(), v.encode()) for k, v in headers.items())]})
    await send({"type": "http.response.body", "body": content})


def _operation(summary: str, operation_id: str, schema: dict) -> dict:
    header = {"anyOf": [{"type": "string"}, {"type": "null"}]}
    return {"post": {
        "tags": ["objects"], "summary": summary, "operationId": operation_id,
        "parameters": [{"name": "authorization", "in": "header", "required": False,
                        "schema": {**header, "title": "Authorization"}},
                       {"name": "Idempotency-Key", "in": "header", "required": False,
                        "schema": {**header, "maxLength": MAX_KEY, "title": "Idempotency-Key"}}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": schema}}},
        "responses": {"200": {"description": "Applied (201: one object created)",
                              "content": {"application/json": {"schema": {}}}},
                      "422": {"description": "Validation Error", "content": {"application/json": {
                          "schema": {"$ref": "#/components/schemas/HTTPValidationError"}}}}}}}


OPENAPI_PATHS = {
    "/v1/objects": _operation("Create or update one object", "apply_v1_objects_post", {
        "type": "object", "additionalProperties": True, "description": "an altostrat/v1 object"}),
    "/v1/objects:batch": _operation("Apply several objects in one transaction", "apply_batch_v1_objects_batch_post", {
        "type": "object", "required": ["objects"], "additionalProperties": False,
        "properties": {"objects": {"type": "array", "items": {"type": "object", "additionalProperties": True}}},
        "description": '{"objects": [...]}'}),
}
