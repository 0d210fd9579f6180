"""`altostrat db upgrade` and `serve` with `--db postgresql://…`, as a user runs them, against a
real PostgreSQL 15 server (tests/pg.py); and their one-line errors, which never show a password."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pg
import pytest
from sqlalchemy import create_engine, inspect, text
from alembic.script import ScriptDirectory
from test_serve import free_port

from altostrat.service import migrations, tables
from altostrat.service.database import database_url

PASSWORD = "pg-Secret-7"  # the test server trusts loopback: a password is accepted and unused


def cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "altostrat.cli", *args], capture_output=True, text=True, timeout=120)


def test_db_upgrade_on_postgresql_migrates_once_and_hides_the_password(pg_url):
    url = pg_url.replace("postgresql://postgres@", f"postgresql://postgres:{PASSWORD}@")
    shown = pg_url.replace("postgresql://postgres@", "postgresql+psycopg://postgres:***@")
    for _ in range(2):  # the second run finds the schema current and changes nothing
        r = cli("db", "upgrade", "--db", url)
        assert (r.returncode, r.stdout, r.stderr) == (0, f"{shown}: schema at the latest revision\n", "")
    engine = create_engine(database_url(".", pg_url))
    try:
        with engine.connect() as conn:
            head = ScriptDirectory(str(Path(migrations.__file__).parent)).get_current_head()
            assert conn.execute(text("SELECT version_num FROM alembic_version")).scalars().all() == [head]
            assert sorted(inspect(conn).get_table_names()) == sorted([*tables.metadata.tables, "alembic_version"])
            types = {c["name"]: str(c["type"]) for c in inspect(conn).get_columns("attempts")}
            assert (types["proc_start"], types["started_at"]) == ("BIGINT", "DOUBLE PRECISION")
    finally:
        engine.dispose()


@pytest.mark.parametrize("verb", [("db", "upgrade"), ("serve", "--port", "1")])
def test_a_database_that_cannot_be_used_is_a_one_line_error(verb, tmp_path):
    port = free_port()  # nothing listens there
    cases = [
        (f"postgresql://postgres:{PASSWORD}@127.0.0.1:{port}/x",
         f"error: cannot open postgresql+psycopg://postgres:***@127.0.0.1:{port}/x: connection failed: "),
        (f"mysql://root:{PASSWORD}@127.0.0.1/x",
         "error: --db: mysql is not supported; the store runs on sqlite:///PATH or "
         "postgresql://USER[:PASSWORD]@HOST[:PORT]/DATABASE (psycopg 3)\n"),
        (f"postgresql+psycopg2://postgres:{PASSWORD}@127.0.0.1/x", "error: --db: postgresql+psycopg2 is not supported"),
        (f"{PASSWORD}", "error: --db is not a database URL; use sqlite:///PATH or postgresql://"),
    ]
    for url, message in cases:
        r = cli(*verb, "--data-dir", str(tmp_path), "--db", url)
        assert r.returncode == 2 and r.stderr.startswith(message) and r.stderr.count("\n") == 1, r.stderr
        assert PASSWORD not in r.stdout + r.stderr and "Traceback" not in r.stderr


def test_a_missing_postgresql_fails_naming_the_install_script(monkeypatch, tmp_path):
    monkeypatch.setattr(pg, "BIN", tmp_path / "no-postgresql")
    with pytest.raises(pg.PostgresMissing, match=r"scripts/install-test-deps\.sh"):
        pg.Postgres()
