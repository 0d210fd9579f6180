"""A task's process start time is a 64-bit integer: clock ticks since boot pass 2**31 after
248 days of uptime (at 100 Hz), beyond PostgreSQL's integer. SQLite's INTEGER already holds
64 bits, so only PostgreSQL's column changes.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("attempts", "proc_start", type_=sa.BigInteger, existing_nullable=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        op.alter_column("attempts", "proc_start", type_=sa.Integer, existing_nullable=True)
