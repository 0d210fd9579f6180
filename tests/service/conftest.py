"""Fixtures shared by the control plane's tests."""

from __future__ import annotations

import pytest

from altostrat.service.store import Store


@pytest.fixture
def store(db_url):
    """An empty, migrated store, on SQLite and on PostgreSQL."""
    s = Store(db_url)
    s.upgrade()
    yield s
    s.close()
