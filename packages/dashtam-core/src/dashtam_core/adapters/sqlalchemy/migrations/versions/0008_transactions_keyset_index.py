"""Transactions keyset index: ``(account_id, date, id)`` instead of ``(account_id, date)``.

Every transaction list, export and change-feed page reads one account's rows in
``(date DESC, id DESC)`` order. With the id in the index the rows come off it already in that
order (no sort of each date's ties), and the index still serves every ``(account_id, date)``
range the old one served.

Revision ID: 0008_transactions_keyset_index
Revises: 0007_sync_heartbeat
"""

from __future__ import annotations

from alembic import op

revision = "0008_transactions_keyset_index"
down_revision = "0007_sync_heartbeat"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Create the keyset index, then drop the one it replaces."""
    op.create_index(
        "ix_transactions_account_id_date_id", "transactions", ["account_id", "date", "id"]
    )
    op.drop_index("ix_transactions_account_id_date", table_name="transactions")


def downgrade() -> None:
    """Restore the ``(account_id, date)`` index."""
    op.create_index("ix_transactions_account_id_date", "transactions", ["account_id", "date"])
    op.drop_index("ix_transactions_account_id_date_id", table_name="transactions")
