"""list_entries: the primary key is the table (SQLite WITHOUT ROWID), no address_id
index, original spelling optional

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-23 23:40:00

Every query reads list_entries by list (the leading primary-key column), so
the separate address_id index and, on SQLite, the rowid B-tree were two extra
B-trees written per imported address for nothing. On SQLite the table is
rebuilt WITHOUT ROWID (rows copied); PostgreSQL only loses the index.
`original` becomes nullable: new imports store NULL where the spelling is
the canonical form (readers use COALESCE); existing rows keep their text.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("list_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_list_entries_address_id")
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "list_entries",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_with_rowid": False} if sqlite else {},
    ) as batch_op:
        batch_op.alter_column("original", existing_type=sa.Text(), nullable=True)


def downgrade() -> None:
    op.execute(
        "UPDATE list_entries SET original = "
        "(SELECT canonical FROM addresses WHERE addresses.id = list_entries.address_id) "
        "WHERE original IS NULL"
    )
    sqlite = op.get_bind().dialect.name == "sqlite"
    with op.batch_alter_table(
        "list_entries",
        recreate="always" if sqlite else "auto",
        table_kwargs={"sqlite_with_rowid": True} if sqlite else {},
    ) as batch_op:
        batch_op.alter_column("original", existing_type=sa.Text(), nullable=False)
    with op.batch_alter_table("list_entries", schema=None) as batch_op:
        batch_op.create_index("ix_list_entries_address_id", ["address_id"], unique=False)
