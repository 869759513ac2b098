"""batches: drop refused rows whose Argon2 parameters break the scheme's rule

Revision ID: r0004
Revises: r0003
Create Date: 2026-12-06 22:55:00

The article parser now checks the parameters with ``scheme.Params`` (m >= 8p)
and refuses such an article as malformed; before, a batch with m < 8p was
recorded here as ``refused``. ``SeenBatch.params`` builds a ``Params`` from
the row, so such a row could no longer be loaded. It never led to a match
or a ping (refused before any hashing), so it goes; a later scan skips the
batch's articles as malformed instead.
"""

from __future__ import annotations

from alembic import op

revision = "r0004"
down_revision = "r0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "DELETE FROM batches WHERE m < 8 * p "
        "AND batch_id NOT IN (SELECT batch_id FROM matches) "
        "AND batch_id NOT IN (SELECT batch_id FROM ping_log)"
    )


def downgrade() -> None:
    pass  # the rows only recorded a refusal; nothing to restore
