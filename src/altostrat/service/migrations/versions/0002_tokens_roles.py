"""Audit records name the token (its id) and the role that made each call.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.add_column(sa.Column("token_id", sa.Integer, nullable=True))
        batch.add_column(sa.Column("role", sa.String(16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("audit") as batch:
        batch.drop_column("role")
        batch.drop_column("token_id")
