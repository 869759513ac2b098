"""suppressions become the ledger: channel, reason, origin, received, evidence;
suppression_lifts records every lifted manual suppression

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 21:45:00

`source` ("ping" or "manual") becomes `channel` ("dni-ping" or "manual"),
with the reason ("registry" or "manual") it implies. A ping's suppression
takes its received time, request id, origin (the ping's channel) and masked
client from its ping row; a manual one was received when it was committed.
"""

from __future__ import annotations

import ipaddress

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def _mask_client(peer: str) -> str:
    """The network, not the host (as scrubber.ledger.mask_client at this revision)."""
    try:
        ip = ipaddress.ip_address(peer)
    except ValueError:
        return peer[:64]
    prefix = 24 if ip.version == 4 else 48
    return str(ipaddress.ip_network(f"{ip}/{prefix}", strict=False))


def upgrade() -> None:
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("channel", sa.String(length=40), nullable=True))
        batch_op.add_column(sa.Column("reason", sa.String(length=16), nullable=True))
        batch_op.add_column(sa.Column("origin", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("received_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("request_id", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("client", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("evidence", sa.Text(), nullable=True))
    op.execute(
        "UPDATE suppressions SET "
        "channel = CASE source WHEN 'ping' THEN 'dni-ping' ELSE 'manual' END, "
        "reason = CASE source WHEN 'ping' THEN 'registry' ELSE 'manual' END, "
        "received_at = COALESCE((SELECT p.received_at FROM pings p "
        "WHERE p.id = suppressions.ping_id), suppressed_at)"
    )
    _copy_ping_evidence()
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.alter_column("channel", existing_type=sa.String(length=40), nullable=False)
        batch_op.alter_column("reason", existing_type=sa.String(length=16), nullable=False)
        batch_op.alter_column(
            "received_at", existing_type=sa.DateTime(timezone=True), nullable=False
        )
        batch_op.drop_column("source")
    op.create_table(
        "suppression_lifts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("address_id", sa.Integer(), nullable=False),
        sa.Column("lifted_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("lift_reason", sa.Text(), nullable=False),
        sa.Column("channel", sa.String(length=40), nullable=False),
        sa.Column("reason", sa.String(length=16), nullable=False),
        sa.Column("origin", sa.Text(), nullable=True),
        sa.Column("received_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("suppressed_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["address_id"], ["addresses.id"], name=op.f("fk_suppression_lifts_address_id_addresses")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_suppression_lifts")),
    )
    with op.batch_alter_table("suppression_lifts", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_suppression_lifts_address_id"), ["address_id"], unique=False
        )


def _copy_ping_evidence() -> None:
    """Request id, origin and masked client of each ping's suppression (in Python:
    masking an address is not SQL)."""
    bind = op.get_bind()
    rows = bind.execute(
        sa.text(
            "SELECT s.address_id, p.id, p.channel, p.peer FROM suppressions s "
            "JOIN pings p ON p.id = s.ping_id"
        )
    ).all()
    if rows:
        bind.execute(
            sa.text(
                "UPDATE suppressions SET request_id = :request, origin = :origin, "
                "client = :client WHERE address_id = :address"
            ),
            [
                {"address": a, "request": str(p), "origin": c, "client": _mask_client(peer)}
                for a, p, c, peer in rows
            ],
        )


def downgrade() -> None:
    with op.batch_alter_table("suppression_lifts", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_suppression_lifts_address_id"))
    op.drop_table("suppression_lifts")
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("source", sa.String(length=16), nullable=True))
    op.execute(
        "UPDATE suppressions SET source = CASE channel WHEN 'dni-ping' THEN 'ping' "
        "ELSE 'manual' END"
    )
    with op.batch_alter_table("suppressions", schema=None) as batch_op:
        batch_op.alter_column("source", existing_type=sa.String(length=16), nullable=False)
        for column in ("evidence", "client", "request_id", "received_at", "origin", "reason"):
            batch_op.drop_column(column)
        batch_op.drop_column("channel")
