"""Financial data: transactions, holdings, snapshots, change log, outbox, sync bookkeeping.

Revision ID: 0002_financial_data
Revises: 0001_initial
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dashtam_core.adapters.sqlalchemy.base import ExactDecimal, JSONType, UTCDateTime, UUIDType

revision = "0002_financial_data"
down_revision = "0001_initial"
branch_labels = None
depends_on = None

_ACTIVE = sa.text("status IN ('queued', 'running')")


def _account_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["account_id"], ["accounts.id"], name=f"fk_{table}_account_id_accounts", ondelete="CASCADE"
    )


def _connection_fk(table: str) -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["connection_id"],
        ["provider_connections.id"],
        name=f"fk_{table}_connection_id_provider_connections",
        ondelete="CASCADE",
    )


def upgrade() -> None:
    """Create the financial data tables."""
    op.create_table(
        "transactions",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("account_id", UUIDType(), nullable=False),
        sa.Column("provider_transaction_id", sa.String(255), nullable=False),
        sa.Column("dedupe_key", sa.String(255), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("posted_at", UTCDateTime(), nullable=True),
        sa.Column("amount", ExactDecimal(), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("description", sa.Text(), nullable=False),
        sa.Column("merchant", sa.String(255), nullable=True),
        sa.Column("type", sa.String(32), nullable=False),
        sa.Column("subtype", sa.String(32), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("pending_link", sa.String(255), nullable=True),
        sa.Column("pending_transaction_id", UUIDType(), nullable=True),
        sa.Column("security_symbol", sa.String(64), nullable=True),
        sa.Column("security_quantity", ExactDecimal(), nullable=True),
        sa.Column("security_price", ExactDecimal(), nullable=True),
        sa.Column("security_asset_type", sa.String(32), nullable=True),
        sa.Column("fees", ExactDecimal(), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.Column("removed_at", UTCDateTime(), nullable=True),
        sa.Column("removed_reason", sa.String(16), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_transactions"),
        sa.UniqueConstraint(
            "account_id", "dedupe_key", name="uq_transactions_account_id_dedupe_key"
        ),
        _account_fk("transactions"),
        sa.ForeignKeyConstraint(
            ["pending_transaction_id"],
            ["transactions.id"],
            name="fk_transactions_pending_transaction_id_transactions",
            ondelete="SET NULL",
        ),
    )
    op.create_index("ix_transactions_account_id_date", "transactions", ["account_id", "date"])
    op.create_index("ix_transactions_account_id_status", "transactions", ["account_id", "status"])

    op.create_table(
        "pending_matches",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("account_id", UUIDType(), nullable=False),
        sa.Column("pending_transaction_id", UUIDType(), nullable=False),
        sa.Column("posted_transaction_id", UUIDType(), nullable=False),
        sa.Column("reason", sa.String(64), nullable=False),
        sa.Column("matched_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_pending_matches"),
        sa.UniqueConstraint(
            "pending_transaction_id", name="uq_pending_matches_pending_transaction_id"
        ),
        sa.UniqueConstraint(
            "posted_transaction_id", name="uq_pending_matches_posted_transaction_id"
        ),
        _account_fk("pending_matches"),
        sa.ForeignKeyConstraint(
            ["pending_transaction_id"],
            ["transactions.id"],
            name="fk_pending_matches_pending_transaction_id_transactions",
            ondelete="CASCADE",
        ),
        sa.ForeignKeyConstraint(
            ["posted_transaction_id"],
            ["transactions.id"],
            name="fk_pending_matches_posted_transaction_id_transactions",
            ondelete="CASCADE",
        ),
    )

    op.create_table(
        "holdings",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("account_id", UUIDType(), nullable=False),
        sa.Column("instrument_id", sa.String(128), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("name", sa.String(255), nullable=True),
        sa.Column("asset_type", sa.String(32), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("cost_basis_total", ExactDecimal(), nullable=True),
        sa.Column("cost_basis_per_unit", ExactDecimal(), nullable=True),
        sa.Column("cost_basis_reported", sa.String(16), nullable=True),
        sa.Column("price", ExactDecimal(), nullable=True),
        sa.Column("market_value", ExactDecimal(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("closed_at", UTCDateTime(), nullable=True),
        sa.Column("content_hash", sa.String(64), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_holdings"),
        sa.UniqueConstraint(
            "account_id", "instrument_id", name="uq_holdings_account_id_instrument_id"
        ),
        _account_fk("holdings"),
    )

    op.create_table(
        "holding_snapshots",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("account_id", UUIDType(), nullable=False),
        sa.Column("instrument_id", sa.String(128), nullable=False),
        sa.Column("symbol", sa.String(64), nullable=False),
        sa.Column("quantity", ExactDecimal(), nullable=False),
        sa.Column("cost_basis_total", ExactDecimal(), nullable=True),
        sa.Column("cost_basis_per_unit", ExactDecimal(), nullable=True),
        sa.Column("price", ExactDecimal(), nullable=True),
        sa.Column("market_value", ExactDecimal(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("change", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("recorded_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_holding_snapshots"),
        _account_fk("holding_snapshots"),
    )
    op.create_index(
        "ix_holding_snapshots_account_id_instrument_id_as_of",
        "holding_snapshots",
        ["account_id", "instrument_id", "as_of"],
    )

    op.create_table(
        "balance_snapshots",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("account_id", UUIDType(), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("as_of", UTCDateTime(), nullable=False),
        sa.Column("current", ExactDecimal(), nullable=True),
        sa.Column("available", ExactDecimal(), nullable=True),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("source", sa.String(16), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_balance_snapshots"),
        sa.UniqueConstraint("account_id", "date", name="uq_balance_snapshots_account_id_date"),
        _account_fk("balance_snapshots"),
    )

    op.create_table(
        "change_log",
        sa.Column(
            "seq",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("user_id", UUIDType(), nullable=False),
        sa.Column("account_id", UUIDType(), nullable=False),
        sa.Column("transaction_id", UUIDType(), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("seq", name="pk_change_log"),
        sa.ForeignKeyConstraint(
            ["transaction_id"],
            ["transactions.id"],
            name="fk_change_log_transaction_id_transactions",
            ondelete="CASCADE",
        ),
        sqlite_autoincrement=True,
    )
    op.create_index("ix_change_log_user_id_seq", "change_log", ["user_id", "seq"])

    op.create_table(
        "outbox",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("event", sa.String(64), nullable=False),
        sa.Column("payload", JSONType, nullable=False),
        sa.Column("user_id", UUIDType(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.Column("dispatched_at", UTCDateTime(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_outbox"),
    )
    op.create_index("ix_outbox_dispatched_at_created_at", "outbox", ["dispatched_at", "created_at"])

    op.create_table(
        "sync_runs",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("connection_id", UUIDType(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("started_at", UTCDateTime(), nullable=True),
        sa.Column("finished_at", UTCDateTime(), nullable=True),
        sa.Column("counts", JSONType, nullable=True),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_sync_runs"),
        _connection_fk("sync_runs"),
    )
    op.create_index(
        "ix_sync_runs_connection_id_created_at", "sync_runs", ["connection_id", "created_at"]
    )
    op.create_index(
        "uq_sync_runs_active_connection",
        "sync_runs",
        ["connection_id"],
        unique=True,
        postgresql_where=_ACTIVE,
        sqlite_where=_ACTIVE,
    )

    op.create_table(
        "imports",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("connection_id", UUIDType(), nullable=False),
        sa.Column("user_id", UUIDType(), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("counts", JSONType, nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_imports"),
        sa.UniqueConstraint("user_id", "sha256", name="uq_imports_user_id_sha256"),
        _connection_fk("imports"),
        sa.ForeignKeyConstraint(
            ["user_id"], ["users.id"], name="fk_imports_user_id_users", ondelete="CASCADE"
        ),
    )

    op.create_table(
        "raw_payloads",
        sa.Column("id", UUIDType(), nullable=False),
        sa.Column("connection_id", UUIDType(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("request", sa.Text(), nullable=False),
        sa.Column("provider_account_id", sa.String(255), nullable=True),
        sa.Column("content", sa.LargeBinary(), nullable=False),
        sa.Column("content_type", sa.String(128), nullable=False),
        sa.Column("size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("fetched_at", UTCDateTime(), nullable=False),
        sa.Column("sync_id", UUIDType(), nullable=True),
        sa.Column("import_id", UUIDType(), nullable=True),
        sa.PrimaryKeyConstraint("id", name="pk_raw_payloads"),
        _connection_fk("raw_payloads"),
        sa.ForeignKeyConstraint(
            ["sync_id"],
            ["sync_runs.id"],
            name="fk_raw_payloads_sync_id_sync_runs",
            ondelete="SET NULL",
        ),
        sa.ForeignKeyConstraint(
            ["import_id"],
            ["imports.id"],
            name="fk_raw_payloads_import_id_imports",
            ondelete="SET NULL",
        ),
    )
    op.create_index(
        "ix_raw_payloads_connection_id_fetched_at", "raw_payloads", ["connection_id", "fetched_at"]
    )

    op.create_table(
        "sync_watermarks",
        sa.Column("account_id", UUIDType(), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("value", sa.String(255), nullable=False),
        sa.Column("updated_at", UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("account_id", "kind", name="pk_sync_watermarks"),
        _account_fk("sync_watermarks"),
    )


def downgrade() -> None:
    """Drop the financial data tables (children first)."""
    for table in (
        "sync_watermarks",
        "raw_payloads",
        "imports",
        "sync_runs",
        "outbox",
        "change_log",
        "balance_snapshots",
        "holding_snapshots",
        "holdings",
        "pending_matches",
        "transactions",
    ):
        op.drop_table(table)
