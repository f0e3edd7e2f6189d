"""``reprocess``: re-normalize a connection's data from its raw payload archive (sync.md rule 11).

Nothing is fetched. After a mapping fix ships, reprocessing stores exactly the changes the fix
implies, through the same engine as a sync (idempotent: an unchanged mapping writes nothing).

* File connections: every archived statement is parsed again with the provider's parser.
  Each file goes to the account(s) its import used (an import into an explicit account keeps
  that account). The union of all statements is authoritative for each account over the dates
  it covers, so a transaction the fixed parser no longer produces is reported removed.
* API connections: the provider must implement the optional
  :class:`~dashtam_core.ports.provider.Remappable` protocol (``remap(raw_payloads)``), which
  re-runs its pure mapping functions on the archived pages (newest first). Accounts and
  transactions are updated (newest page wins); nothing is removed, because older pages still
  hold rows the provider later withdrew; holdings are left to the next sync.

Given an ``origin``, the reprocess is audited as ``connection.reprocess`` with its counts in the
transaction of its last unit (the accounts, then one transaction per account), so the record
commits with the change that completes it; a refusal records a failure of its own.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any
from uuid import UUID

from sqlalchemy import select

from dashtam_core.adapters.sqlalchemy.tables_data import imports, raw_payloads
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application.audit import Origin
from dashtam_core.application.connections import audit_refusal
from dashtam_core.application.container import Container
from dashtam_core.application.syncing import upsert_accounts
from dashtam_core.domain.account import Account
from dashtam_core.domain.connection import AuthType
from dashtam_core.errors import DashtamError, NotFound, ValidationError
from dashtam_core.ports.provider import (
    ProviderAccount,
    ProviderTransaction,
    RawPayload,
    Remappable,
    StatementParser,
)
from dashtam_core.result import Err, Ok, Result
from dashtam_core.sync.archive import load_raw_payload
from dashtam_core.sync.engine import DateWindow, ingest_transactions


@dataclass(frozen=True, slots=True)
class ReprocessResult:
    """What a reprocess changed."""

    connection_id: UUID
    payloads: int
    accounts: int
    transactions_added: int
    transactions_modified: int
    transactions_removed: int

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "connection_id": str(self.connection_id),
            "payloads": self.payloads,
            "accounts": self.accounts,
            "transactions_added": self.transactions_added,
            "transactions_modified": self.transactions_modified,
            "transactions_removed": self.transactions_removed,
        }


@dataclass
class _Plan:
    accounts: list[ProviderAccount]
    #: stored account id (or provider account id to resolve) -> records, newest first
    by_account: dict[UUID | str, list[ProviderTransaction]]
    authoritative: bool


async def _archive(container: Container, connection_id: UUID) -> list[tuple[RawPayload, Any]]:
    async with container.engine.connect() as db:
        ids = (
            await db.execute(
                select(raw_payloads.c.id, raw_payloads.c.import_id)
                .where(raw_payloads.c.connection_id == connection_id)
                .order_by(raw_payloads.c.fetched_at.desc(), raw_payloads.c.id.desc())
            )
        ).all()
        out: list[tuple[RawPayload, Any]] = []
        for row in ids:
            payload = await load_raw_payload(db, row.id)
            if payload is not None:
                out.append((payload, row.import_id))
        return out


async def _import_target(container: Container, import_id: Any) -> UUID | None:
    if import_id is None:
        return None
    async with container.engine.connect() as db:
        counts = (
            await db.execute(select(imports.c.counts).where(imports.c.id == import_id))
        ).scalar_one_or_none()
    accounts = list((counts or {}).get("accounts", []))
    return UUID(accounts[0]) if len(accounts) == 1 else None


async def _plan_files(
    container: Container, parser: StatementParser, archive: list[tuple[RawPayload, Any]]
) -> Result[_Plan, DashtamError]:
    plan = _Plan([], defaultdict(list), authoritative=True)
    for payload, import_id in archive:
        if payload.kind != "statement":
            continue
        name = payload.request.removeprefix("import ")
        parsed = await asyncio.to_thread(parser.parse_statement, payload.content, name)
        if isinstance(parsed, Err):
            return Err(parsed.error)
        statement = parsed.value
        target = await _import_target(container, import_id)
        if target is None or len(statement.accounts) > 1:
            plan.accounts.extend(statement.accounts)
        for tx in statement.transactions:
            key: UUID | str = target if target is not None else tx.provider_account_id
            plan.by_account[key].append(tx)
    return Ok(plan)


async def reprocess(
    container: Container,
    connection_id: UUID,
    *,
    user_id: UUID | None = None,
    origin: Origin | None = None,
) -> Result[ReprocessResult, DashtamError]:
    """Re-normalize ``connection_id`` from its archive.

    Args:
        container: the application container.
        connection_id: the connection.
        user_id: when given, the connection must belong to this user.
        origin: who acts and from where (``None``: not audited).
    """
    if origin is not None:
        container.audit_key  # noqa: B018 - loads (or refuses) the key before anything happens
    done = await _reprocess(container, connection_id, user_id, origin)
    return await audit_refusal(
        container,
        origin,
        "connection.reprocess",
        done,
        object_type="connection",
        object_id=connection_id,
    )


async def _reprocess(
    container: Container, connection_id: UUID, user_id: UUID | None, origin: Origin | None
) -> Result[ReprocessResult, DashtamError]:
    async with container.uow_factory() as uow:
        conn = (
            await uow.connections.get(connection_id)
            if user_id is None
            else await uow.connections.get_for_user(connection_id, user_id)
        )
    if conn is None:
        return Err(NotFound("connection not found"))
    try:
        spec = container.require_provider(conn.provider).spec
    except NotFound as exc:
        return Err(exc)
    provider = container.provider(conn.provider)
    archive = await _archive(container, connection_id)
    if spec.auth_type == AuthType.FILE_IMPORT and isinstance(provider, StatementParser):
        planned = await _plan_files(container, provider, archive)
    elif isinstance(provider, Remappable):
        remapped = provider.remap([p for p, _ in archive])
        if isinstance(remapped, Err):
            return Err(remapped.error)
        grouped: dict[UUID | str, list[ProviderTransaction]] = defaultdict(list)
        for tx in remapped.value.transactions:
            grouped[tx.provider_account_id].append(tx)
        planned = Ok(_Plan(remapped.value.accounts, grouped, authoritative=False))
    else:
        return Err(
            ValidationError(
                f"provider {conn.provider!r} cannot re-map archived pages (no remap method)"
            )
        )
    if isinstance(planned, Err):
        return planned
    plan = planned.value
    now = datetime.now(UTC)
    added = modified = removed = 0
    async with container.uow_factory() as uow:
        newest: dict[str, ProviderAccount] = {}
        for acc in plan.accounts:  # newest payload first: keep the first of each id
            newest.setdefault(acc.provider_account_id, acc)
        by_pid = await upsert_accounts(
            uow, conn, list(newest.values()), source="reprocess", now=now
        )
        stored = {a.id: a for a in await uow.accounts.list_for_connection(conn.id)}
        merged: dict[UUID, list[ProviderTransaction]] = defaultdict(list)
        for key, records in plan.by_account.items():
            account: Account | None = by_pid.get(key) if isinstance(key, str) else stored.get(key)
            if account is None and isinstance(key, str):
                account = next((a for a in stored.values() if a.provider_account_id == key), None)
            if account is not None:
                merged[account.id].extend(records)
        accounts = len(by_pid) or len(stored)
        if not merged:  # nothing more to store: this transaction completes the reprocess
            await _audit_done(container, uow, origin, conn.id, len(archive), accounts, 0, 0, 0)
        await uow.commit()
    last = next(reversed(merged), None)
    for account_id, records in merged.items():
        window = DateWindow(min(r.date for r in records), max(r.date for r in records))
        async with container.uow_factory() as uow:
            result = await ingest_transactions(
                uow.connection,
                user_id=conn.user_id,
                account_id=account_id,
                records=records,
                window=window,
                authoritative=plan.authoritative,
                now=now,
            )
            if isinstance(result, Err):
                return Err(result.error)
            added += result.value.added
            modified += result.value.modified
            removed += result.value.removed
            if account_id == last:
                await _audit_done(
                    container,
                    uow,
                    origin,
                    conn.id,
                    len(archive),
                    accounts,
                    added,
                    modified,
                    removed,
                )
            await uow.commit()
    return Ok(ReprocessResult(connection_id, len(archive), accounts, added, modified, removed))


async def _audit_done(
    container: Container,
    uow: SqlAlchemyUnitOfWork,
    origin: Origin | None,
    connection_id: UUID,
    payloads: int,
    accounts: int,
    added: int,
    modified: int,
    removed: int,
) -> None:
    """The ``connection.reprocess`` record, in the transaction of the last unit."""
    await container.audit(
        uow.connection,
        origin,
        "connection.reprocess",
        object_type="connection",
        object_id=connection_id,
        details={
            "payloads": payloads,
            "accounts": accounts,
            "transactions_added": added,
            "transactions_modified": modified,
            "transactions_removed": removed,
        },
    )


__all__ = ["ReprocessResult", "reprocess"]
