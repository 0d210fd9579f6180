"""The store: every object, attempt, audit record and token, in one SQL database
(database.py: its engine, serialised writers, migrations). Callers commit a state transition
before acting on it. The API's writes go through a group commit (group_commit.py); live tokens
are cached (principals.py)."""

from __future__ import annotations

import hashlib
import hmac
import json
import re
import secrets
import time
from collections.abc import Callable, Iterator
from concurrent.futures import Future
from contextlib import contextmanager

from sqlalchemy import Connection, String, and_, any_, bindparam, delete, event, func, insert, or_, select, update
from sqlalchemy.dialects import postgresql, sqlite

from altostrat.service import tables as t
from altostrat.service.database import READ_ONLY, SEQ, SEQ_AT_BEGIN, change_seq, insert_rows, make_engine, upgrade
from altostrat.service.group_commit import WRITTEN, GroupCommit
from altostrat.service.principals import PrincipalCache
from altostrat.service.objects import (MAX_NAME, JobObject, ObjectError, PoolObject, QueueObject, ServiceObject,
                                       TenantObject, _Object)
from altostrat.spec.schema import Metadata

PENDING, RUNNING, SUCCEEDED, FAILED, CANCELLED = "PENDING", "RUNNING", "SUCCEEDED", "FAILED", "CANCELLED"
ACTIVE = (PENDING, RUNNING)
# task rows: STARTING is written before the spawn, RUNNING after it, STOPPING before a signal;
# a task ends EXITED, STOPPED (it exited after being told to stop) or LOST (no exit status known)
STARTING, STOPPING, EXITED, STOPPED, LOST = "STARTING", "STOPPING", "EXITED", "STOPPED", "LOST"
LIVE_TASK = (STARTING, RUNNING, STOPPING)
MAX_INT32 = 2**31 - 1  # ids are integer columns: 32 bits on PostgreSQL
# an object name's pattern (the schema's): a lookup of any other name finds nothing, unasked
NAME_RE = re.compile(next(m.pattern for m in Metadata.model_fields["name"].metadata if hasattr(m, "pattern")))
ANALYZE_MIN = 1000  # new Jobs before PostgreSQL's first ANALYZE of objects by the store (Store._group_created)

# The submit path's statements, built once: building a statement and its cache key costs
# SQLAlchemy more than running it costs SQLite. Values are bound at each execution.
_ROW = select(t.objects).where(t.objects.c.kind == bindparam("kind"), t.objects.c.name == bindparam("name"))
_SCOPED_ROW = _ROW.where(t.objects.c.tenant == bindparam("tenant"))
_TWO_ROWS = select(t.objects).where(or_(_ROW.whereclause, and_(t.objects.c.kind == bindparam("ref_kind"),
                                                               t.objects.c.name == bindparam("ref_name"))))
_TASKS = (select(t.attempts).where(t.attempts.c.job_id.in_(bindparam("ids", expanding=True)))
          .order_by(t.attempts.c.attempt, t.attempts.c.task))
_PRINCIPAL = select(t.tokens).where(t.tokens.c.sha256 == bindparam("sha256"), t.tokens.c.revoked_at.is_(None))
_IDEMPOTENT = select(t.idempotency).where(t.idempotency.c.key == bindparam("key"),
                                          t.idempotency.c.principal == bindparam("principal"))
_INSERT_OBJECT, _INSERT_AUDIT, _INSERT_IDEMPOTENCY = insert(t.objects), insert(t.audit), insert(t.idempotency)


class StoreError(Exception):
    status_code = 400


class NotFound(StoreError):
    status_code = 404


class Conflict(StoreError):
    status_code = 409


def sha256(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def pool_of(node: str) -> str:
    """Node names are POOL/INDEX (a slash never occurs in an object name)."""
    return node.rsplit("/", 1)[0]


class Store:
    def __init__(self, url: str) -> None:
        self.url = url
        self.engine = make_engine(url)
        dialect = sqlite if self.engine.dialect.name == "sqlite" else postgresql
        # (name, id) of the objects of a kind among names: PostgreSQL takes the names as one array
        # (psycopg parses a query's placeholders in Python: 500 of them cost milliseconds)
        named = (t.objects.c.name.in_(bindparam("names", expanding=True)) if dialect is sqlite else
                 t.objects.c.name == any_(bindparam("names", type_=postgresql.ARRAY(String))))
        self._ids_named = select(t.objects.c.name, t.objects.c.id).where(t.objects.c.kind == bindparam("kind"), named)
        # an INSERT that a name in use turns into nothing: it returns the new id, or no row
        self._insert_new = dialect.insert(t.objects).on_conflict_do_nothing(index_elements=["kind", "name"]) \
            .returning(t.objects.c.id)
        # told the rows of the Jobs each committed group created (the reconciler listens: Reconciler)
        self.created: Callable[[list[dict]], None] = lambda rows: None
        self.group = GroupCommit(self.engine, self._group_created)
        self._unanalyzed, self._analyzed = 0, 0  # new Jobs since PostgreSQL last analyzed objects, and then
        self.principals = PrincipalCache()
        # a change_seq taken inside a savepoint rolled back is gone: the next write takes another
        event.listen(self.engine, "rollback_savepoint", lambda conn, name, context: conn.info.pop(SEQ, None))
        # a connection goes back to the pool once its transaction has committed or rolled back
        event.listen(self.engine.pool, "checkin", lambda _dbapi, record: self.principals.settled(record.info))

    def upgrade(self) -> None:
        upgrade(self.engine)
        if self.engine.dialect.name != "sqlite":  # change_seq exists: transactions take it at BEGIN
            self.engine = self.group.engine = self.engine.execution_options(**{SEQ_AT_BEGIN: True})

    @contextmanager
    def tx(self) -> Iterator[Connection]:
        with self.engine.begin() as conn:
            yield conn

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A transaction that only reads: on SQLite it takes no write lock, so it never queues
        behind (or holds up) the writers."""
        with self.engine.connect().execution_options(**{READ_ONLY: True}) as conn, conn.begin():
            yield conn

    def close(self) -> None:
        self.engine.dispose()

    # -- objects ------------------------------------------------------------------------
    def apply(self, conn: Connection, obj: _Object, scope: str | None = None) -> tuple[str, dict]:
        """Create or update one object: ('created' | 'updated' | 'unchanged', its view).

        `scope`: the tenant acting; other tenants' objects are invisible to it (auth.py)."""
        kind, name = obj.kind, obj.metadata.name
        spec = obj.spec.model_dump(mode="json", by_alias=True)
        labels = dict(obj.metadata.labels)
        ref = _reference(obj)
        if kind == "Job" and not obj.spec.depends_on:
            # the common case, a new Job: one INSERT, which a name in use turns into nothing
            values = _new_row(kind, name, _tenant_of(obj, ref, self._referred(conn, ref), scope), spec, labels,
                              time.time(), change_seq(conn))
            inserted = conn.execute(self._insert_new, values).first()
            if inserted is not None:
                values["id"] = inserted[0]
                _written_job(conn, values)
                return "created", _view(values, [])
        elif kind in ("Queue", "Tenant"):
            _forget_referred(conn)
        row, referred = self._row_and_reference(conn, kind, name, ref)
        tenant = _tenant_of(obj, ref, referred, scope)
        if row is not None and scope is not None and row["tenant"] != scope:
            # names are unique across tenants: this says the name is in use, nothing more
            raise Conflict(f"a {kind} named {name!r} exists (names are unique across tenants); choose another name")
        from altostrat.service import dependencies  # here: it reads this module's states
        dependencies.check(conn, obj, tenant, row)
        now = time.time()
        if row is None:
            values = _new_row(kind, name, tenant, spec, labels, now, change_seq(conn))
            values["id"] = conn.execute(_INSERT_OBJECT, values).inserted_primary_key[0]
            if kind == "Job":
                _written_job(conn, values)
            return "created", _view(values, [])
        if row["spec"] == spec and row["labels"] == labels:
            return "unchanged", self._view(conn, kind, name)
        if kind == "Job" and row["state"] != PENDING:
            raise Conflict(f"job {name} is {row['state']}: a started job's spec cannot change; apply it under a new name")
        if kind == "Queue" and row["spec"]["tenant"] != spec["tenant"]:
            raise ObjectError([("spec.tenant", f"a queue cannot move to another tenant (it is {row['spec']['tenant']!r})")])
        if kind == "Pool":
            self._pool_idle(conn, name, "change")
        conn.execute(update(t.objects).where(t.objects.c.id == row["id"]).values(
            spec=spec, labels=labels, tenant=tenant, resource_version=row["resource_version"] + 1, updated_at=now,
            seq=change_seq(conn)))
        return "updated", self._view(conn, kind, name)

    def apply_many(self, conn: Connection, objs: list[_Object], scope: str | None = None) -> list[tuple[str, dict]]:
        """apply() each object in order, with the same results; new Jobs whose Queue exists are
        written by one INSERT per run of them instead of a lookup and an INSERT each. An error
        names the object's index: `objects[i].field`."""
        names = sorted({o.metadata.name for o in objs if isinstance(o, JobObject)})
        taken = set()  # Job names in use; looked up in chunks, below SQLite's limit on bound parameters
        for k in range(0, len(names), 10_000):
            taken.update(conn.execute(self._ids_named, {"kind": "Job", "names": names[k:k + 10_000]}).scalars())
        queues: dict[str, str] = {}  # visible queue -> its tenant, looked up once each
        out: list[tuple[str, dict]] = []
        batch: list[dict] = []

        def flush() -> None:
            if batch:
                insert_rows(conn, t.objects, batch)
                ids = dict(conn.execute(self._ids_named, {"kind": "Job", "names": [v["name"] for v in batch]}).all())
                for values in batch:
                    values["id"] = ids[values["name"]]
                    _written_job(conn, values)
                batch.clear()
        for i, obj in enumerate(objs):
            name = obj.metadata.name
            if isinstance(obj, JobObject) and name not in taken and not obj.spec.depends_on:
                if obj.spec.queue not in queues:
                    queue = self._row(conn, "Queue", obj.spec.queue, scope)
                    if queue is not None:
                        queues[obj.spec.queue] = queue["tenant"]
                if obj.spec.queue in queues:
                    taken.add(name)  # a second object of that name in the batch is an update
                    batch.append(_new_row("Job", name, queues[obj.spec.queue],
                                          obj.spec.model_dump(mode="json", by_alias=True), dict(obj.metadata.labels),
                                          time.time(), change_seq(conn)))
                    out.append(("created", _view(batch[-1], [])))
                    continue
            flush()  # everything before it is written, as apply() in order would have
            try:
                out.append(self.apply(conn, obj, scope))
            except ObjectError as exc:
                raise ObjectError([(f"objects[{i}].{f}", m) for f, m in exc.errors]) from None
            if isinstance(obj, JobObject):
                taken.add(name)
        flush()
        return out

    def _group_created(self, rows: list[dict]) -> None:
        """A group commit created these Jobs. On PostgreSQL, each time the jobs created since the
        last ANALYZE of objects outnumber what was there then (and ANALYZE_MIN), analyze it again:
        until autovacuum does (a minute or more later), a fast-growing table's planner statistics
        say it holds a few rows, and a batch's look-up of its names scans every Job instead of
        using the unique index (170 ms instead of 2 ms at 20,000 jobs)."""
        self.created(rows)
        if self.engine.dialect.name == "sqlite":
            return
        self._unanalyzed += len(rows)
        if self._unanalyzed >= max(ANALYZE_MIN, self._analyzed):
            with self.engine.begin() as conn:
                conn.exec_driver_sql("ANALYZE objects")
            self._analyzed += self._unanalyzed
            self._unanalyzed = 0

    def _referred(self, conn: Connection, ref: tuple[str, str, str]):
        """The row `ref` names, or None; read once per group commit (_Written.referred)."""
        group = conn.info.get(WRITTEN)
        if group is None:
            return self._row(conn, *ref[:2])
        key = ref[:2]
        if key not in group.referred:
            group.referred[key] = self._row(conn, *key)
        return group.referred[key]

    def _row_and_reference(self, conn: Connection, kind: str, name: str, ref: tuple[str, str, str] | None):
        """(the object's row, the row it refers to), each None when missing, read by one SELECT."""
        if ref is None or len(ref[1]) > MAX_NAME or not NAME_RE.match(ref[1]):
            return self._row(conn, kind, name), None
        rows = {(r["kind"], r["name"]): r for r in conn.execute(
            _TWO_ROWS, {"kind": kind, "name": name, "ref_kind": ref[0], "ref_name": ref[1]}).mappings()}
        return rows.get((kind, name)), rows.get(ref[:2])

    def _pool_idle(self, conn: Connection, pool: str, verb: str) -> None:
        busy = conn.execute(select(func.count()).select_from(t.attempts).where(
            t.attempts.c.node.like(f"{pool}/%"), t.attempts.c.state.in_(LIVE_TASK))).scalar_one()
        if busy:
            raise Conflict(f"pool {pool} has {busy} task(s) running; {verb} it once they end (or cancel their jobs)")

    def delete(self, conn: Connection, kind: str, name: str, scope: str | None = None) -> None:
        if kind in ("Queue", "Tenant"):
            _forget_referred(conn)
        row = self._row(conn, kind, name, scope)
        if row is None:
            raise NotFound(f"no {kind} named {name!r}")
        if kind == "Tenant":
            used = self._names(conn, "Queue", t.objects.c.tenant == name)
            if used:
                raise Conflict(f"tenant {name} still has queues ({', '.join(used)}); delete them first")
            # a tenant of the same name created later is someone else: its old tokens must not work
            self.principals.changing(conn)
            conn.execute(update(t.tokens).where(t.tokens.c.tenant == name, t.tokens.c.revoked_at.is_(None))
                         .values(revoked_at=time.time()))
        elif kind == "Queue":
            used = [r["name"] for r in self._rows(conn, "Job", t.objects.c.state.in_(ACTIVE)) if r["spec"]["queue"] == name]
            if used:
                raise Conflict(f"queue {name} still has active jobs ({', '.join(used[:5])}); cancel them first")
            used = [r["name"] for r in self._rows(conn, "Service") if r["spec"]["queue"] == name]
            if used:
                raise Conflict(f"queue {name} still has services ({', '.join(used[:5])}); delete them first")
        elif kind == "Pool":
            self._pool_idle(conn, name, "delete")
        elif row["state"] in ACTIVE:
            raise Conflict(f"job {name} is {row['state']}; cancel it first, then delete it")
        conn.execute(delete(t.attempts).where(t.attempts.c.job_id == row["id"]))
        conn.execute(delete(t.objects).where(t.objects.c.id == row["id"]))

    def request_cancel(self, conn: Connection, name: str, scope: str | None = None) -> dict:
        row = self._row(conn, "Job", name, scope)
        if row is None:
            raise NotFound(f"no Job named {name!r}")
        if row["state"] not in ACTIVE:
            raise Conflict(f"job {name} is already {row['state']}")
        self.update_job(conn, row["id"], cancelRequested=True)
        return self._view(conn, "Job", name)

    def get(self, conn: Connection, kind: str, name: str, scope: str | None = None) -> dict:
        view = self._view(conn, kind, name, scope)
        if view is None:
            raise NotFound(f"no {kind} named {name!r}")
        return view

    def list(self, conn: Connection, kind: str, scope: str | None = None) -> list[dict]:
        rows = self._rows(conn, kind, *(() if scope is None else (t.objects.c.tenant == scope,)))
        tasks = self._tasks(conn, [r["id"] for r in rows]) if kind == "Job" else {}
        return [_view(r, tasks.get(r["id"], [])) for r in rows]

    def _row(self, conn: Connection, kind: str, name: str, scope: str | None = None):
        """The object, or None; with a `scope`, None too when it is another tenant's."""
        if len(name) > MAX_NAME or not NAME_RE.match(name):
            return None  # no object has this name; PostgreSQL would refuse some (a NUL) with an error
        if scope is None:
            return conn.execute(_ROW, {"kind": kind, "name": name}).mappings().first()
        return conn.execute(_SCOPED_ROW, {"kind": kind, "name": name, "tenant": scope}).mappings().first()

    def _rows(self, conn: Connection, kind: str, *where):
        return conn.execute(select(t.objects).where(t.objects.c.kind == kind, *where).order_by(t.objects.c.id)).mappings().all()

    def _names(self, conn: Connection, kind: str, *where) -> list[str]:
        return [r["name"] for r in self._rows(conn, kind, *where)]

    def _view(self, conn: Connection, kind: str, name: str, scope: str | None = None) -> dict | None:
        row = self._row(conn, kind, name, scope)
        if row is None:
            return None
        return _view(row, self._tasks(conn, [row["id"]]).get(row["id"], []) if kind == "Job" else [])

    @staticmethod
    def _tasks(conn: Connection, job_ids: list[int]) -> dict[int, list[dict]]:
        out: dict[int, list[dict]] = {}
        if not job_ids:
            return out
        for r in conn.execute(_TASKS, {"ids": job_ids}).mappings():
            out.setdefault(r["job_id"], []).append(dict(r))
        return out

    # -- what the reconciler reads and writes ---------------------------------------------
    def jobs(self, conn: Connection, states=ACTIVE) -> list[dict]:
        """Jobs in `states`."""
        return [dict(r) for r in self._rows(conn, "Job", t.objects.c.state.in_(states))]

    def job_versions(self, conn: Connection, after: int | None) -> tuple[dict[int, int], int]:
        """(id -> resource_version of the active Jobs written after change `after` (None: all of
        them), the last change among them or `after`): what a read compares with what it has
        seen, without decoding specs."""
        where = [t.objects.c.kind == "Job", t.objects.c.state.in_(ACTIVE)]
        if after is not None:
            where.append(t.objects.c.seq > after)
        versions, last = {}, after or 0
        for job_id, version, seq in conn.execute(select(t.objects.c.id, t.objects.c.resource_version,
                                                        t.objects.c.seq).where(*where)):
            versions[job_id] = version
            last = max(last, seq)
        return versions, last

    def jobs_by_id(self, conn: Connection, ids: list[int]) -> list[dict]:
        out = []
        for k in range(0, len(ids), 10_000):  # below SQLite's limit on bound parameters
            out += [dict(r) for r in self._rows(conn, "Job", t.objects.c.id.in_(ids[k:k + 10_000]))]
        return out

    def job_counts(self, conn: Connection) -> dict[tuple[str, str], int]:
        """(queue, state) -> how many Jobs, counted by the database."""
        queue = t.objects.c.spec["queue"].as_string()
        rows = conn.execute(select(queue, t.objects.c.state, func.count()).where(t.objects.c.kind == "Job")
                            .group_by(queue, t.objects.c.state)).all()
        return {(q, state): n for q, state, n in rows}

    def specs(self, conn: Connection, kind: str) -> dict[str, dict]:
        return {r["name"]: r["spec"] for r in self._rows(conn, kind)}

    def pool_signature(self, conn: Connection) -> tuple:
        return tuple(conn.execute(select(t.objects.c.name, t.objects.c.resource_version)
                                  .where(t.objects.c.kind == "Pool").order_by(t.objects.c.name)).all())

    def update_job(self, conn: Connection, job_id: int, state: str | None = None, **status) -> None:
        """Merge `status` keys into a job's status (a None value removes the key); set its state."""
        row = conn.execute(select(t.objects.c.status, t.objects.c.state, t.objects.c.resource_version)
                           .where(t.objects.c.id == job_id)).first()
        merged = {**row.status, **status}
        merged = {k: v for k, v in merged.items() if v is not None}
        conn.execute(update(t.objects).where(t.objects.c.id == job_id).values(
            state=state or row.state, status=merged, resource_version=row.resource_version + 1, updated_at=time.time(),
            seq=change_seq(conn)))

    def add_tasks(self, conn: Connection, rows: list[dict]) -> list[int]:
        return [conn.execute(insert(t.attempts).values(**r)).inserted_primary_key[0] for r in rows]

    def update_task(self, conn: Connection, task_id: int, **cols) -> None:
        conn.execute(update(t.attempts).where(t.attempts.c.id == task_id).values(**cols))

    def job(self, conn: Connection, job_id: int) -> dict:
        return dict(conn.execute(select(t.objects).where(t.objects.c.id == job_id)).mappings().one())

    def attempt_tasks(self, conn: Connection, job_id: int, attempt: int) -> list[dict]:
        return [r for r in self._tasks(conn, [job_id]).get(job_id, []) if r["attempt"] == attempt]

    def log_paths(self, conn: Connection, name: str, attempt: int | None,
                  scope: str | None = None) -> tuple[int, list[tuple[int, str]]]:
        """(attempt, [(task, log path)]) of a job's attempt, the latest when `attempt` is None."""
        row = self._row(conn, "Job", name, scope)
        if row is None:
            raise NotFound(f"no Job named {name!r}")
        tasks = self._tasks(conn, [row["id"]]).get(row["id"], [])
        attempt = attempt or max((r["attempt"] for r in tasks), default=0)
        return attempt, [(r["task"], r["log_path"]) for r in tasks if r["attempt"] == attempt]

    def live_tasks(self, conn: Connection) -> list[dict]:
        return [dict(r) for r in conn.execute(select(t.attempts).where(t.attempts.c.state.in_(LIVE_TASK))).mappings()]

    # -- tokens and audit -------------------------------------------------------------------
    def ensure_admin_token(self, given: str | None) -> str | None:
        """Make sure an admin token exists: `given` (ALTOSTRAT_ADMIN_TOKEN) or, on first start, a
        new random one, returned so that it is printed once. Only its SHA-256 is stored."""
        with self.tx() as conn:
            if given:
                if conn.execute(select(t.tokens.c.id).where(t.tokens.c.sha256 == sha256(given))).first() is None:
                    self._add_token(conn, given, "admin (ALTOSTRAT_ADMIN_TOKEN)", "admin", None)
                return None
            if conn.execute(select(t.tokens.c.id).where(t.tokens.c.role == "admin", t.tokens.c.revoked_at.is_(None))).first():
                return None
            token = secrets.token_urlsafe(32)  # 256 random bits
            self._add_token(conn, token, "admin", "admin", None)
            return token

    @staticmethod
    def _add_token(conn: Connection, token: str, name: str, role: str, tenant: str | None,
                   expires_at: float | None = None) -> int:
        return conn.execute(insert(t.tokens).values(sha256=sha256(token), name=name, role=role, tenant=tenant,
                                                    created_at=time.time(), expires_at=expires_at)
                            ).inserted_primary_key[0]

    def create_token(self, conn: Connection, role: str, tenant: str | None, name: str | None,
                     expires_at: float | None = None) -> tuple[int, str]:
        """A new random token (256 bits), refused from `expires_at` on (None: until revoked): (its
        id, the token). Only its SHA-256 is stored, so the caller shows it once."""
        if tenant is not None and self._row(conn, "Tenant", tenant) is None:
            raise ObjectError([("tenant", f"no Tenant named {tenant!r}; apply it first")])
        token = secrets.token_urlsafe(32)
        name = name or (f"{role} of {tenant}" if tenant else role)
        return self._add_token(conn, token, name, role, tenant, expires_at), token

    def revoke_token(self, conn: Connection, token_id: int) -> dict:
        row = None
        if token_id <= MAX_INT32:  # PostgreSQL refuses a larger one in a query; none is stored
            row = conn.execute(select(t.tokens).where(t.tokens.c.id == token_id)).mappings().first()
        if row is None:
            raise NotFound(f"no token {token_id}")
        if row["revoked_at"] is not None:
            raise Conflict(f"token {token_id} is already revoked")
        if row["role"] == "admin" and conn.execute(select(func.count()).select_from(t.tokens).where(
                t.tokens.c.role == "admin", t.tokens.c.revoked_at.is_(None))).scalar_one() == 1:
            raise Conflict(f"token {token_id} is the last admin token; create another admin token first")
        now = time.time()
        self.principals.changing(conn)
        conn.execute(update(t.tokens).where(t.tokens.c.id == token_id).values(revoked_at=now))
        return _token_view({**row, "revoked_at": now})

    def token_views(self, conn: Connection) -> list[dict]:
        return [_token_view(r) for r in conn.execute(select(t.tokens).order_by(t.tokens.c.id)).mappings()]

    def principal(self, token: str) -> dict | None:
        """The live token whose hash is `token`'s, or None. The lookup is keyed by the hash, so its
        timing can tell only how far a guess's hash matches a stored one, which does not help to
        find a token; the final check is constant-time whatever the database's string comparison.
        Live tokens once found are answered from PrincipalCache; an expired one is refused, cached or not."""
        digest = sha256(token)
        found = self.principals.get(digest)
        if found is None:
            generation = self.principals.generation
            with self.read() as conn:
                row = conn.execute(_PRINCIPAL, {"sha256": digest}).mappings().first()
            if row is None or not hmac.compare_digest(row["sha256"], digest):
                return None
            found = dict(row)
            self.principals.put(digest, found, generation)
        if found["expires_at"] is not None and found["expires_at"] <= time.time():
            return None
        return found

    @staticmethod
    def audit(conn: Connection, who: str, action: str, target: str, result: str,
              token_id: int | None = None, role: str | None = None) -> None:
        Store.audit_many(conn, who, [(action, target, result)], token_id, role)

    @staticmethod
    def audit_many(conn: Connection, who: str, records: list[tuple[str, str, str]],
                   token_id: int | None = None, role: str | None = None) -> None:
        """One audit row per (action, target, result) of one caller, written by one INSERT (in a
        group commit, one INSERT for the whole group, before it commits)."""
        if records:
            now, who = time.time(), _text(who, 200)
            rows = [dict(at=now, who=who, action=_text(action, 300), target=_text(target, 600),
                         result=_text(result, 600), token_id=token_id, role=role) for action, target, result in records]
            group = conn.info.get(WRITTEN)
            if group is not None:
                group.audit.extend(rows)
            else:
                conn.execute(_INSERT_AUDIT, rows)

    def audit_rows(self, after: int = 0, limit: int | None = None) -> list[dict]:
        """The audit records after id `after`, oldest first; at most `limit` of them."""
        if after >= MAX_INT32:  # PostgreSQL refuses a larger one in a query; no id is larger
            return []
        query = select(t.audit).where(t.audit.c.id > after).order_by(t.audit.c.id).limit(limit)
        with self.read() as conn:
            return [dict(r) for r in conn.execute(query).mappings()]

    def idempotent(self, key: str | None, principal: str, request: object,
                   fn: Callable[[Connection], tuple[int, dict]]) -> Future:
        """Run `fn` in a transaction (shared with requests arriving together: GroupCommit); with
        a key, store its response and replay it to a retry.

        The future's result is (status code, body, replayed) once committed. A key reused for a
        different request is a field error; a failed request stores nothing, so its retry runs again.
        """
        digest = sha256(json.dumps(request, sort_keys=True, default=str)) if key is not None else ""

        def once(conn: Connection) -> tuple[int, dict, bool]:
            if key is not None:
                row = conn.execute(_IDEMPOTENT, {"key": key, "principal": principal}).mappings().first()
                if row is not None:
                    if row["request_sha256"] != digest:
                        raise ObjectError([("Idempotency-Key", "already used for a different request; use a new key")])
                    return row["status_code"], row["body"], True
            status, body = fn(conn)
            if key is not None:
                conn.execute(_INSERT_IDEMPOTENCY, dict(key=key, principal=principal, request_sha256=digest,
                                                       status_code=status, body=body, created_at=time.time()))
            return status, body, False

        return self.group.submit(once)


def _reference(obj: _Object) -> tuple[str, str, str] | None:
    """(kind, name, field) of the object `obj` names and must exist: a Queue's Tenant, a Job's or
    a Service's Queue; None for the others."""
    if isinstance(obj, QueueObject):
        return "Tenant", obj.spec.tenant, "spec.tenant"
    if isinstance(obj, (JobObject, ServiceObject)):
        return "Queue", obj.spec.queue, "spec.queue"
    assert isinstance(obj, (TenantObject, PoolObject))
    return None


def _tenant_of(obj: _Object, ref: tuple[str, str, str] | None, referred, scope: str | None) -> str | None:
    """The object's tenant; a missing (or, to `scope`, another tenant's) reference is a field error."""
    if isinstance(obj, TenantObject):
        return obj.metadata.name
    if ref is None:
        return None
    if referred is None or scope is not None and referred["tenant"] != scope:
        raise ObjectError([(ref[2], f"no {ref[0]} named {ref[1]!r}; apply it first")])
    return referred["tenant"]


def _text(s: str, limit: int) -> str:
    """`s` cut to its column's length, NUL written out: PostgreSQL's text holds no NUL (a request's
    path may)."""
    return s.replace("\x00", "\\x00")[:limit]


def _forget_referred(conn: Connection) -> None:
    """A Queue or Tenant changes: its group commit reads the objects it names again (_Written.referred)."""
    group = conn.info.get(WRITTEN)
    if group is not None:
        group.referred.clear()


def _written_job(conn: Connection, row: dict) -> None:
    """Note a new Job's row in its group commit, if it is in one (_Written)."""
    group = conn.info.get(WRITTEN)
    if group is not None:
        group.jobs.append(row)


def _new_row(kind: str, name: str, tenant: str | None, spec: dict, labels: dict, now: float, seq: int) -> dict:
    """The columns of a new object (its id aside)."""
    return dict(kind=kind, name=name, tenant=tenant, spec=spec, labels=labels, state=PENDING if kind == "Job" else None,
                status={}, resource_version=1, created_at=now, updated_at=now, seq=seq)


def _view(row, tasks: list[dict]) -> dict:
    """An object as the API shows it: apiVersion, kind, metadata, spec, status."""
    status = dict(row["status"])
    if row["kind"] == "Job":
        status = {"state": row["state"], **status, "tasks": [_task_view(r) for r in tasks]}
    meta = {"name": row["name"], "labels": row["labels"], "resourceVersion": row["resource_version"],
            "createdAt": row["created_at"], "updatedAt": row["updated_at"]}
    if row["tenant"] is not None:
        meta["tenant"] = row["tenant"]
    return {"apiVersion": "altostrat/v1", "kind": row["kind"], "metadata": meta, "spec": row["spec"], "status": status}


def _token_view(r) -> dict:
    """A token as the API lists it: never its hash."""
    return {"id": r["id"], "name": r["name"], "role": r["role"], "tenant": r["tenant"],
            "createdAt": r["created_at"], "revokedAt": r["revoked_at"], "expiresAt": r["expires_at"]}


def _task_view(r: dict) -> dict:
    return {"attempt": r["attempt"], "task": r["task"], "state": r["state"], "node": r["node"],
            "devices": r["devices"], "pid": r["pid"], "exitCode": r["exit_code"],
            "startedAt": r["started_at"], "endedAt": r["ended_at"]}
