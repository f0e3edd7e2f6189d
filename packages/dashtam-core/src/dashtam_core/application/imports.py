"""``import_statement``: a statement file through the same engine as a sync (sync.md, api.md).

The file is parsed in a worker thread; a parse failure returns the parser's
``StatementParseError`` (line / element named) and writes nothing. Everything else happens in
ONE database transaction: the ``imports`` row (unique per user and SHA-256 of the bytes, so the
same file again adds nothing), the file connection of (user, provider) created or joined, the
accounts with their balance snapshots, the transactions (not authoritative: a statement never
removes what another statement brought), the archived file, and a ``StatementImported`` event in
the outbox. On PostgreSQL the transaction first takes the user's advisory lock (the change
feed's, which every data writer of a user takes before any row lock), so concurrent imports of
one user store exactly what importing them one after the other would.

Given an ``origin``, the import is audited as ``import.create`` (object ``import``) in that same
transaction; a refused file records a failure in a transaction of its own, and a file imported
before (which adds nothing) records nothing.

Account choice for a parsed account: the ``account_id`` argument (it must be the caller's) when
given, else the parser's ``provider_account_id`` (OFX ``ACCTID``; for CSV the ``Chase1234``
file-name prefix or a per-layout id) inside the file connection.
"""

from __future__ import annotations

import asyncio
import hashlib
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select, update

from dashtam_core.adapters.sqlalchemy.tables_data import imports
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.audit import Origin
from dashtam_core.application.connections import audit_refusal
from dashtam_core.application.container import Container
from dashtam_core.application.syncing import upsert_accounts
from dashtam_core.domain.account import Account
from dashtam_core.domain.connection import AuthType, ConnectionStatus, ProviderConnection
from dashtam_core.domain.events import ConnectionCreated, DomainEvent, StatementImported
from dashtam_core.domain.ids import uuid7
from dashtam_core.errors import DashtamError, NotFound, ValidationError
from dashtam_core.ports.provider import (
    ParsedStatement,
    ProviderHolding,
    ProviderTransaction,
    RawPayload,
    StatementParser,
)
from dashtam_core.result import Err, Ok, Result
from dashtam_core.sync.archive import archive_raw_payloads
from dashtam_core.sync.balances import balance_snapshot, upsert_balance_snapshots
from dashtam_core.sync.changes import lock_change_feed
from dashtam_core.sync.engine import ingest_transactions
from dashtam_core.sync.holdings import snapshot_holdings
from dashtam_core.sync.outbox import write_events
from dashtam_core.sync.upsert import insert_for

_SNIFF_BYTES = 4096


@dataclass(frozen=True, slots=True)
class ImportResult:
    """The ``POST /api/v1/imports`` object."""

    id: UUID
    connection_id: UUID
    accounts: list[UUID]
    transactions_added: int
    transactions_skipped: int
    errors: list[dict[str, Any]] = field(default_factory=list)
    duplicate: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form (ids as strings)."""
        return {
            "id": str(self.id),
            "connection_id": str(self.connection_id),
            "accounts": [str(a) for a in self.accounts],
            "transactions_added": self.transactions_added,
            "transactions_skipped": self.transactions_skipped,
            "errors": list(self.errors),
        }


def _now() -> datetime:
    return datetime.now(UTC)


def detect_provider(container: Container, filename: str, data: bytes) -> str | None:
    """The first ``file_import`` provider (by slug) whose parser recognises the file."""
    head = data[:_SNIFF_BYTES]
    for slug in container.file_import_slugs():
        parser = container.provider(slug)
        if isinstance(parser, StatementParser) and parser.sniff(filename, head):
            return slug
    return None


async def _file_connection(
    uow: SqlAlchemyUnitOfWork,
    user_id: UUID,
    provider: str,
    connection_id: UUID | None,
    events: list[DomainEvent],
    now: datetime,
) -> Result[ProviderConnection, DashtamError]:
    if connection_id is not None:
        found = await uow.connections.get_for_user(connection_id, user_id)
        if found is None or found.provider != provider:
            return Err(NotFound("connection not found"))
        if found.status == ConnectionStatus.DISCONNECTED:
            return Err(ValidationError("the connection is disconnected"))
        return Ok(found)
    for conn in await uow.connections.list_for_user(user_id, provider=provider):
        if conn.status != ConnectionStatus.DISCONNECTED:
            return Ok(conn)
    conn = ProviderConnection(
        id=uuid7(),
        user_id=user_id,
        provider=provider,
        status=ConnectionStatus.ACTIVE,
        created_at=now,
        alias=None,
    )
    await uow.connections.add(conn)
    events.append(ConnectionCreated(user_id=user_id, connection_id=conn.id, provider=provider))
    return Ok(conn)


async def _existing(
    container: Container, user_id: UUID, digest: str, total: int
) -> ImportResult | None:
    async with container.uow_factory() as uow:
        row = (
            await uow.connection.execute(
                select(imports).where(imports.c.user_id == user_id, imports.c.sha256 == digest)
            )
        ).one_or_none()
    if row is None:
        return None
    counts = dict(row.counts or {})
    return ImportResult(
        id=row.id,
        connection_id=row.connection_id,
        accounts=[UUID(a) for a in counts.get("accounts", [])],
        transactions_added=0,
        transactions_skipped=total,
        duplicate=True,
    )


async def import_statement(
    container: Container,
    user_id: UUID,
    filename: str,
    data: bytes,
    *,
    provider: str | None = None,
    account_id: UUID | None = None,
    connection_id: UUID | None = None,
    origin: Origin | None = None,
) -> Result[ImportResult, DashtamError]:
    """Import one statement file for ``user_id``.

    Args:
        container: the application container.
        user_id: the owner.
        filename: the uploaded file's name (extension and ``Chase1234`` prefix are used).
        data: the file's bytes.
        provider: the ``file_import`` provider slug (default: sniff every installed one).
        account_id: store every transaction in this (existing, own) account.
        connection_id: add to this existing file connection.
        origin: who acts and from where (``None``: not audited).

    Returns:
        The import object, or ``Err(StatementParseError | ValidationError | NotFound)``
        (nothing written but the failure record).
    """
    if origin is not None:
        container.audit_key  # noqa: B018 - loads (or refuses) the key before anything happens
    asked = {"filename": filename, "provider": provider or "", "bytes": len(data)}
    done = await _import(
        container, user_id, filename, data, provider, account_id, connection_id, origin, asked
    )
    return await audit_refusal(
        container, origin, "import.create", done, object_type="import", details=asked
    )


async def _import(
    container: Container,
    user_id: UUID,
    filename: str,
    data: bytes,
    provider: str | None,
    account_id: UUID | None,
    connection_id: UUID | None,
    origin: Origin | None,
    asked: dict[str, object],
) -> Result[ImportResult, DashtamError]:
    if len(data) > container.settings.import_max_bytes:
        return Err(ValidationError(f"file too large (limit {container.settings.import_max_bytes})"))
    slug = provider or detect_provider(container, filename, data)
    if slug is None:
        return Err(ValidationError("the file is not a recognised statement format"))
    asked["provider"] = slug
    try:
        spec = container.require_provider(slug).spec
    except NotFound as exc:
        return Err(exc)
    parser = container.provider(slug)
    if spec.auth_type != AuthType.FILE_IMPORT or not isinstance(parser, StatementParser):
        return Err(ValidationError(f"provider {slug!r} does not import statement files"))
    parsed = await asyncio.to_thread(parser.parse_statement, data, filename)
    if isinstance(parsed, Err):
        return Err(parsed.error)
    statement = parsed.value
    digest = hashlib.sha256(data).hexdigest()
    found = await _existing(container, user_id, digest, len(statement.transactions))
    if found is not None:
        return Ok(found)
    return await _store(
        container,
        user_id,
        filename,
        data,
        digest,
        slug,
        statement,
        account_id,
        connection_id,
        origin,
        asked,
    )


async def _store(
    container: Container,
    user_id: UUID,
    filename: str,
    data: bytes,
    digest: str,
    slug: str,
    statement: ParsedStatement,
    account_id: UUID | None,
    connection_id: UUID | None,
    origin: Origin | None,
    asked: dict[str, object],
) -> Result[ImportResult, DashtamError]:
    now = _now()
    events: list[DomainEvent] = []
    import_id = uuid7()
    async with container.uow_factory() as uow:
        # The user's lock before any read: the file connection and the accounts are looked up
        # and created under it, so concurrent imports (and syncs) of one user queue.
        await lock_change_feed(uow.connection, user_id)
        target: Account | None = None
        if account_id is not None:
            target = await uow.accounts.get_for_user(account_id, user_id)
            if target is None:
                return Err(NotFound("account not found"))
            connection_id = target.connection_id
        got = await _file_connection(uow, user_id, slug, connection_id, events, now)
        if isinstance(got, Err):
            return got
        conn = got.value
        ins = insert_for(uow.connection, imports)
        new_id = (
            await uow.connection.execute(
                ins.values(
                    id=import_id,
                    connection_id=conn.id,
                    user_id=user_id,
                    filename=filename[:255],
                    sha256=digest,
                    counts={},
                    created_at=now,
                )
                .on_conflict_do_nothing(index_elements=[imports.c.user_id, imports.c.sha256])
                .returning(imports.c.id)
            )
        ).scalar_one_or_none()
        if new_id is None:  # the same file was imported concurrently
            await uow.rollback()
            again = await _existing(container, user_id, digest, len(statement.transactions))
            assert again is not None
            return Ok(again)
        if target is not None:
            by_pid = {a.provider_account_id: target for a in statement.accounts}
            snaps = [
                balance_snapshot(
                    target.id,
                    as_of=a.balance_as_of,
                    current=a.balance_current,
                    available=a.balance_available,
                    currency=a.currency,
                    source="import",
                )
                for a in statement.accounts[:1]
                if a.balance_as_of is not None and a.balance_current is not None
            ]
            await upsert_balance_snapshots(uow.connection, snaps)
        else:
            by_pid = await upsert_accounts(uow, conn, statement.accounts, source="import", now=now)
        grouped: dict[UUID, list[ProviderTransaction]] = defaultdict(list)
        for tx in statement.transactions:
            account = target or by_pid.get(tx.provider_account_id)
            if account is None:
                return Err(
                    ValidationError(f"transaction {tx.provider_transaction_id} has no account")
                )
            grouped[account.id].append(tx)
        added = 0
        for acc_id, records in grouped.items():
            stored = await ingest_transactions(
                uow.connection, user_id=user_id, account_id=acc_id, records=records
            )
            if isinstance(stored, Err):
                return Err(stored.error)
            added += stored.value.added
        held: dict[str, list[ProviderHolding]] = defaultdict(list)
        for h in statement.holdings:
            held[h.provider_account_id].append(h)
        for pid, positions in held.items():
            account = target or by_pid.get(pid)
            if account is not None:
                snap = await snapshot_holdings(
                    uow.connection, user_id=user_id, account_id=account.id, records=positions
                )
                if isinstance(snap, Err):
                    return Err(snap.error)
        accounts = sorted({a.id for a in by_pid.values()} | ({target.id} if target else set()))
        skipped = len(statement.transactions) - added
        counts = {
            "accounts": [str(a) for a in accounts],
            "transactions_added": added,
            "transactions_skipped": skipped,
            "format": statement.format,
        }
        await uow.connection.execute(
            update(imports).where(imports.c.id == import_id).values(counts=counts)
        )
        raw = RawPayload(
            kind="statement",
            content=data,
            content_type="application/octet-stream",
            fetched_at=now,
            request=f"import {filename[:200]}",
        )
        await archive_raw_payloads(
            uow.connection, connection_id=conn.id, payloads=[raw], import_id=import_id
        )
        events.append(
            StatementImported(
                user_id=user_id,
                import_id=import_id,
                connection_id=conn.id,
                transactions_added=added,
                transactions_skipped=skipped,
            )
        )
        await write_events(uow.connection, events, now=now)
        await container.audit(
            uow.connection,
            origin,
            "import.create",
            object_type="import",
            object_id=import_id,
            details={
                **asked,
                "connection_id": conn.id,
                "connection_created": any(isinstance(e, ConnectionCreated) for e in events),
                "transactions_added": added,
                "transactions_skipped": skipped,
            },
        )
        await uow.commit()
    return Ok(ImportResult(import_id, conn.id, accounts, added, skipped))


__all__ = ["ImportResult", "detect_provider", "import_statement"]
