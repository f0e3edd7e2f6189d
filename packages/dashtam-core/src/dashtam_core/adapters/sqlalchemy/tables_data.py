"""Financial data tables: transactions, holdings, snapshots, change log, outbox, sync bookkeeping.

All tables live on :data:`~dashtam_core.adapters.sqlalchemy.base.metadata` next to the identity
and connection tables of :mod:`~dashtam_core.adapters.sqlalchemy.tables` (foreign keys point at
``accounts``, ``provider_connections`` and ``users``). Migration ``0002_financial_data`` creates
exactly these tables. The sync engine (:mod:`dashtam_core.sync`) writes them set-based.

Notes:
    * ``change_log.seq`` is the change-feed cursor. On SQLite it is ``INTEGER PRIMARY KEY
      AUTOINCREMENT`` (never reused); on PostgreSQL a ``BIGSERIAL``. Writers take a per-user
      advisory transaction lock before allocating sequence numbers, so seq order equals commit
      order (see :mod:`dashtam_core.sync.changes`).
    * ``transactions.removed_reason`` is ``withdrawn`` (the provider stopped returning it; it may
      come back) or ``settled`` (a pending row replaced by its posted row; frozen forever).
    * ``outbox.id`` is the event's ``event_id`` (UUIDv7); dispatched rows are kept for the event
      retention window and replayed per user through the ``(user_id, id)`` index.
    * ``sync_runs`` has a partial unique index: at most one queued/running sync per connection.
"""

from __future__ import annotations

from sqlalchemy import (
    BigInteger,
    Column,
    Date,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    String,
    Table,
    Text,
    UniqueConstraint,
    text,
)

# Importing the identity tables registers accounts / provider_connections / users on the shared
# metadata, so the foreign keys below resolve whenever this module is imported alone.
from dashtam_core.adapters.sqlalchemy import tables as _identity_tables  # noqa: F401
from dashtam_core.adapters.sqlalchemy.base import (
    ExactDecimal,
    JSONType,
    UTCDateTime,
    UUIDType,
    metadata,
)

#: Autoincrementing 64-bit integer key (``INTEGER`` on SQLite so it aliases the rowid).
SeqType = BigInteger().with_variant(Integer(), "sqlite")

transactions = Table(
    "transactions",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("account_id", UUIDType(), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("provider_transaction_id", String(255), nullable=False),
    Column("dedupe_key", String(255), nullable=False),
    Column("date", Date(), nullable=False),
    Column("posted_at", UTCDateTime(), nullable=True),
    Column("amount", ExactDecimal(), nullable=False),
    Column("currency", String(3), nullable=False),
    Column("description", Text(), nullable=False),
    Column("merchant", String(255), nullable=True),
    Column("type", String(32), nullable=False),
    Column("subtype", String(32), nullable=False),
    Column("status", String(16), nullable=False),
    Column("pending_link", String(255), nullable=True),
    Column(
        "pending_transaction_id",
        UUIDType(),
        ForeignKey("transactions.id", ondelete="SET NULL"),
        nullable=True,
    ),
    Column("security_symbol", String(64), nullable=True),
    Column("security_quantity", ExactDecimal(), nullable=True),
    Column("security_price", ExactDecimal(), nullable=True),
    Column("security_asset_type", String(32), nullable=True),
    Column("fees", ExactDecimal(), nullable=True),
    Column("content_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    Column("removed_at", UTCDateTime(), nullable=True),
    Column("removed_reason", String(16), nullable=True),
    UniqueConstraint("account_id", "dedupe_key"),
    # The keyset order of every transaction list and export: (date DESC, id DESC) per account,
    # read straight off the index with no sort (performance.md S1, S8).
    Index(None, "account_id", "date", "id"),
    Index(None, "account_id", "status"),
)

pending_matches = Table(
    "pending_matches",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("account_id", UUIDType(), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column(
        "pending_transaction_id",
        UUIDType(),
        ForeignKey("transactions.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column(
        "posted_transaction_id",
        UUIDType(),
        ForeignKey("transactions.id", ondelete="CASCADE"),
        nullable=False,
        unique=True,
    ),
    Column("reason", String(64), nullable=False),
    Column("matched_at", UTCDateTime(), nullable=False),
)

holdings = Table(
    "holdings",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("account_id", UUIDType(), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("instrument_id", String(128), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("name", String(255), nullable=True),
    Column("asset_type", String(32), nullable=False),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("cost_basis_total", ExactDecimal(), nullable=True),
    Column("cost_basis_per_unit", ExactDecimal(), nullable=True),
    Column("cost_basis_reported", String(16), nullable=True),
    Column("price", ExactDecimal(), nullable=True),
    Column("market_value", ExactDecimal(), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("as_of", UTCDateTime(), nullable=False),
    Column("closed_at", UTCDateTime(), nullable=True),
    Column("content_hash", String(64), nullable=False),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
    UniqueConstraint("account_id", "instrument_id"),
)

#: Append-only position history: one row per position that changed in a snapshot.
holding_snapshots = Table(
    "holding_snapshots",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("account_id", UUIDType(), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("instrument_id", String(128), nullable=False),
    Column("symbol", String(64), nullable=False),
    Column("quantity", ExactDecimal(), nullable=False),
    Column("cost_basis_total", ExactDecimal(), nullable=True),
    Column("cost_basis_per_unit", ExactDecimal(), nullable=True),
    Column("price", ExactDecimal(), nullable=True),
    Column("market_value", ExactDecimal(), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("as_of", UTCDateTime(), nullable=False),
    Column("change", String(16), nullable=False),  # opened | changed | closed
    Column("reason", Text(), nullable=True),
    Column("recorded_at", UTCDateTime(), nullable=False),
    Index(None, "account_id", "instrument_id", "as_of"),
)

balance_snapshots = Table(
    "balance_snapshots",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("account_id", UUIDType(), ForeignKey("accounts.id", ondelete="CASCADE"), nullable=False),
    Column("date", Date(), nullable=False),
    Column("as_of", UTCDateTime(), nullable=False),
    Column("current", ExactDecimal(), nullable=True),
    Column("available", ExactDecimal(), nullable=True),
    Column("currency", String(3), nullable=False),
    Column("source", String(16), nullable=False),
    UniqueConstraint("account_id", "date"),
)

change_log = Table(
    "change_log",
    metadata,
    Column("seq", SeqType, primary_key=True, autoincrement=True),
    # user_id / account_id are denormalized copies for the feed query; deleting a user or an
    # account cascades through transactions, so only transaction_id carries a foreign key
    # (one check per row instead of three on a 100k-row first sync).
    Column("user_id", UUIDType(), nullable=False),
    Column("account_id", UUIDType(), nullable=False),
    Column(
        "transaction_id",
        UUIDType(),
        ForeignKey("transactions.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("kind", String(16), nullable=False),  # added | modified | removed
    Column("created_at", UTCDateTime(), nullable=False),
    Index(None, "user_id", "seq"),
    sqlite_autoincrement=True,
)

outbox = Table(
    "outbox",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column("event", String(64), nullable=False),
    Column("payload", JSONType, nullable=False),
    Column("user_id", UUIDType(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    Column("dispatched_at", UTCDateTime(), nullable=True),
    Index(None, "dispatched_at", "created_at"),
    # SSE Last-Event-ID resume: a user's events after an id (migration 0005).
    Index(None, "user_id", "id"),
)

sync_runs = Table(
    "sync_runs",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column(
        "connection_id",
        UUIDType(),
        ForeignKey("provider_connections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("status", String(16), nullable=False),  # queued | running | succeeded | failed
    Column("started_at", UTCDateTime(), nullable=True),
    Column("finished_at", UTCDateTime(), nullable=True),
    Column("counts", JSONType, nullable=True),
    Column("error", Text(), nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    # last liveness stamp of a running run's worker (NULL until its first heartbeat)
    Column("heartbeat_at", UTCDateTime(), nullable=True),
    Index(None, "connection_id", "created_at"),
    Index(
        "uq_sync_runs_active_connection",
        "connection_id",
        unique=True,
        postgresql_where=text("status IN ('queued', 'running')"),
        sqlite_where=text("status IN ('queued', 'running')"),
    ),
)

imports = Table(
    "imports",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column(
        "connection_id",
        UUIDType(),
        ForeignKey("provider_connections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("user_id", UUIDType(), ForeignKey("users.id", ondelete="CASCADE"), nullable=False),
    Column("filename", String(255), nullable=False),
    Column("sha256", String(64), nullable=False),
    Column("counts", JSONType, nullable=True),
    Column("created_at", UTCDateTime(), nullable=False),
    UniqueConstraint("user_id", "sha256"),
)

raw_payloads = Table(
    "raw_payloads",
    metadata,
    Column("id", UUIDType(), primary_key=True),
    Column(
        "connection_id",
        UUIDType(),
        ForeignKey("provider_connections.id", ondelete="CASCADE"),
        nullable=False,
    ),
    Column("kind", String(32), nullable=False),
    Column("request", Text(), nullable=False),
    Column("provider_account_id", String(255), nullable=True),
    Column("content", LargeBinary(), nullable=False),  # zlib-compressed
    Column("content_type", String(128), nullable=False),
    Column("size", Integer(), nullable=False),  # uncompressed bytes
    Column("sha256", String(64), nullable=False),  # of the uncompressed content
    Column("fetched_at", UTCDateTime(), nullable=False),
    Column("sync_id", UUIDType(), ForeignKey("sync_runs.id", ondelete="SET NULL"), nullable=True),
    Column("import_id", UUIDType(), ForeignKey("imports.id", ondelete="SET NULL"), nullable=True),
    Index(None, "connection_id", "fetched_at"),
)

sync_watermarks = Table(
    "sync_watermarks",
    metadata,
    Column(
        "account_id",
        UUIDType(),
        ForeignKey("accounts.id", ondelete="CASCADE"),
        primary_key=True,
    ),
    Column("kind", String(32), primary_key=True),
    Column("value", String(255), nullable=False),
    Column("updated_at", UTCDateTime(), nullable=False),
)

__all__ = [
    "SeqType",
    "balance_snapshots",
    "change_log",
    "holding_snapshots",
    "holdings",
    "imports",
    "outbox",
    "pending_matches",
    "raw_payloads",
    "sync_runs",
    "sync_watermarks",
    "transactions",
]
