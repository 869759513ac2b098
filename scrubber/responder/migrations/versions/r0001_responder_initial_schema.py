"""responder initial schema

Revision ID: r0001
Revises:
Create Date: 2026-11-23 20:39:28.295935
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "batches",
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("parts", sa.Integer(), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=16), nullable=False),
        sa.Column("t", sa.Integer(), nullable=False),
        sa.Column("m", sa.Integer(), nullable=False),
        sa.Column("p", sa.Integer(), nullable=False),
        sa.Column("tag_length", sa.Integer(), nullable=False),
        sa.Column("respond_http", sa.Text(), nullable=False),
        sa.Column("respond_smtp", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("batch_id", name=op.f("pk_batches")),
    )
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_batches_key"), ["key"], unique=False)

    op.create_table(
        "cursors",
        sa.Column("source", sa.String(length=400), nullable=False),
        sa.Column("mark", sa.String(length=400), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("source", name=op.f("pk_cursors")),
    )
    op.create_table(
        "protected",
        sa.Column("canonical", sa.String(length=254), nullable=False),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("canonical", name=op.f("pk_protected")),
    )
    op.create_table(
        "digests",
        sa.Column("salt", sa.LargeBinary(length=16), nullable=False),
        sa.Column("params", sa.String(length=40), nullable=False),
        sa.Column("canonical", sa.String(length=254), nullable=False),
        sa.Column("h", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["canonical"],
            ["protected.canonical"],
            name=op.f("fk_digests_canonical_protected"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("salt", "params", "canonical", name=op.f("pk_digests")),
    )
    op.create_table(
        "matches",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("key", sa.LargeBinary(length=32), nullable=False),
        sa.Column("canonical", sa.String(length=254), nullable=False),
        sa.Column("proof", sa.LargeBinary(length=16), nullable=False),
        sa.Column("occurrence", sa.Integer(), nullable=False),
        sa.Column("pings_due", sa.Integer(), nullable=False),
        sa.Column("pings_sent", sa.Integer(), nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("found_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.batch_id"], name=op.f("fk_matches_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_matches")),
    )
    with op.batch_alter_table("matches", schema=None) as batch_op:
        batch_op.create_index("ix_matches_key_canonical", ["key", "canonical"], unique=False)
        batch_op.create_index("uq_matches_batch_canonical", ["batch_id", "canonical"], unique=True)

    op.create_table(
        "ping_log",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("proofs", sa.Integer(), nullable=False),
        sa.Column("ok", sa.Boolean(), nullable=False),
        sa.Column("answer", sa.Text(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.batch_id"], name=op.f("fk_ping_log_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ping_log")),
    )
    with op.batch_alter_table("ping_log", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ping_log_batch_id"), ["batch_id"], unique=False)


def downgrade() -> None:

    with op.batch_alter_table("ping_log", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ping_log_batch_id"))

    op.drop_table("ping_log")
    with op.batch_alter_table("matches", schema=None) as batch_op:
        batch_op.drop_index("uq_matches_batch_canonical")
        batch_op.drop_index("ix_matches_key_canonical")

    op.drop_table("matches")
    op.drop_table("digests")
    op.drop_table("protected")
    op.drop_table("cursors")
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_batches_key"))

    op.drop_table("batches")
