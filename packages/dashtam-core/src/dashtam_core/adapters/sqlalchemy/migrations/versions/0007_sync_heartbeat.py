"""Sync run liveness: ``sync_runs.heartbeat_at``.

While a run executes, its worker stamps ``heartbeat_at`` every few seconds; a ``running`` run
whose ``coalesce(heartbeat_at, started_at)`` is older than a short window (a few missed
heartbeats) lost its worker and is failed as abandoned, so a killed worker's connection can be
synced again within minutes and a long but healthy sync is never failed. ``NULL``: no heartbeat
yet (the run's ``started_at`` stands in).

Revision ID: 0007_sync_heartbeat
Revises: 0006_totp_replay_guard
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

from dashtam_core.adapters.sqlalchemy.base import UTCDateTime

revision = "0007_sync_heartbeat"
down_revision = "0006_totp_replay_guard"
branch_labels = None
depends_on = None


def upgrade() -> None:
    """Add the nullable column (existing runs fall back to their ``started_at``)."""
    op.add_column("sync_runs", sa.Column("heartbeat_at", UTCDateTime(), nullable=True))


def downgrade() -> None:
    """Drop the column (SQLite 3.35+ drops it in place)."""
    op.drop_column("sync_runs", "heartbeat_at")
