"""batch_part_posts: where each part of a batch went, one row per part and server

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-06 22:30:00

A batch is posted to several news servers (and spools), each resumed on
its own, so "posted" belongs to a part and a server, not to the part.
Every part marked posted moves to the new table with its server (a mark
without a server, which no release wrote, keeps its time under "unknown");
batch_parts loses posted_at and server. Downgrading keeps each part's
earliest posting.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Read the marks first: on SQLite, dropping the columns rebuilds
    # batch_parts, which a table referencing it would forbid. A few rows a
    # batch (one a part).
    marks = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT batch_id, part, COALESCE(server, 'unknown'), posted_at FROM batch_parts "
                "WHERE posted_at IS NOT NULL"
            )
        )
        .all()
    )
    with op.batch_alter_table("batch_parts", schema=None) as batch_op:
        batch_op.drop_column("server")
        batch_op.drop_column("posted_at")
    op.create_table(
        "batch_part_posts",
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("server", sa.Text(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id", "part"],
            ["batch_parts.batch_id", "batch_parts.part"],
            name=op.f("fk_batch_part_posts_batch_id_batch_parts"),
        ),
        sa.PrimaryKeyConstraint("batch_id", "part", "server", name=op.f("pk_batch_part_posts")),
    )
    if marks:  # as read: the stored time is copied, not converted
        op.get_bind().execute(
            sa.text(
                "INSERT INTO batch_part_posts (batch_id, part, server, posted_at) "
                "VALUES (:batch_id, :part, :server, :posted_at)"
            ),
            [dict(zip(("batch_id", "part", "server", "posted_at"), m, strict=True)) for m in marks],
        )


def downgrade() -> None:
    """Each part keeps its earliest posting."""
    first = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT x.batch_id, x.part, MIN(x.server), x.posted_at FROM batch_part_posts x "
                "WHERE x.posted_at = (SELECT MIN(y.posted_at) FROM batch_part_posts y "
                "WHERE y.batch_id = x.batch_id AND y.part = x.part) "
                "GROUP BY x.batch_id, x.part, x.posted_at"
            )
        )
        .all()
    )
    op.drop_table("batch_part_posts")
    with op.batch_alter_table("batch_parts", schema=None) as batch_op:
        batch_op.add_column(sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("server", sa.Text(), nullable=True))
    if first:
        op.get_bind().execute(
            sa.text(
                "UPDATE batch_parts SET server = :server, posted_at = :posted_at "
                "WHERE batch_id = :batch_id AND part = :part"
            ),
            [dict(zip(("batch_id", "part", "server", "posted_at"), r, strict=True)) for r in first],
        )
