"""batches: protocol 2 columns (nonce, GCS parameters, tag block encoding)

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 21:45:00

A v2 batch publishes values keyed by a per-batch nonce as a Golomb-coded
set (docs/scheme.md); the sender keeps what it needs to render the parts
again. Existing batches are v1 (protocol 1, the new columns NULL).
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("protocol", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("nonce", sa.LargeBinary(length=16), nullable=True))
        batch_op.add_column(sa.Column("gcs_p", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("gcs_m", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("encoding", sa.String(length=16), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        for name in ("encoding", "gcs_m", "gcs_p", "nonce", "protocol"):
            batch_op.drop_column(name)
