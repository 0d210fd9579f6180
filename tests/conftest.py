import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not SHARED.exists():
        pytest.fail(f"the shared data folder {SHARED} is missing; clone the project beside ../shared")
    return SHARED


@pytest.fixture(scope="session")
def postgres():
    """A throw-away PostgreSQL 15 server for this test process (each xdist worker has its own)."""
    from pg import Postgres, PostgresMissing

    try:
        server = Postgres().start()
    except PostgresMissing as exc:
        pytest.fail(str(exc))
    yield server
    server.stop()


@pytest.fixture
def pg_url(postgres) -> str:
    """A fresh, empty PostgreSQL database (dropped after the test): its URL."""
    url = postgres.create_database()
    yield url
    postgres.drop_database(url)


@pytest.fixture(params=["sqlite", "postgresql"])
def db_url(request, tmp_path) -> str:
    """An empty database of each kind the store runs on: SQLite in tmp_path, or PostgreSQL."""
    from altostrat.service.database import database_url

    return database_url(tmp_path, None) if request.param == "sqlite" else request.getfixturevalue("pg_url")
