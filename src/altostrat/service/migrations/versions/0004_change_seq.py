"""Every write to an object stamps it with the store's change sequence, so that the reconciler
reads exactly the jobs changed since its last read (`seq` greater than the last one it saw)
instead of re-reading a margin of recent `updated_at`s. Writers are serialised (SQLite's
BEGIN IMMEDIATE, PostgreSQL's advisory lock), so the sequence grows in commit order.

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    change_seq = op.create_table("change_seq", sa.Column("id", sa.Integer, primary_key=True, autoincrement=False),
                                 sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False))
    op.bulk_insert(change_seq, [{"id": 1, "seq": 0}])
    with op.batch_alter_table("objects") as batch:
        batch.add_column(sa.Column("seq", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), nullable=False,
                                   server_default="0"))
    op.create_index("ix_objects_kind_seq", "objects", ["kind", "seq"])


def downgrade() -> None:
    op.drop_index("ix_objects_kind_seq", "objects")
    with op.batch_alter_table("objects") as batch:
        batch.drop_column("seq")
    op.drop_table("change_seq")
