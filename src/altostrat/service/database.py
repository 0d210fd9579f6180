"""The database under the store: its URL, its engine, its migrations, the change sequence, and
rows written many at once.

SQLite (the default, a file in the data directory) runs in WAL mode with synchronous=FULL,
so a committed transaction survives a crash or power loss, and every transaction starts
with BEGIN IMMEDIATE, so that read-check-write sequences (apply, idempotency keys) are
serialised. PostgreSQL (`postgresql://…`, driven by psycopg 3) gets the same guarantee from a
transaction-level advisory lock taken at BEGIN (_postgres_engine says why).
"""

from __future__ import annotations

import json
from pathlib import Path

from sqlalchemy import Connection, create_engine, event, insert, update
from sqlalchemy.engine import Engine as SqlEngine
from sqlalchemy.engine import make_url
from sqlalchemy.exc import ArgumentError

from altostrat.service import tables as t

DB_FILE = "altostrat.db"
# the key of the advisory lock that serialises PostgreSQL transactions (any constant: one per database)
PG_LOCK_KEY = int.from_bytes(b"altostra", "big") >> 1
READ_ONLY = "altostrat_read_only"  # the execution option of Store.read's connections
SEQ = "altostrat_change_seq"  # Connection.info key of the transaction's change_seq
SEQ_AT_BEGIN = "altostrat_seq_at_begin"  # PostgreSQL: the execution option of _postgres_engine's BEGIN
# the advisory lock, then the next change_seq (the UPDATE needs the locked row of the CTE first)
_NEXT_SEQ_SQL = (f"WITH locked AS MATERIALIZED (SELECT pg_advisory_xact_lock({PG_LOCK_KEY})) "
                 "UPDATE change_seq SET seq = seq + 1 FROM locked WHERE id = 1 RETURNING seq")
_NEXT_SEQ = update(t.change_seq).where(t.change_seq.c.id == 1).values(seq=t.change_seq.c.seq + 1) \
    .returning(t.change_seq.c.seq)


DB_URLS = "sqlite:///PATH or postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (psycopg 3)"


class DatabaseUnavailable(Exception):
    """The store's database cannot be used (a bad --db, a server that does not answer); the
    message never shows a password."""


def database_url(data_dir: str | Path, db: str | None) -> str:
    """The SQLAlchemy URL of the store: `db`, else SQLite in `data_dir`. A plain `postgresql://`
    (or `postgres://`) URL means psycopg 3, the driver installed with altostrat (SQLAlchemy's
    default would be psycopg2)."""
    if db:
        try:
            url = make_url(db)
        except ArgumentError:
            raise DatabaseUnavailable(f"--db is not a database URL; use {DB_URLS}") from None
        if url.drivername in ("postgresql", "postgres"):
            url = url.set(drivername="postgresql+psycopg")
        if url.get_backend_name() not in ("sqlite", "postgresql") or url.drivername.startswith("postgresql+") \
                and url.drivername != "postgresql+psycopg":
            raise DatabaseUnavailable(f"--db: {url.drivername} is not supported; the store runs on {DB_URLS}")
        return url.render_as_string(hide_password=False)
    path = Path(data_dir).resolve()
    path.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{path / DB_FILE}"


def make_engine(url: str) -> SqlEngine:
    if not url.startswith("sqlite"):
        return _postgres_engine(url)
    engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})

    @event.listens_for(engine, "connect")
    def _connect(dbapi, _record) -> None:
        dbapi.isolation_level = None  # the driver must not open transactions itself: BEGIN below does
        cur = dbapi.cursor()
        for pragma in ("journal_mode=WAL", "synchronous=FULL", "foreign_keys=ON"):
            cur.execute(f"PRAGMA {pragma}")
        cur.close()

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.info.pop(SEQ, None)  # a transaction's change_seq is its own, taken at its first write
        # a read (Store.read) defers its lock: in WAL mode readers never wait for the writer
        conn.exec_driver_sql("BEGIN" if conn.get_execution_options().get(READ_ONLY) else "BEGIN IMMEDIATE")

    return engine


def _postgres_engine(url: str) -> SqlEngine:
    """Every transaction first takes one transaction-level advisory lock, so transactions run
    one at a time, as SQLite's BEGIN IMMEDIATE makes them: a read-check-write sequence (apply,
    an idempotency key, a job's transition) never interleaves with another. SERIALIZABLE would
    allow more concurrency but aborts conflicting transactions, and every `with store.tx()`
    block (some followed by effects such as spawning a process) would then need a retry loop.
    PostgreSQL releases the lock at COMMIT or ROLLBACK, and when a client dies (its connection
    closes). lock_timeout bounds the wait as SQLite's busy timeout does (30 s).

    Once the schema is migrated (Store.upgrade sets SEQ_AT_BEGIN), the statement that takes the
    lock also takes the transaction's change_seq: one round trip instead of two, and still the
    advisory lock first, so that it serialises with a Store that takes only the lock."""
    engine = create_engine(url, pool_pre_ping=True, connect_args={"options": "-c lock_timeout=30s"})

    @event.listens_for(engine, "begin")
    def _begin(conn) -> None:
        conn.info.pop(SEQ, None)
        options = conn.get_execution_options()
        if options.get(READ_ONLY):  # a read (Store.read) sees what is committed
            return
        if options.get(SEQ_AT_BEGIN):
            conn.info[SEQ] = conn.exec_driver_sql(_NEXT_SEQ_SQL).scalar_one()
        else:
            conn.exec_driver_sql(f"SELECT pg_advisory_xact_lock({PG_LOCK_KEY})")

    return engine


def upgrade(engine: SqlEngine, revision: str = "head") -> None:
    """Run the alembic migrations up to `revision` (what `altostrat db upgrade` does)."""
    from alembic import command
    from alembic.config import Config

    cfg = Config()
    cfg.set_main_option("script_location", str(Path(__file__).parent / "migrations"))
    with engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.upgrade(cfg, revision)


def insert_rows(conn: Connection, table, rows: list[dict]) -> None:
    """New rows of `table` (every column but its id), as one statement: an executemany on SQLite,
    a COPY on PostgreSQL, which loads rows several times faster than one INSERT each (and
    costs this process less too)."""
    if conn.dialect.name == "sqlite":
        conn.execute(insert(table), rows)
        return
    columns = [c for c in table.c if c.name != "id"]
    json_columns = [isinstance(c.type, t.JSON) for c in columns]
    with conn.connection.driver_connection.cursor().copy(
            f"COPY {table.name} ({', '.join(c.name for c in columns)}) FROM STDIN") as copy:
        for row in rows:
            copy.write_row([json.dumps(row[c.name]) if is_json else row[c.name]
                            for c, is_json in zip(columns, json_columns)])


def change_seq(conn: Connection) -> int:
    """The change sequence number of this transaction's writes: the next one, taken at its first
    write (and again after a savepoint that took it was rolled back; Store forgets it then)."""
    seq = conn.info.get(SEQ)
    if seq is None:
        seq = conn.info[SEQ] = conn.execute(_NEXT_SEQ).scalar_one()
    return seq
