"""initial schema

Revision ID: 0001
Revises:
Create Date: 2026-11-23 20:18:46.926448
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:

    op.create_table(
        "addresses",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("canonical", sa.String(length=254), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_addresses")),
        sa.UniqueConstraint("canonical", name=op.f("uq_addresses_canonical")),
    )
    op.create_table(
        "lists",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_import_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_lists")),
        sa.UniqueConstraint("name", name=op.f("uq_lists_name")),
    )
    op.create_table(
        "salt_epochs",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=16), nullable=False),
        sa.Column("t", sa.Integer(), nullable=False),
        sa.Column("m", sa.Integer(), nullable=False),
        sa.Column("p", sa.Integer(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("ends_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_salt_epochs")),
        sa.UniqueConstraint("salt", name=op.f("uq_salt_epochs_salt")),
    )
    op.create_table(
        "batches",
        sa.Column("id", sa.String(length=40), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("epoch_id", sa.Integer(), nullable=False),
        sa.Column("salt", sa.LargeBinary(length=16), nullable=False),
        sa.Column("t", sa.Integer(), nullable=False),
        sa.Column("m", sa.Integer(), nullable=False),
        sa.Column("p", sa.Integer(), nullable=False),
        sa.Column("tag_length", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("newsgroup", sa.String(length=200), nullable=False),
        sa.Column("respond_http", sa.Text(), nullable=False),
        sa.Column("respond_smtp", sa.Text(), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("key_public", sa.String(length=64), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("parts_total", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["epoch_id"], ["salt_epochs.id"], name=op.f("fk_batches_epoch_id_salt_epochs")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batches")),
        sa.UniqueConstraint("token", name=op.f("uq_batches_token")),
    )
    op.create_table(
        "digests",
        sa.Column("epoch_id", sa.Integer(), nullable=False),
        sa.Column("address_id", sa.Integer(), nullable=False),
        sa.Column("h", sa.LargeBinary(length=32), nullable=False),
        sa.ForeignKeyConstraint(
            ["address_id"], ["addresses.id"], name=op.f("fk_digests_address_id_addresses")
        ),
        sa.ForeignKeyConstraint(
            ["epoch_id"], ["salt_epochs.id"], name=op.f("fk_digests_epoch_id_salt_epochs")
        ),
        sa.PrimaryKeyConstraint("epoch_id", "address_id", name=op.f("pk_digests")),
    )
    op.create_table(
        "imports",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lines", sa.Integer(), nullable=False),
        sa.Column("accepted", sa.Integer(), nullable=False),
        sa.Column("added", sa.Integer(), nullable=False),
        sa.Column("rejected", sa.Integer(), nullable=False),
        sa.Column("rejects_path", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(["list_id"], ["lists.id"], name=op.f("fk_imports_list_id_lists")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_imports")),
    )
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_imports_list_id"), ["list_id"], unique=False)

    op.create_table(
        "list_entries",
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.Column("address_id", sa.Integer(), nullable=False),
        sa.Column("original", sa.Text(), nullable=False),
        sa.ForeignKeyConstraint(
            ["address_id"], ["addresses.id"], name=op.f("fk_list_entries_address_id_addresses")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_list_entries_list_id_lists")
        ),
        sa.PrimaryKeyConstraint("list_id", "address_id", name=op.f("pk_list_entries")),
    )
    with op.batch_alter_table("list_entries", schema=None) as batch_op:
        batch_op.create_index("ix_list_entries_address_id", ["address_id"], unique=False)

    op.create_table(
        "batch_entries",
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("proof", sa.LargeBinary(length=16), nullable=False),
        sa.Column("tag", sa.LargeBinary(length=16), nullable=False),
        sa.Column("address_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["address_id"], ["addresses.id"], name=op.f("fk_batch_entries_address_id_addresses")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_batch_entries_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("batch_id", "proof", name=op.f("pk_batch_entries")),
    )
    with op.batch_alter_table("batch_entries", schema=None) as batch_op:
        batch_op.create_index(
            "ix_batch_entries_batch_address", ["batch_id", "address_id"], unique=False
        )

    op.create_table(
        "batch_lists",
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("list_id", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_batch_lists_batch_id_batches")
        ),
        sa.ForeignKeyConstraint(
            ["list_id"], ["lists.id"], name=op.f("fk_batch_lists_list_id_lists")
        ),
        sa.PrimaryKeyConstraint("batch_id", "list_id", name=op.f("pk_batch_lists")),
    )
    op.create_table(
        "batch_parts",
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("part", sa.Integer(), nullable=False),
        sa.Column("message_id", sa.String(length=250), nullable=False),
        sa.Column("first_tag", sa.LargeBinary(length=16), nullable=False),
        sa.Column("last_tag", sa.LargeBinary(length=16), nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("posted_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("server", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_batch_parts_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("batch_id", "part", name=op.f("pk_batch_parts")),
        sa.UniqueConstraint("message_id", name=op.f("uq_batch_parts_message_id")),
    )
    op.create_table(
        "pings",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token", sa.String(length=64), nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=True),
        sa.Column("proof", sa.LargeBinary(length=64), nullable=True),
        sa.Column("outcome", sa.String(length=16), nullable=False),
        sa.Column("channel", sa.String(length=8), nullable=False),
        sa.Column("peer", sa.String(length=64), nullable=False),
        sa.Column("address_id", sa.Integer(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("committed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["address_id"], ["addresses.id"], name=op.f("fk_pings_address_id_addresses")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_pings_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pings")),
    )
    with op.batch_alter_table("pings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_pings_batch_id"), ["batch_id"], unique=False)
        batch_op.create_index(
            "uq_pings_accepted",
            ["batch_id", "proof"],
            unique=True,
            sqlite_where=sa.text("outcome = 'accepted'"),
            postgresql_where=sa.text("outcome = 'accepted'"),
        )

    op.create_table(
        "suppressions",
        sa.Column("address_id", sa.Integer(), nullable=False),
        sa.Column("suppressed_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("batch_id", sa.String(length=40), nullable=True),
        sa.Column("ping_id", sa.Integer(), nullable=True),
        sa.ForeignKeyConstraint(
            ["address_id"], ["addresses.id"], name=op.f("fk_suppressions_address_id_addresses")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_suppressions_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint("address_id", name=op.f("pk_suppressions")),
    )


def downgrade() -> None:

    op.drop_table("suppressions")
    with op.batch_alter_table("pings", schema=None) as batch_op:
        batch_op.drop_index(
            "uq_pings_accepted",
            sqlite_where=sa.text("outcome = 'accepted'"),
            postgresql_where=sa.text("outcome = 'accepted'"),
        )
        batch_op.drop_index(batch_op.f("ix_pings_batch_id"))

    op.drop_table("pings")
    op.drop_table("batch_parts")
    op.drop_table("batch_lists")
    with op.batch_alter_table("batch_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_batch_entries_batch_address")

    op.drop_table("batch_entries")
    with op.batch_alter_table("list_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_list_entries_address_id")

    op.drop_table("list_entries")
    with op.batch_alter_table("imports", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_imports_list_id"))

    op.drop_table("imports")
    op.drop_table("digests")
    op.drop_table("batches")
    op.drop_table("salt_epochs")
    op.drop_table("lists")
    op.drop_table("addresses")
