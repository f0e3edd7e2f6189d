"""TOTP replay guard shared by every process: ``users.mfa_last_step``.

The last accepted TOTP time step of a user, claimed with a compare-and-set ``UPDATE ... WHERE
mfa_last_step IS NULL OR mfa_last_step < :step`` (atomic on SQLite and PostgreSQL), so a code
accepted by one API replica is refused by every other one. ``NULL``: no code accepted yet.

Revision ID: 0006_totp_replay_guard
Revises: 0005_outbox_replay
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0006_totp_replay_guard"
down_revision = "0005_outbox_replay"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable column (existing users have accepted no code through it yet)."""
    op.add_column("users", sa.Column("mfa_last_step", sa.BigInteger(), nullable=True))


def downgrade() -> None:
    """Drop the column (SQLite 3.35+ drops it in place)."""
    op.drop_column("users", "mfa_last_step")
