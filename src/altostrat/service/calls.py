"""What every API call shares, whichever layer answers it (FastAPI's routes in api.py, or the
submit endpoints in submit.py): the caller's token, the audit of what it did, the log of the
Jobs it created, and the answer to a refusal or a failure."""

from __future__ import annotations

import logging
import math
from collections.abc import Callable
from typing import Any

from altostrat.service.auth import Forbidden, Principal
from altostrat.service.auth_limit import FailedAuthLimit, TooManyFailures
from altostrat.service.objects import ObjectError
from altostrat.service.observability import Observer
from altostrat.service.store import Store, StoreError, sha256

log = logging.getLogger("altostrat.api")
MUTATING = ("POST", "PUT", "PATCH", "DELETE")
INTERNAL_ERROR = {"detail": "internal error; the server log has the details"}


class Unauthorized(Exception):
    """No live token came with the call (401)."""


def client_address(scope: dict) -> str:
    """The client's address (uvicorn's, after a trusted proxy's X-Forwarded-For)."""
    return scope["client"][0] if scope.get("client") else ""


def bearer(authorization: str | None) -> str:
    """The token of an `Authorization: Bearer TOKEN` header ("" for none)."""
    scheme, _, token = (authorization or "").partition(" ")
    return token.strip() if scheme.lower() == "bearer" else ""


def seen(store: Store, authorization: str | None) -> bool:
    """Whether the call's token is one the store has already found live (PrincipalCache)."""
    return store.principals.get(sha256(bearer(authorization))) is not None


def caller(store: Store, authorization: str | None, address: str = "", limit: FailedAuthLimit | None = None) -> Principal:
    """The token of an `Authorization: Bearer TOKEN` header, or Unauthorized; with a `limit`, a
    client `address` out of failures gets TooManyFailures unless its token is one already seen."""
    token = bearer(authorization)
    if limit is not None and not seen(store, authorization):
        limit.check(address)
    found = store.principal(token) if token else None
    if found is None:
        if limit is not None:
            limit.failed(address)
        raise Unauthorized()
    return Principal(found["id"], found["name"], found["role"], found["tenant"], found["sha256"])


def audit(store: Store, conn, who: Principal | None, records: list[tuple[str, str, str]]) -> None:
    """One audit row per (action, target, result) of `who` (None: a call without a valid token)."""
    if who is None:
        store.audit_many(conn, "anonymous", records)
    else:
        store.audit_many(conn, who.name, records, token_id=who.id, role=who.role)


def audited(store: Store, who: Principal, write: Callable[[Any], tuple[int, dict, list[tuple[str, str, str]]]]):
    """`write(conn) -> (status, body, [(action, target, result)])` as a transaction's function that
    writes those audit rows of `who` in the same transaction and returns (status, body)."""
    def run(conn) -> tuple[int, dict]:
        status, body, records = write(conn)
        audit(store, conn, who, records)
        return status, body
    return run


def log_created(obs: Observer, applied: list[dict]) -> None:
    """A `submitted` record for each Job among `applied` ({result, object} items) that was created."""
    for item in applied:
        job = item["object"]
        if item["result"] == "created" and job["kind"] == "Job":
            obs.job("submitted", job["metadata"]["name"], job["spec"]["queue"], "submitted",
                    tenant=job["metadata"]["tenant"])


def refusal(exc: Exception, method: str, path: str) -> tuple[int, dict, dict[str, str]]:
    """(status, JSON body, extra headers) that answer `exc`; anything unforeseen is a bug: a 500
    without its traceback, which goes to the server log."""
    if isinstance(exc, Unauthorized):
        return 401, {"detail": "missing or invalid token; send Authorization: Bearer TOKEN"}, \
            {"WWW-Authenticate": "Bearer"}
    if isinstance(exc, TooManyFailures):
        return 429, {"detail": f"too many calls without a valid token from this address; {exc}"}, \
            {"Retry-After": str(math.ceil(exc.retry_after_s))}
    if isinstance(exc, Forbidden):
        return 403, {"detail": str(exc)}, {}
    if isinstance(exc, ObjectError):
        return 422, {"detail": [{"field": f, "message": m} for f, m in exc.errors]}, {}
    if isinstance(exc, StoreError):
        return exc.status_code, {"detail": str(exc)}, {}
    log.error("internal error on %s %s", method, path, exc_info=exc)
    return 500, INTERNAL_ERROR, {}
