"""Who may do what: the roles of API tokens and the objects each token sees.

    admin   everything: every object, and the tokens themselves
    tenant  bound to one Tenant: sees its Tenant, its Queues and their Jobs and Services (and
            every Pool, the shared capacity), and applies, cancels and deletes those Jobs and
            Services (and reports their load)
    viewer  reads only: bound to one Tenant (sees what that tenant sees) or, created without
            --tenant, cluster-wide (sees everything)

Tenants, Queues and Pools are changed by admins only: a Queue carries the quota and weight
that bound its tenant, so a tenant that could change them would lift its own limits. Another
tenant's object is invisible, exactly as if it did not exist (404 with the same message), so
that its name does not leak; a call the role may never make is a 403.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import Field, ValidationError

from altostrat.service.objects import MAX_NAME, ObjectError, field_path
from altostrat.spec.schema import Model

ADMIN, TENANT, VIEWER = "admin", "tenant", "viewer"
ROLES = (ADMIN, TENANT, VIEWER)
TENANT_WRITES = ("Job", "Service")  # the kinds a tenant token changes (its own)
MAX_TOKEN_LIFE_S = 10 * 365 * 86_400  # the longest expiresInS: ten years


class Forbidden(Exception):
    """The token's role may not make this call (403)."""


@dataclass(frozen=True, slots=True)
class Principal:
    id: int
    name: str
    role: str
    tenant: str | None
    sha256: str

    def scope(self, kind: str) -> str | None:
        """The tenant whose objects of `kind` this token sees; None: every one."""
        return None if self.tenant is None or kind == "Pool" else self.tenant

    def require_admin(self, what: str) -> None:
        if self.role != ADMIN:
            raise Forbidden(f"{what} needs an admin token (this one is {self.describe()})")

    def require_cluster_reader(self, what: str) -> None:
        """An admin, or a viewer bound to no tenant: who may see every tenant's activity."""
        if self.role != ADMIN and not (self.role == VIEWER and self.tenant is None):
            raise Forbidden(f"{what} needs an admin token or a viewer of every tenant (this one is {self.describe()})")

    def require_writer(self) -> None:
        """Checked before a change's body is parsed: a viewer hears 403 whatever it sent."""
        if self.role == VIEWER:
            raise Forbidden(f"a viewer token only reads (this one is {self.describe()})")

    def require_write(self, kind: str) -> str | None:
        """The scope of a change to an object of `kind`, or Forbidden."""
        self.require_writer()
        if self.role == ADMIN:
            return None
        if self.role == TENANT and kind in TENANT_WRITES:
            return self.tenant
        raise Forbidden(f"a tenant token changes only Jobs and Services in its own queues; Tenants, Queues and Pools are "
                        f"changed with an admin token (this one is {self.describe()})")

    def describe(self) -> str:
        return f"token {self.id}, {self.role}" + (f" of tenant {self.tenant}" if self.tenant else "")

    def view(self) -> dict:
        return {"id": self.id, "name": self.name, "role": self.role, "tenant": self.tenant}


class TokenRequest(Model):
    role: str = Field(description="admin, tenant or viewer")
    tenant: str | None = Field(default=None, min_length=1, max_length=MAX_NAME,
                               description="required for a tenant token; optional for a viewer")
    name: str | None = Field(default=None, min_length=1, max_length=200, description="a label for the audit log")
    expires_in_s: float | None = Field(default=None, gt=0, le=MAX_TOKEN_LIFE_S, allow_inf_nan=False,
                                       description="seconds from now until it is refused; none: until revoked")


def parse_token_request(raw: Any) -> TokenRequest:
    """Validate a POST /v1/tokens body; ObjectError names each bad field."""
    try:
        req = TokenRequest.model_validate(raw)
    except ValidationError as exc:
        raise ObjectError([(field_path(e["loc"]), e["msg"]) for e in exc.errors()]) from None
    if req.role not in ROLES:
        raise ObjectError([("role", f"{req.role!r} is not a role; one of: {', '.join(ROLES)}")])
    if req.role == TENANT and req.tenant is None:
        raise ObjectError([("tenant", "a tenant token needs the Tenant it acts for")])
    if req.role == ADMIN and req.tenant is not None:
        raise ObjectError([("tenant", "an admin token is not bound to a tenant; leave it out")])
    return req
