"""batch_entries: index (batch_id, tag)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-23 21:05:00

`batch post` reads each part's tags as a range of the sorted tags; this
index turns that into a range scan instead of a scan and sort of the whole
batch per part.
"""

from __future__ import annotations

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batch_entries", schema=None) as batch_op:
        batch_op.create_index("ix_batch_entries_batch_tag", ["batch_id", "tag"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("batch_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_batch_entries_batch_tag")
