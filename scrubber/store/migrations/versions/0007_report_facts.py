"""report facts: what each batch left out as already suppressed (per list and in
all), and list_exports, the history of list exports

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-06 22:30:00

A compliance report must say how many addresses a batch left out because
they were suppressed, and when sending to a suppressed address stopped (the
first export or batch after its suppression). Neither can be recomputed
later: lists change. Batches made before this revision have NULL counts
(the report says "not recorded"); exports before it were not recorded.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("left_out_suppressed", sa.Integer(), nullable=True))
    with op.batch_alter_table("batch_lists", schema=None) as batch_op:
        batch_op.add_column(sa.Column("listed", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("left_out", sa.Integer(), nullable=True))
    op.create_table(
        "list_exports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["list_id"],
            ["lists.id"],
            name=op.f("fk_list_exports_list_id_lists"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_list_exports")),
    )
    with op.batch_alter_table("list_exports", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_list_exports_list_id"), ["list_id", "started_at"], unique=False
        )


def downgrade() -> None:
    op.drop_table("list_exports")
    with op.batch_alter_table("batch_lists", schema=None) as batch_op:
        batch_op.drop_column("left_out")
        batch_op.drop_column("listed")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("left_out_suppressed")
