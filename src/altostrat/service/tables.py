"""The store's schema as SQLAlchemy tables. migrations/ creates it; a test checks they agree."""

from __future__ import annotations

from sqlalchemy import (JSON, BigInteger, Column, Float, ForeignKey, Index, Integer, MetaData, String, Table, Text,
                        UniqueConstraint)

metadata = MetaData()

# Tenants, Queues, Pools and Jobs. `state` is a Job's phase (None for other kinds); `status`
# holds the rest of what the control plane observed; `resource_version` grows on every write.
objects = Table(
    "objects", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("kind", String(16), nullable=False),
    Column("name", String(253), nullable=False),
    Column("tenant", String(253), nullable=True),
    Column("spec", JSON, nullable=False),
    Column("labels", JSON, nullable=False),
    Column("state", String(16), nullable=True),
    Column("status", JSON, nullable=False),
    Column("resource_version", Integer, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("updated_at", Float, nullable=False),
    # the change_seq of the transaction that wrote it last (0004): what the reconciler reads from
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), nullable=False, server_default="0"),
    UniqueConstraint("kind", "name", name="uq_objects_kind_name"),
)
Index("ix_objects_kind_state", objects.c.kind, objects.c.state)
Index("ix_objects_kind_seq", objects.c.kind, objects.c.seq)

# One row: the last change sequence number. Each transaction that writes objects takes the next
# one; writers are serialised, so the numbers grow in commit order.
change_seq = Table(
    "change_seq", metadata,
    Column("id", Integer, primary_key=True, autoincrement=False),
    Column("seq", BigInteger().with_variant(Integer(), "sqlite"), nullable=False),
)

# One row per task of each attempt. A row is written (state STARTING) and committed before its
# process is spawned, so that no process ever runs unrecorded.
attempts = Table(
    "attempts", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("job_id", Integer, ForeignKey("objects.id", ondelete="CASCADE"), nullable=False),
    Column("attempt", Integer, nullable=False),
    Column("task", Integer, nullable=False),
    Column("state", String(16), nullable=False),
    Column("node", String(300), nullable=False),
    Column("devices", String(200), nullable=False),
    Column("pid", Integer, nullable=True),
    # /proc start time (clock ticks since boot), so a reused pid is never mistaken; 64 bits (0003;
    # SQLite's INTEGER is 64 bits already)
    Column("proc_start", BigInteger().with_variant(Integer(), "sqlite"), nullable=True),
    Column("exit_code", Integer, nullable=True),
    Column("log_path", Text, nullable=False),
    Column("started_at", Float, nullable=True),
    Column("ended_at", Float, nullable=True),
    UniqueConstraint("job_id", "attempt", "task", name="uq_attempts_job_attempt_task"),
)

audit = Table(
    "audit", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("at", Float, nullable=False),
    Column("who", String(200), nullable=False),
    Column("action", String(300), nullable=False),
    Column("target", String(600), nullable=False),
    Column("result", String(600), nullable=False),
    # the token that made the call and its role (None: no valid token); tokens are revoked, never deleted
    Column("token_id", Integer, nullable=True),
    Column("role", String(16), nullable=True),
)

# API tokens, stored only as SHA-256 hashes. role: admin | tenant | viewer; `tenant` binds a
# tenant token (always) or a viewer (optionally) to one Tenant.
tokens = Table(
    "tokens", metadata,
    Column("id", Integer, primary_key=True, autoincrement=True),
    Column("sha256", String(64), nullable=False, unique=True),
    Column("name", String(200), nullable=False),
    Column("role", String(16), nullable=False),
    Column("tenant", String(253), nullable=True),
    Column("created_at", Float, nullable=False),
    Column("revoked_at", Float, nullable=True),
    Column("expires_at", Float, nullable=True),  # refused from then on (0005); None: until revoked
)

# The first response to each Idempotency-Key, replayed to a retry of the same request.
idempotency = Table(
    "idempotency", metadata,
    Column("key", String(200), primary_key=True),
    Column("principal", String(64), primary_key=True),
    Column("request_sha256", String(64), nullable=False),
    Column("status_code", Integer, nullable=False),
    Column("body", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
)
