"""``sync_connection``: fetch a connection's data from its provider and store it (sync.md).

One ``sync_runs`` row per sync; a sync requested while one is queued or running for the same
connection returns that one (a partial unique index makes this hold across processes). A run
left ``running`` longer than :data:`STALE_AFTER` (its worker was killed) is marked failed and a
new one may start: every stage is its own database transaction (accounts + balances; holdings
per account; transactions per account with its watermark), so a killed sync leaves complete
units only and the next run finishes the work.

Stages: accounts (upsert + balance snapshots) → holdings (engine snapshot) → transactions (first
sync ``settings.sync_history_days`` back, later syncs from the watermark minus
``settings.sync_overlap_days``; the answer is authoritative for its window, so withdrawn rows are
detected). Every raw page is archived with the stage that stored it. OAuth tokens are refreshed
ahead of expiry, and once more (with the refused token) when the provider says they expired.

Events: data events (``TransactionsChanged``, ``HoldingsSnapshotted`` ...) go through the outbox
with the data; ``SyncStarted`` / ``SyncProgressed`` / ``SyncFinished`` are progress notifications
published directly on the bus after each commit (an identical re-sync writes no outbox row).
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

import structlog
from sqlalchemy import select

from dashtam_core.adapters.sqlalchemy.tables_data import holdings as holdings_table
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.connections import (
    mark_needs_reauth,
    refresh_credentials,
    unseal_credentials,
)
from dashtam_core.application.container import Container
from dashtam_core.domain.account import Account
from dashtam_core.domain.connection import AuthType, ConnectionStatus, ProviderConnection
from dashtam_core.domain.events import (
    ConnectionStatusChanged,
    DomainEvent,
    SyncFinished,
    SyncProgressed,
    SyncStarted,
)
from dashtam_core.domain.ids import uuid7
from dashtam_core.errors import (
    AuthExpired,
    DashtamError,
    InvalidCredentials,
    NotFound,
    ProviderError,
    ValidationError,
)
from dashtam_core.ports.provider import (
    AccountsProvider,
    Credentials,
    Fetched,
    HoldingsProvider,
    OAuth2Auth,
    ProviderAccount,
    ProviderHolding,
    TransactionsProvider,
)
from dashtam_core.result import Err, Ok, Result
from dashtam_core.sync.archive import archive_raw_payloads, get_watermark, set_watermark
from dashtam_core.sync.balances import balance_snapshot, upsert_balance_snapshots
from dashtam_core.sync.engine import DateWindow, ingest_transactions
from dashtam_core.sync.holdings import SuspiciousEmptyAnswer, snapshot_holdings
from dashtam_core.sync.identity import holding_hash
from dashtam_core.sync.outbox import write_events
from dashtam_core.sync.runs import (
    SyncRun,
    SyncStatus,
    finish_sync_run,
    get_sync_run,
    queue_sync_run,
    start_sync_run,
)

log = structlog.get_logger(__name__)

#: A run still ``running`` after this long is presumed dead (its worker was killed).
STALE_AFTER = timedelta(minutes=30)
#: Watermark kind of the transactions stage (value: the last fully synced end date).
TRANSACTIONS_WATERMARK = "transactions"
SCOPES = ("accounts", "balances", "holdings", "transactions")

T = TypeVar("T")
ProgressCallback = Callable[[SyncProgressed], None]


@dataclass
class _Counts:
    accounts: int = 0
    transactions_added: int = 0
    transactions_modified: int = 0
    transactions_removed: int = 0
    holdings: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "accounts": self.accounts,
            "transactions_added": self.transactions_added,
            "transactions_modified": self.transactions_modified,
            "transactions_removed": self.transactions_removed,
            "holdings": self.holdings,
        }
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


class SyncFailed(DashtamError):
    """A stage of a sync failed (the run is recorded as failed; earlier stages are kept)."""

    code = "sync_failed"


def _now() -> datetime:
    return datetime.now(UTC)


async def upsert_accounts(
    uow: SqlAlchemyUnitOfWork,
    connection: ProviderConnection,
    records: Sequence[ProviderAccount],
    *,
    source: str,
    now: datetime,
) -> dict[str, Account]:
    """Create or update the connection's accounts and record their balance snapshots.

    Rows are written only when a field changed. Returns provider account id -> account.
    """
    by_provider: dict[str, Account] = {}
    snapshots = []
    for rec in records:
        found = await uow.accounts.get_by_provider_id(connection.id, rec.provider_account_id)
        if found is None:
            found = Account(
                id=uuid7(),
                connection_id=connection.id,
                user_id=connection.user_id,
                provider=connection.provider,
                provider_account_id=rec.provider_account_id,
                name=rec.name,
                type=rec.type,
                currency=rec.currency,
                created_at=now,
                subtype=rec.subtype,
                mask=rec.mask,
                balance_current=rec.balance_current,
                balance_available=rec.balance_available,
                balance_as_of=rec.balance_as_of,
            )
            await uow.accounts.add(found)
        else:
            newer = found.balance_as_of is None or (
                rec.balance_as_of is not None and rec.balance_as_of >= found.balance_as_of
            )
            wanted: dict[str, object] = {
                "name": rec.name,
                "type": rec.type,
                "currency": rec.currency,
                "subtype": rec.subtype,
                "mask": rec.mask,
                "is_closed": False,
            }
            if newer:
                wanted.update(
                    balance_current=rec.balance_current,
                    balance_available=rec.balance_available,
                    balance_as_of=rec.balance_as_of,
                )
            if any(getattr(found, k) != v for k, v in wanted.items()):
                for k, v in wanted.items():
                    setattr(found, k, v)
                await uow.accounts.update(found)
        by_provider[rec.provider_account_id] = found
        if rec.balance_as_of is not None and (
            rec.balance_current is not None or rec.balance_available is not None
        ):
            snapshots.append(
                balance_snapshot(
                    found.id,
                    as_of=rec.balance_as_of,
                    current=rec.balance_current,
                    available=rec.balance_available,
                    currency=rec.currency,
                    source=source,
                )
            )
    await upsert_balance_snapshots(uow.connection, snapshots)
    return by_provider


async def queue_sync(container: Container, connection_id: UUID) -> Result[SyncRun, DashtamError]:
    """Queue a sync of the connection, or return the one already queued or running.

    A ``running`` run older than :data:`STALE_AFTER` is failed first (its worker died).
    """
    now = _now()
    async with container.uow_factory() as uow:
        conn = await uow.connections.get(connection_id)
        if conn is None:
            return Err(NotFound("connection not found"))
        problem = _unsyncable(container, conn)
        if problem is not None:
            return Err(problem)
        run, created = await queue_sync_run(uow.connection, connection_id, now=now)
        if (
            not created
            and run.status == SyncStatus.RUNNING
            and run.started_at is not None
            and run.started_at < now - STALE_AFTER
        ):
            await finish_sync_run(
                uow.connection, run.id, succeeded=False, error="abandoned (worker stopped)"
            )
            run, _ = await queue_sync_run(uow.connection, connection_id, now=now)
        await uow.commit()
    return Ok(run)


def _unsyncable(container: Container, conn: ProviderConnection) -> DashtamError | None:
    if conn.status in (ConnectionStatus.DISCONNECTED, ConnectionStatus.PENDING):
        return ValidationError(f"connection is {conn.status.value}; it cannot be synced")
    if conn.provider not in container.plugins.providers:
        return NotFound(f"provider {conn.provider!r} is not installed")
    if container.registered(conn.provider).spec.auth_type == AuthType.FILE_IMPORT:
        return ValidationError("file connections are updated by importing statements")
    return None


async def sync_connection(
    container: Container,
    connection_id: UUID,
    *,
    scope: Sequence[str] | None = None,
    force: bool = False,
    start_date: date | None = None,
    progress: ProgressCallback | None = None,
) -> Result[SyncRun, DashtamError]:
    """Sync a connection now and return the finished run (or the one already running).

    Args:
        container: the application container.
        connection_id: the connection to sync.
        scope: stages to run (default: all the provider supports).
        force: refresh OAuth tokens first even if they look fresh.
        start_date: fetch transactions from this date instead of the watermark.
        progress: called with every ``SyncProgressed`` (CLI progress bars).
    """
    queued = await queue_sync(container, connection_id)
    if isinstance(queued, Err):
        return queued
    return await run_sync(
        container,
        queued.value.id,
        scope=scope,
        force=force,
        start_date=start_date,
        progress=progress,
    )


async def run_sync(
    container: Container,
    sync_id: UUID,
    *,
    scope: Sequence[str] | None = None,
    force: bool = False,
    start_date: date | None = None,
    progress: ProgressCallback | None = None,
) -> Result[SyncRun, DashtamError]:
    """Run a queued sync (a job's entry point); an already started run is returned as is."""
    async with container.uow_factory() as uow:
        run = await get_sync_run(uow.connection, sync_id)
        if run is None:
            return Err(NotFound("sync not found"))
        started = await start_sync_run(uow.connection, sync_id)
        conn = await uow.connections.get(run.connection_id)
        await uow.commit()
    if not started or conn is None:
        return Ok(run)
    await container.bus.publish(
        SyncStarted(user_id=conn.user_id, sync_id=sync_id, connection_id=conn.id)
    )
    counts = _Counts()
    worker = _SyncWorker(container, conn, sync_id, counts, progress)
    error: DashtamError | None = None
    try:
        outcome = await worker.run(set(scope or SCOPES), force=force, start_date=start_date)
        if isinstance(outcome, Err):
            error = outcome.error
    except Exception as exc:
        log.error("sync_crashed", sync_id=str(sync_id), error_type=type(exc).__name__)
        error = SyncFailed(f"internal error ({type(exc).__name__})")
        await _finish(container, conn, sync_id, counts, error)
        raise
    return Ok(await _finish(container, conn, sync_id, counts, error))


async def _finish(
    container: Container,
    conn: ProviderConnection,
    sync_id: UUID,
    counts: _Counts,
    error: DashtamError | None,
) -> SyncRun:
    now = _now()
    if isinstance(error, AuthExpired | InvalidCredentials):
        await mark_needs_reauth(container, conn.id, error.message)
    async with container.uow_factory() as uow:
        await finish_sync_run(
            uow.connection,
            sync_id,
            succeeded=error is None,
            counts=counts.as_dict(),
            error=None if error is None else f"{error.code}: {error.message}",
            now=now,
        )
        current = await uow.connections.get(conn.id)
        events: list[DomainEvent] = []
        if current is not None and current.status != ConnectionStatus.DISCONNECTED:
            old = current.status
            if error is None:
                current.last_synced_at = now
                if current.status != ConnectionStatus.ACTIVE:
                    current.transition(ConnectionStatus.ACTIVE)
                current.last_error = None
            elif not isinstance(error, AuthExpired | InvalidCredentials):
                current.transition(ConnectionStatus.ERROR, error=error.message)
            await uow.connections.update(current)
            if current.status != old:
                events.append(
                    ConnectionStatusChanged(
                        user_id=current.user_id,
                        connection_id=current.id,
                        old_status=str(old),
                        new_status=str(current.status),
                        reason=current.last_error,
                    )
                )
        if events:
            await write_events(uow.connection, events, now=now)
        finished = await get_sync_run(uow.connection, sync_id)
        await uow.commit()
    assert finished is not None
    await container.bus.publish(
        SyncFinished(
            user_id=conn.user_id,
            sync_id=sync_id,
            connection_id=conn.id,
            status=str(finished.status),
            transactions_added=counts.transactions_added,
            transactions_modified=counts.transactions_modified,
            transactions_removed=counts.transactions_removed,
            error=finished.error,
        )
    )
    return finished


async def _keep_as_of(
    uow: SqlAlchemyUnitOfWork, account_id: UUID, records: Sequence[ProviderHolding]
) -> list[ProviderHolding]:
    """Give an unchanged position its stored ``as_of`` so an identical re-sync writes nothing.

    Providers stamp positions with the fetch time; the holdings content hash includes
    ``as_of``, so without this every sync would rewrite every position. A position whose
    content (apart from ``as_of``) is unchanged keeps the time it was first seen in that state.
    """
    h = holdings_table
    stored = {
        r.instrument_id: r
        for r in (
            await uow.connection.execute(
                select(h.c.instrument_id, h.c.as_of, h.c.content_hash).where(
                    h.c.account_id == account_id, h.c.closed_at.is_(None)
                )
            )
        ).all()
    }
    out: list[ProviderHolding] = []
    for rec in records:
        old = stored.get(rec.instrument_id)
        if old is not None and old.as_of != rec.as_of:
            same = dataclasses.replace(rec, as_of=old.as_of)
            if holding_hash(same) == old.content_hash:
                rec = same
        out.append(rec)
    return out


class _SyncWorker:
    """The stages of one run (one instance per run)."""

    def __init__(
        self,
        container: Container,
        conn: ProviderConnection,
        sync_id: UUID,
        counts: _Counts,
        progress: ProgressCallback | None,
    ) -> None:
        self.c = container
        self.conn = conn
        self.sync_id = sync_id
        self.counts = counts
        self.progress = progress
        self.provider = container.provider(conn.provider)
        self.creds: Credentials | None = None

    async def _progress(self, stage: str, done: int, total: int | None) -> None:
        event = SyncProgressed(
            user_id=self.conn.user_id,
            sync_id=self.sync_id,
            connection_id=self.conn.id,
            stage=stage,
            done=done,
            total=total,
        )
        if self.progress is not None:
            self.progress(event)
        await self.c.bus.publish(event)

    async def _call(
        self, fetch: Callable[[Credentials], Awaitable[Result[T, ProviderError]]]
    ) -> Result[T, DashtamError]:
        """Call the provider; on ``AuthExpired`` refresh once (OAuth) and retry."""
        assert self.creds is not None
        result = await fetch(self.creds)
        if (
            isinstance(result, Err)
            and isinstance(result.error, AuthExpired)
            and isinstance(self.provider, OAuth2Auth)
        ):
            refreshed = await refresh_credentials(
                self.c, self.conn.id, used_access_token=self.creds.get("access_token", "")
            )
            if isinstance(refreshed, Err):
                return refreshed
            self.creds = refreshed.value
            result = await fetch(self.creds)
        if isinstance(result, Err):
            return Err(result.error)
        return Ok(result.value)

    async def run(
        self, scope: set[str], *, force: bool, start_date: date | None
    ) -> Result[None, DashtamError]:
        if isinstance(self.provider, OAuth2Auth):
            opened = await refresh_credentials(self.c, self.conn.id, force=force)
        else:
            opened = unseal_credentials(self.c, self.conn)
        if isinstance(opened, Err):
            return Err(opened.error)
        self.creds = opened.value
        if not isinstance(self.provider, AccountsProvider):
            return Err(ValidationError(f"provider {self.conn.provider!r} cannot list accounts"))
        provider = self.provider
        fetched = await self._call(provider.fetch_accounts)
        if isinstance(fetched, Err):
            return fetched
        accounts = await self._store_accounts(fetched.value)
        await self._progress("accounts", len(accounts), len(accounts))
        for index, (pid, account) in enumerate(sorted(accounts.items()), start=1):
            if "holdings" in scope and isinstance(provider, HoldingsProvider):
                stored = await self._holdings(provider, pid, account)
                if isinstance(stored, Err):
                    return stored
            if "transactions" in scope and isinstance(provider, TransactionsProvider):
                stored = await self._transactions(provider, pid, account, start_date)
                if isinstance(stored, Err):
                    return stored
            await self._progress("account", index, len(accounts))
        return Ok(None)

    async def _store_accounts(self, fetched: Fetched[ProviderAccount]) -> dict[str, Account]:
        now = _now()
        async with self.c.uow_factory() as uow:
            accounts = await upsert_accounts(
                uow, self.conn, fetched.records, source="sync", now=now
            )
            await archive_raw_payloads(
                uow.connection,
                connection_id=self.conn.id,
                payloads=fetched.raw,
                sync_id=self.sync_id,
            )
            await uow.commit()
        self.counts.accounts = len(accounts)
        return accounts

    async def _holdings(
        self, provider: HoldingsProvider, pid: str, account: Account
    ) -> Result[None, DashtamError]:
        async def fetch(creds: Credentials) -> Any:
            return await provider.fetch_holdings(creds, pid)

        fetched = await self._call(fetch)
        if isinstance(fetched, Err):
            return fetched
        answer = fetched.value
        async with self.c.uow_factory() as uow:
            records = await _keep_as_of(uow, account.id, answer.records)
            stored = await snapshot_holdings(
                uow.connection,
                user_id=self.conn.user_id,
                account_id=account.id,
                records=records,
            )
            if isinstance(stored, Err):
                if not isinstance(stored.error, SuspiciousEmptyAnswer):
                    return Err(stored.error)
                self.counts.warnings.append(f"account {account.id}: {stored.error.message}")
            else:
                self.counts.holdings += stored.value.open_positions
            await archive_raw_payloads(
                uow.connection,
                connection_id=self.conn.id,
                payloads=answer.raw,
                sync_id=self.sync_id,
            )
            await uow.commit()
        await self._progress("holdings", len(answer.records), None)
        return Ok(None)

    async def _transactions(
        self, provider: TransactionsProvider, pid: str, account: Account, start_date: date | None
    ) -> Result[None, DashtamError]:
        settings = self.c.settings
        end = datetime.now(UTC).date()
        async with self.c.uow_factory() as uow:
            mark = await get_watermark(uow.connection, account.id, TRANSACTIONS_WATERMARK)
        if start_date is not None:
            start = start_date
        elif mark is None:
            start = end - timedelta(days=settings.sync_history_days)
        else:
            start = date.fromisoformat(mark) - timedelta(days=settings.sync_overlap_days)
        start = min(start, end)

        async def fetch(creds: Credentials) -> Any:
            return await provider.fetch_transactions(creds, pid, start, end)

        fetched = await self._call(fetch)
        if isinstance(fetched, Err):
            return fetched
        answer = fetched.value
        async with self.c.uow_factory() as uow:
            stored = await ingest_transactions(
                uow.connection,
                user_id=self.conn.user_id,
                account_id=account.id,
                records=answer.records,
                window=DateWindow(start, end),
                authoritative=True,
            )
            if isinstance(stored, Err):
                return Err(stored.error)
            await archive_raw_payloads(
                uow.connection,
                connection_id=self.conn.id,
                payloads=answer.raw,
                sync_id=self.sync_id,
            )
            if mark is None or end.isoformat() > mark:
                await set_watermark(
                    uow.connection, account.id, TRANSACTIONS_WATERMARK, end.isoformat()
                )
            await uow.commit()
        counts = stored.value
        self.counts.transactions_added += counts.added
        self.counts.transactions_modified += counts.modified
        self.counts.transactions_removed += counts.removed
        await self._progress("transactions", len(answer.records), None)
        return Ok(None)


__all__ = [
    "SCOPES",
    "STALE_AFTER",
    "TRANSACTIONS_WATERMARK",
    "ProgressCallback",
    "SyncFailed",
    "queue_sync",
    "run_sync",
    "sync_connection",
    "upsert_accounts",
]
