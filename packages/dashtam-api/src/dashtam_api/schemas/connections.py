"""Bodies of the connection, sync and import routes."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

from dashtam_core.domain.connection import ConnectionStatus, ProviderConnection
from dashtam_core.sync.runs import SyncRun, SyncStatus

SyncScope = Literal["accounts", "balances", "holdings", "transactions"]


class ConnectionOut(BaseModel):
    """A provider connection and its health."""

    id: UUID
    provider: str
    alias: str | None
    status: ConnectionStatus
    auth_expires_at: dt.datetime | None = Field(
        description="When the provider authorization dies (repair before it)."
    )
    last_synced_at: dt.datetime | None
    last_error: str | None
    created_at: dt.datetime

    @classmethod
    def of(cls, conn: ProviderConnection) -> ConnectionOut:
        """The body of ``conn`` (never its credentials)."""
        return cls(
            id=conn.id,
            provider=conn.provider,
            alias=conn.alias,
            status=conn.status,
            auth_expires_at=conn.auth_expires_at,
            last_synced_at=conn.last_synced_at,
            last_error=conn.last_error,
            created_at=conn.created_at,
        )


class ConnectionList(BaseModel):
    """The caller's connections."""

    data: list[ConnectionOut]
    next_cursor: str | None = None


class ConnectionCreate(BaseModel):
    """``POST /api/v1/connections``: API-key providers need ``credentials``; OAuth ones do not."""

    model_config = ConfigDict(extra="forbid")

    provider: str = Field(min_length=1, max_length=64, examples=["alpaca"])
    alias: str | None = Field(default=None, max_length=255)
    credentials: dict[str, str] | None = Field(
        default=None, examples=[{"api_key_id": "PK...", "secret_key": "..."}]
    )
    options: dict[str, str] | None = Field(default=None, examples=[{"environment": "paper"}])


class ConnectionCreated(BaseModel):
    """The new connection; for OAuth providers also where to send the browser."""

    connection: ConnectionOut
    authorization_url: str | None = None
    state: str | None = None
    expires_in: int | None = Field(default=None, description="Seconds the `state` stays valid.")
    sync_id: UUID | None = Field(default=None, description="The initial sync started for it.")


class ConnectionPatch(BaseModel):
    """Rename a connection."""

    model_config = ConfigDict(extra="forbid")

    alias: str | None = Field(max_length=255)


class ReauthorizationOut(BaseModel):
    """Where to send the browser to repair the connection in place."""

    authorization_url: str
    state: str
    expires_in: int


class SyncRequest(BaseModel):
    """``POST /api/v1/connections/{id}/syncs`` (every field optional)."""

    model_config = ConfigDict(extra="forbid")

    scope: list[SyncScope] | None = None
    start_date: dt.date | None = None
    force: bool = Field(default=False, description="Refresh the provider tokens first.")


class SyncCounts(BaseModel):
    """What a sync wrote."""

    accounts: int = 0
    transactions_added: int = 0
    transactions_modified: int = 0
    transactions_removed: int = 0
    holdings: int = 0


class SyncOut(BaseModel):
    """A sync job."""

    id: UUID
    connection_id: UUID
    status: SyncStatus
    started_at: dt.datetime | None
    finished_at: dt.datetime | None
    counts: SyncCounts
    error: str | None
    warnings: list[str] = Field(default_factory=list)

    @classmethod
    def of(cls, run: SyncRun) -> SyncOut:
        """The body of ``run``."""
        counts: dict[str, Any] = dict(run.counts or {})
        warnings = [str(w) for w in counts.pop("warnings", []) or []]
        known = {k: int(v) for k, v in counts.items() if k in SyncCounts.model_fields}
        return cls(
            id=run.id,
            connection_id=run.connection_id,
            status=run.status,
            started_at=run.started_at,
            finished_at=run.finished_at,
            counts=SyncCounts(**known),
            error=run.error,
            warnings=warnings,
        )


class SyncStarted(BaseModel):
    """``202``: the sync (a new one, or the one already running for the connection)."""

    id: UUID
    status: SyncStatus
    connection_id: UUID


class ImportOut(BaseModel):
    """The result of a statement import."""

    id: UUID
    connection_id: UUID
    accounts: list[UUID]
    transactions_added: int
    transactions_skipped: int
    errors: list[dict[str, Any]] = Field(default_factory=list)


__all__ = [
    "ConnectionCreate",
    "ConnectionCreated",
    "ConnectionList",
    "ConnectionOut",
    "ConnectionPatch",
    "ImportOut",
    "ReauthorizationOut",
    "SyncCounts",
    "SyncOut",
    "SyncRequest",
    "SyncScope",
    "SyncStarted",
]
