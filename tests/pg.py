"""A throw-away PostgreSQL 15 server on loopback, for the tests (and the submission benchmark).

initdb and pg_ctl refuse to run as root, and CI runs as root: then they run as the `postgres`
user (runuser), on a folder that user owns. The server listens on 127.0.0.1 at a free port,
its Unix socket inside its folder, with fsync on (the tests check durability). Each test
gets a fresh database (CREATE DATABASE), so tests stay independent; each xdist worker
starts a server of its own, so no lock is needed between workers.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from pathlib import Path

BIN = Path("/usr/lib/postgresql/15/bin")
MISSING = (f"PostgreSQL 15 is missing ({BIN / 'initdb'}); install it with scripts/install-test-deps.sh "
           "(as root: it runs apt-get install postgresql-15)")


class PostgresMissing(RuntimeError):
    pass


class Postgres:
    """One server: start() it, make databases with create_database(), stop() it (which removes
    its folder)."""

    def __init__(self) -> None:
        if not (BIN / "initdb").exists() or not (BIN / "pg_ctl").exists():
            raise PostgresMissing(MISSING)
        self.root = Path(tempfile.mkdtemp(prefix="altostrat-pg-"))  # in /tmp: `postgres` can reach it
        self.data, self.sock = self.root / "data", self.root / "sock"
        self.sock.mkdir()
        self.port = 0
        self.as_owner: list[str] = []
        if os.geteuid() == 0:
            shutil.chown(self.root, "postgres", "postgres")
            shutil.chown(self.sock, "postgres", "postgres")
            self.as_owner = ["runuser", "-u", "postgres", "--"]

    def _run(self, *cmd: str) -> None:
        r = subprocess.run([*self.as_owner, *cmd], cwd=self.root, capture_output=True, text=True, timeout=120)
        if r.returncode != 0:
            log = self.root / "server.log"
            raise RuntimeError(f"{' '.join(cmd)} failed ({r.returncode}): {r.stdout}{r.stderr}"
                               + (log.read_text()[-2000:] if log.exists() else ""))

    def start(self) -> Postgres:
        self._run(str(BIN / "initdb"), "-D", str(self.data), "-U", "postgres", "--auth=trust", "-E", "UTF8",
                  "--locale=C")
        for attempt in range(3):  # the free port may be taken before the server binds it: try another
            with socket.socket() as s:
                s.bind(("127.0.0.1", 0))
                self.port = s.getsockname()[1]
            options = (f"-c port={self.port} -c listen_addresses=127.0.0.1 -c unix_socket_directories={self.sock} "
                       "-c fsync=on -c synchronous_commit=on -c full_page_writes=on")
            try:
                self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-l", str(self.root / "server.log"), "-w",
                          "-t", "60", "-o", options, "start")
                return self
            except RuntimeError:
                if attempt == 2:
                    self.remove()
                    raise
        raise AssertionError("unreachable")

    def url(self, database: str = "postgres") -> str:
        return f"postgresql://postgres@127.0.0.1:{self.port}/{database}"

    def _admin(self, sql: str) -> None:
        import psycopg

        with psycopg.connect(host="127.0.0.1", port=self.port, user="postgres", dbname="postgres",
                             autocommit=True) as conn:
            conn.execute(sql)

    def create_database(self) -> str:
        """A new empty database: its URL."""
        name = f"t_{uuid.uuid4().hex[:16]}"
        self._admin(f'CREATE DATABASE "{name}"')
        return self.url(name)

    def drop_database(self, url: str) -> None:
        self._admin(f'DROP DATABASE IF EXISTS "{url.rsplit("/", 1)[1]}" WITH (FORCE)')

    def stop(self) -> None:
        try:
            if (self.data / "postmaster.pid").exists():
                self._run(str(BIN / "pg_ctl"), "-D", str(self.data), "-m", "fast", "-w", "stop")
        finally:
            self.remove()

    def remove(self) -> None:
        shutil.rmtree(self.root, ignore_errors=True)
