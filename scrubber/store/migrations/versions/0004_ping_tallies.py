"""ping_tallies: worthless proofs counted per batch, channel, client and minute

Revision ID: 0004
Revises: 0003
Create Date: 2026-12-01 21:40:00

Invalid and repeated proofs were stored one `pings` row each, so a flood of
forged proofs grew the database by about 200 bytes a proof. The listener now
stores only accepted proofs in `pings` and adds the others to one row per
(batch, channel, client address, UTC minute) here. Existing rows stay.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "ping_tallies",
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("minute", sa.DateTime(timezone=True), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("invalid", sa.Integer(), nullable=False),
        sa.Column("duplicate", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_ping_tallies_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint(
            "batch_id", "minute", "channel", "peer", name=op.f("pk_ping_tallies")
        ),
    )


def downgrade() -> None:
    op.drop_table("ping_tallies")
