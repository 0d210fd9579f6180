"""Fixtures shared by the control plane's tests."""

from __future__ import annotations

import pytest

from altostrat.service.store import Store, database_url


@pytest.fixture
def store(tmp_path):
    """An empty, migrated store in a temporary folder."""
    s = Store(database_url(tmp_path, None))
    s.upgrade()
    yield s
    s.close()
