"""The stages of a sync run: accounts + balances, holdings, transactions (see ``syncing``).

Each stage is one database transaction (accounts with their balance snapshots and raw pages;
holdings per account; transactions per account with the watermark), so a killed run leaves
complete units only. :func:`upsert_accounts` is shared with statement imports.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from typing import Any, TypeVar
from uuid import UUID

from sqlalchemy import select

from dashtam_core.adapters.sqlalchemy.mapping import account_to_row
from dashtam_core.adapters.sqlalchemy.tables import accounts as accounts_table
from dashtam_core.adapters.sqlalchemy.tables_data import holdings as holdings_table
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.container import Container
from dashtam_core.application.credentials import refresh_credentials, unseal_credentials
from dashtam_core.domain.account import Account
from dashtam_core.domain.connection import ProviderConnection
from dashtam_core.domain.events import SyncProgressed
from dashtam_core.domain.ids import uuid7
from dashtam_core.errors import AuthExpired, DashtamError, ProviderError, ValidationError
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
from dashtam_core.sync.changes import lock_change_feed
from dashtam_core.sync.engine import DateWindow, ingest_transactions
from dashtam_core.sync.holdings import SuspiciousEmptyAnswer, snapshot_holdings
from dashtam_core.sync.identity import holding_hash
from dashtam_core.sync.upsert import insert_for

#: Watermark kind of the transactions stage (value: the last fully synced end date).
TRANSACTIONS_WATERMARK = "transactions"

T = TypeVar("T")
ProgressCallback = Callable[[SyncProgressed], None]


def _now() -> datetime:
    return datetime.now(UTC)


@dataclass
class SyncCounts:
    """The ``counts`` of a sync run."""

    accounts: int = 0
    transactions_added: int = 0
    transactions_modified: int = 0
    transactions_removed: int = 0
    holdings: int = 0
    warnings: list[str] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        """The ``GET /syncs/{id}`` counts (plus ``warnings`` when any)."""
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


async def _insert_account(
    uow: SqlAlchemyUnitOfWork, connection: ProviderConnection, rec: ProviderAccount, now: datetime
) -> Account | None:
    """Insert the account (``ON CONFLICT DO NOTHING``); None when it exists already."""
    account = Account(
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
    a = accounts_table
    stmt = (
        insert_for(uow.connection, a)
        .values(**account_to_row(account))
        .on_conflict_do_nothing(index_elements=[a.c.connection_id, a.c.provider_account_id])
        .returning(a.c.id)
    )
    inserted = (await uow.connection.execute(stmt)).scalar_one_or_none()
    return account if inserted is not None else None


def _changes(found: Account, rec: ProviderAccount) -> dict[str, object]:
    """The fields of ``found`` that ``rec`` changes.

    The balance comes only from a record at least as new as the stored one, and only when an
    amount differs: providers stamp balances with the fetch time, so an unchanged balance keeps
    its stored ``balance_as_of`` (when it last changed or was first seen).
    """
    wanted: dict[str, object] = {
        "name": rec.name,
        "type": rec.type,
        "currency": rec.currency,
        "subtype": rec.subtype,
        "mask": rec.mask,
        "is_closed": False,
    }
    newer = found.balance_as_of is None or (
        rec.balance_as_of is not None and rec.balance_as_of >= found.balance_as_of
    )
    amounts = (rec.balance_current, rec.balance_available)
    moved = amounts != (found.balance_current, found.balance_available)
    if newer and (moved or found.balance_as_of is None):
        wanted.update(
            balance_current=rec.balance_current,
            balance_available=rec.balance_available,
            balance_as_of=rec.balance_as_of,
        )
    return {k: v for k, v in wanted.items() if getattr(found, k) != v}


async def upsert_accounts(
    uow: SqlAlchemyUnitOfWork,
    connection: ProviderConnection,
    records: Sequence[ProviderAccount],
    *,
    source: str,
    now: datetime,
) -> dict[str, Account]:
    """Create or update the connection's accounts and record their balance snapshots.

    Takes the user's advisory lock first (``lock_change_feed``: every data writer of a user
    takes it before any row lock), so syncs and imports of one user queue instead of racing or
    deadlocking; a new account is inserted with ``ON CONFLICT DO NOTHING`` (then re-read), so
    even a writer outside the lock cannot make this fail. Rows are written only when a field
    changed (a balance only when an amount changed). Returns provider account id -> account.
    """
    await lock_change_feed(uow.connection, connection.user_id)
    by_provider: dict[str, Account] = {}
    snapshots = []
    for rec in records:
        found = await uow.accounts.get_by_provider_id(connection.id, rec.provider_account_id)
        if found is None:
            found = await _insert_account(uow, connection, rec, now)
        if found is None:  # created meanwhile by a writer that committed after our read
            found = await uow.accounts.get_by_provider_id(connection.id, rec.provider_account_id)
            assert found is not None
        if changed := _changes(found, rec):
            for k, v in changed.items():
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


async def keep_as_of(
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


class SyncWorker:
    """The stages of one run (one instance per run; :func:`run_sync` drives it)."""

    def __init__(
        self,
        container: Container,
        conn: ProviderConnection,
        sync_id: UUID,
        counts: SyncCounts,
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
            records = await keep_as_of(uow, account.id, answer.records)
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
    "TRANSACTIONS_WATERMARK",
    "ProgressCallback",
    "SyncCounts",
    "SyncWorker",
    "keep_as_of",
    "upsert_accounts",
]
