"""batches: protocol 2 columns (nonce, Total, GCS parameters)

Revision ID: r0003
Revises: r0002
Create Date: 2026-12-01 22:10:00

A v2 batch's values depend on its nonce, its Total and GCS M
(docs/scheme.md); the responder keeps them to compute its own values and
to check that every part agrees with the first. Batches seen before are v1.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "r0003"
down_revision = "r0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("protocol", sa.Integer(), server_default="1", nullable=False))
        batch_op.add_column(sa.Column("nonce", sa.LargeBinary(length=16), nullable=True))
        batch_op.add_column(sa.Column("total", sa.BigInteger(), nullable=True))
        batch_op.add_column(sa.Column("gcs_p", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("gcs_m", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        for name in ("gcs_m", "gcs_p", "total", "nonce", "protocol"):
            batch_op.drop_column(name)
