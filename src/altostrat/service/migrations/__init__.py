"""Alembic migrations of the control plane's schema (run by `altostrat db upgrade` and `serve`)."""
