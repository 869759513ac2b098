"""batch_entries: membership and tag only; proofs are looked up in digests

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-07 05:00:00

A proof is H[16:32] of the epoch's cached digest, whatever the batch, so
the listener finds it in digests, which gain a ``proof`` column (filled
here from ``h``, then while hashing) and an (epoch_id, proof) index, and
then checks that the address is a member of the batch. (A stored column,
not an expression index: SQLAlchemy does not reflect those on SQLite.) batch_entries loses its
proof column: its primary key becomes (batch_id, address_id), the table
itself on SQLite (WITHOUT ROWID), with the tag as payload; the
(batch_id, address_id) index goes with it, the tag index stays.

Nothing is lost: every existing entry's proof must equal the proof of its
address's digest in its batch's epoch, which is checked before anything is
dropped (the migration fails, naming the first batch that differs, if
not). Downgrading puts the proofs back from the digests.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from scrubber.errors import StoreError

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None

_OLD = "batch_entries_0008"


def upgrade() -> None:
    _check_proofs()  # first: nothing is changed if it fails
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.add_column(sa.Column("proof", sa.LargeBinary(length=16), nullable=True))
    op.execute("UPDATE digests SET proof = substr(h, 17, 16)")
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.alter_column("proof", existing_type=sa.LargeBinary(length=16), nullable=False)
    op.create_index("ix_digests_epoch_proof", "digests", ["epoch_id", "proof"])
    op.drop_index("ix_batch_entries_batch_address", table_name="batch_entries")
    op.drop_index("ix_batch_entries_batch_tag", table_name="batch_entries")
    _set_old_table_aside()
    _create_entries(
        sa.Column("tag", sa.LargeBinary(length=16), nullable=False),
        primary_key=("batch_id", "address_id"),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO batch_entries (batch_id, address_id, tag) "  # noqa: S608 (constant)
        f"SELECT batch_id, address_id, tag FROM {_OLD} ORDER BY batch_id, address_id"
    )
    op.drop_table(_OLD)
    op.create_index("ix_batch_entries_batch_tag", "batch_entries", ["batch_id", "tag"])


def _check_proofs() -> None:
    """Every entry's proof is its digest's H[16:32] in its batch's epoch."""
    differs = (
        op.get_bind()
        .execute(
            sa.text(
                "SELECT e.batch_id, COUNT(*) FROM batch_entries e "
                "JOIN batches b ON b.id = e.batch_id "
                "LEFT JOIN digests d ON d.epoch_id = b.epoch_id AND d.address_id = e.address_id "
                "WHERE d.h IS NULL OR substr(d.h, 17, 16) <> e.proof "
                "GROUP BY e.batch_id ORDER BY e.batch_id"
            )
        )
        .all()
    )
    if differs:
        named = ", ".join(f"{batch_id} ({count})" for batch_id, count in differs[:5])
        raise StoreError(
            "migration 0009: proofs of batch entries differ from (or lack) their digest in "
            f"the batch's salt epoch, so they could not be looked up any more: {named}; "
            "nothing was changed"
        )


def downgrade() -> None:
    op.drop_index("ix_batch_entries_batch_tag", table_name="batch_entries")
    _set_old_table_aside()
    _create_entries(
        sa.Column("proof", sa.LargeBinary(length=16), nullable=False),
        sa.Column("tag", sa.LargeBinary(length=16), nullable=False),
        primary_key=("batch_id", "proof"),
    )
    op.execute(
        "INSERT INTO batch_entries (batch_id, proof, tag, address_id) "  # noqa: S608 (constant)
        f"SELECT e.batch_id, d.proof, e.tag, e.address_id FROM {_OLD} e "
        "JOIN batches b ON b.id = e.batch_id "
        "JOIN digests d ON d.epoch_id = b.epoch_id AND d.address_id = e.address_id"
    )
    op.drop_table(_OLD)
    op.create_index("ix_batch_entries_batch_address", "batch_entries", ["batch_id", "address_id"])
    op.create_index("ix_batch_entries_batch_tag", "batch_entries", ["batch_id", "tag"])
    op.drop_index("ix_digests_epoch_proof", table_name="digests")
    with op.batch_alter_table("digests", schema=None) as batch_op:
        batch_op.drop_column("proof")


def _set_old_table_aside() -> None:
    """Rename batch_entries to _OLD, to be copied from and dropped."""
    if op.get_bind().dialect.name != "sqlite":  # PostgreSQL names the primary key's index
        op.execute("ALTER TABLE batch_entries RENAME CONSTRAINT pk_batch_entries TO pk_" + _OLD)
    op.rename_table("batch_entries", _OLD)


def _create_entries(
    *columns: sa.Column[bytes], primary_key: tuple[str, ...], **options: bool
) -> None:
    """batch_entries with batch_id, address_id (and their foreign keys) and
    ``columns``, keyed on ``primary_key``: the shape of either side of 0009."""
    op.create_table(
        "batch_entries",
        sa.Column("batch_id", sa.String(length=40), nullable=False),
        sa.Column("address_id", sa.Integer(), nullable=False),
        *columns,
        sa.ForeignKeyConstraint(
            ["address_id"], ["addresses.id"], name=op.f("fk_batch_entries_address_id_addresses")
        ),
        sa.ForeignKeyConstraint(
            ["batch_id"], ["batches.id"], name=op.f("fk_batch_entries_batch_id_batches")
        ),
        sa.PrimaryKeyConstraint(*primary_key, name=op.f("pk_batch_entries")),
        **options,
    )
