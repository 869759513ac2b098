"""re-check flag on protected addresses, ping delay on matches

Revision ID: r0002
Revises: r0001
Create Date: 2026-12-01 21:45:00

Addresses protected before this revision are flagged too: they may have
been added after batches that were then never looked through for them
(issue 13.7); the re-check only visits batches seen before each address.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0002"
down_revision = "r0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("protected", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("recheck", sa.Boolean(), server_default=sa.true(), nullable=False)
        )
    with op.batch_alter_table("matches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("not_before", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("matches", schema=None) as batch_op:
        batch_op.drop_column("not_before")
    with op.batch_alter_table("protected", schema=None) as batch_op:
        batch_op.drop_column("recheck")
