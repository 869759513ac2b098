"""The group commit's SQL: plain statements on the driver's connection.

Run by the Ingestor (ingestor.py) in the writer process, inside the one
write transaction ``Store.driver_transaction`` (or, for a group with an
unsubscribe in it, ``Store.write_connection``) opens.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

from scrubber.errors import StoreError
from scrubber.store.outcomes import ACCEPTED_ONLY

PING_COLUMNS = (
    "token, batch_id, proof, outcome, channel, peer, address_id, received_at, committed_at"
)
# The ledger's columns a ping fills (scrubber/ledger.py says what each holds).
SUPPRESSION_COLUMNS = (
    "address_id, suppressed_at, channel, reason, origin, received_at, batch_id, ping_id, "
    "request_id, client"
)
ROWS_PER_STATEMENT = 500  # multi-row VALUES: well under SQLite's 32,766 parameters


@dataclass(frozen=True)
class PingSql:
    """The group commit's statements, as plain SQL on the driver's connection.

    Through SQLAlchemy Core the statements cost several times SQLite's own
    work for a group of pings (expanding IN lists, type processing, RETURNING
    batches; docs/performance.md, listen_http), and that Python work holds
    the GIL the event loop needs. The same text serves SQLite and PostgreSQL
    but for the parameter marker and how a timestamp is passed. Only
    parameter markers are ever formatted into the text (hence the noqa
    S608 marks); every value is bound.
    """

    mark: str  # the driver's parameter marker: "?" (sqlite3) or "%s" (psycopg)
    sqlite: bool

    @classmethod
    def for_dialect(cls, name: str) -> PingSql:
        if name not in ("sqlite", "postgresql"):
            raise StoreError(f"the listener does not support the {name} database")
        return cls("?" if name == "sqlite" else "%s", name == "sqlite")

    def timestamp(self, value: datetime) -> object:
        """A bind value for a UTCDateTime column."""
        if self.sqlite:
            # The text SQLAlchemy's SQLite DATETIME writes, so the ORM reads it alike.
            return value.astimezone(UTC).replace(tzinfo=None).isoformat(" ", "microseconds")
        return value

    def _marks(self, count: int) -> str:
        return ", ".join([self.mark] * count)

    def token(self) -> str:
        return f"SELECT id FROM batches WHERE token = {self.mark}"  # noqa: S608

    def entries(self, proofs: int) -> str:
        """Proofs of a batch's members, with their address id and any accepted ping.

        A proof is H[16:32] of the address's digest in the batch's salt
        epoch (schema 0009): it is found through the digests' (epoch_id,
        proof) index, and counts only if its address is in the batch
        (``batch_entries``). Parameters: the batch id, then the proofs.
        """
        return (
            "SELECT d.proof, d.address_id, p.id "  # noqa: S608
            "FROM batches b "
            "JOIN digests d ON d.epoch_id = b.epoch_id "
            "JOIN batch_entries e ON e.batch_id = b.id AND e.address_id = d.address_id "
            "LEFT JOIN pings p ON p.batch_id = b.id AND p.proof = d.proof "
            f"AND p.{ACCEPTED_ONLY} "
            f"WHERE b.id = {self.mark} AND d.proof IN ({self._marks(proofs)})"
        )

    def canonicals(self, addresses: int) -> str:
        """The canonical text of addresses, by id (for the masked log line)."""
        return f"SELECT id, canonical FROM addresses WHERE id IN ({self._marks(addresses)})"  # noqa: S608

    def insert_accepted(self, rows: int) -> str:
        """Accepted pings; a proof another listener accepted first is skipped
        (the partial unique index), so only the winners come back."""
        values = ", ".join([f"({self._marks(9)})"] * rows)
        return (
            f"INSERT INTO pings ({PING_COLUMNS}) VALUES {values} "  # noqa: S608
            f"ON CONFLICT (batch_id, proof) WHERE {ACCEPTED_ONLY} DO NOTHING "
            "RETURNING id, batch_id, proof"
        )

    def insert_suppressions(self, rows: int) -> str:
        values = ", ".join([f"({self._marks(10)})"] * rows)
        return (
            f"INSERT INTO suppressions ({SUPPRESSION_COLUMNS}) "  # noqa: S608
            f"VALUES {values} ON CONFLICT (address_id) DO NOTHING RETURNING address_id"
        )

    def add_tallies(self, rows: int) -> str:
        """Worthless proofs added to their (batch, minute, channel, peer) row."""
        values = ", ".join([f"({self._marks(6)})"] * rows)
        return (
            "INSERT INTO ping_tallies (batch_id, minute, channel, peer, invalid, duplicate) "  # noqa: S608
            f"VALUES {values} ON CONFLICT (batch_id, minute, channel, peer) DO UPDATE SET "
            "invalid = ping_tallies.invalid + excluded.invalid, "
            "duplicate = ping_tallies.duplicate + excluded.duplicate"
        )
