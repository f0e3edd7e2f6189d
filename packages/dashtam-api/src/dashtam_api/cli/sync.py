"""``dashtam sync [CONNECTION_ID | --user EMAIL]``: sync now, with progress.

Every sync is audited (``sync.finish`` on the connection, a failure when it ends ``failed`` or
cannot run), and so is every OAuth grant completed against an in-process simulator
(``connection.authorize``); see :mod:`dashtam_api.cli.auditing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

from dashtam_api.cli.auditing import CliAuditor
from dashtam_api.cli.data import (
    JsonOption,
    echo_json,
    parse_uuid,
    run_with_container,
    show_progress,
    stderr_console,
    unwrap,
    user_id_for,
)

if TYPE_CHECKING:
    from dashtam_core.application.container import Container


async def approve_sandbox_grant(
    c: Container,
    provider: str,
    authorization_url: str,
    *,
    auditor: CliAuditor,
    actor: UUID | None,
    connection_id: UUID,
) -> Any:
    """Play the browser of an OAuth flow against the in-process simulator; complete it.

    Audited as ``connection.authorize`` of ``connection_id`` by ``actor`` (the credentials of
    the connection are replaced).
    """
    from urllib.parse import parse_qs, urlsplit

    import httpx

    from dashtam_core.application.connections import complete_oauth
    from dashtam_core.errors import ProviderProtocolError

    async with auditor.action(
        "connection.authorize",
        actor=actor,
        object_type="connection",
        object_id=connection_id,
        details={"provider": provider},
    ):
        async with httpx.AsyncClient(transport=c.http_transport(provider)) as browser:
            answer = await browser.get(authorization_url)
        query = parse_qs(urlsplit(answer.headers.get("location", "")).query)
        if "code" not in query or "state" not in query:
            raise ProviderProtocolError(f"the {provider} sandbox did not approve the request")
        return unwrap(await complete_oauth(c, query["state"][0], code=query["code"][0]))


async def _regrant_in_sandbox(
    c: Container, connection_id: UUID, *, auditor: CliAuditor, actor: UUID | None
) -> None:
    """In-process OAuth simulators forget their grants when a command ends: re-approve the
    connection in place (same connection and account ids) before syncing it."""
    from dashtam_core.application.connections import start_oauth
    from dashtam_core.domain.connection import AuthType, ConnectionStatus

    if not (c.settings.sandbox and c.sandbox_transport == "asgi"):
        return
    async with c.uow_factory() as uow:
        conn = await uow.connections.get(connection_id)
    if conn is None or conn.provider not in c.plugins.providers:
        return
    if c.registered(conn.provider).spec.auth_type != AuthType.OAUTH2:
        return
    if conn.status == ConnectionStatus.DISCONNECTED:
        return
    started = unwrap(await start_oauth(c, conn.user_id, conn.provider, connection_id=conn.id))
    await approve_sandbox_grant(
        c,
        conn.provider,
        started.authorization_url,
        auditor=auditor,
        actor=actor,
        connection_id=conn.id,
    )


async def sync_with_progress(
    c: Container,
    connection_id: UUID,
    *,
    auditor: CliAuditor,
    actor: UUID | None,
    force: bool = False,
    label: str = "",
) -> dict[str, Any]:
    """Run one sync (progress bar on a terminal) and return its ``GET /syncs/{id}`` object.

    Audited as ``sync.finish`` of the connection by ``actor``: success, or failure when the
    sync ends ``failed`` or cannot start.
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from dashtam_core.application.exports import sync_run_to_dict
    from dashtam_core.application.syncing import sync_connection
    from dashtam_core.domain.audit import AuditOutcome
    from dashtam_core.domain.events import SyncProgressed

    async with auditor.action(
        "sync.finish",
        actor=actor,
        object_type="connection",
        object_id=connection_id,
        details={"force": force},
    ) as audited:
        with Progress(
            SpinnerColumn(),
            TextColumn("{task.description}"),
            console=stderr_console(),
            transient=True,
            disable=not show_progress(),
        ) as bar:
            task = bar.add_task(f"sync {label or connection_id}", total=None)

            def on_progress(event: SyncProgressed) -> None:
                total = f"/{event.total}" if event.total else ""
                bar.update(task, description=f"sync {label}: {event.stage} {event.done}{total}")

            run = unwrap(await sync_connection(c, connection_id, force=force, progress=on_progress))
        out = sync_run_to_dict(run)
        audited.details.update({"sync_id": out["id"], "status": out["status"], **out["counts"]})
        if out["status"] == "failed":
            audited.outcome = AuditOutcome.FAILURE
    return out


def _summary(run: dict[str, Any]) -> str:
    n = run["counts"]
    text = (
        f"sync {run['id']} {run['status']}: {n['accounts']} accounts, "
        f"+{n['transactions_added']} ~{n['transactions_modified']} "
        f"-{n['transactions_removed']} transactions, {n['holdings']} holdings"
    )
    return text + (f" ({run['error']})" if run["error"] else "")


def sync(
    connection: Annotated[str | None, typer.Argument(help="Connection id.")] = None,
    user: Annotated[str | None, typer.Option("--user", help="Sync every connection.")] = None,
    force: Annotated[bool, typer.Option("--force", help="Refresh tokens first.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Sync one connection, or every API connection of a user, now."""
    from dashtam_core.domain.connection import AuthType, ConnectionStatus
    from dashtam_core.errors import ValidationError

    if (connection is None) == (user is None):
        raise typer.BadParameter("give a CONNECTION_ID or --user EMAIL (not both)")
    connection_id = parse_uuid(connection, "connection") if connection else None

    async def work(c: Container) -> list[dict[str, Any]]:
        auditor = CliAuditor.for_container(c)
        if connection_id is not None:
            await _regrant_in_sandbox(c, connection_id, auditor=auditor, actor=None)
            run = await sync_with_progress(
                c, connection_id, auditor=auditor, actor=None, force=force
            )
            return [run]
        assert user is not None
        uid = await user_id_for(c, user)
        async with c.uow_factory() as uow:
            conns = await uow.connections.list_for_user(uid)
        wanted = [
            x
            for x in conns
            if x.provider in c.plugins.providers
            and c.registered(x.provider).spec.auth_type != AuthType.FILE_IMPORT
            and x.status not in (ConnectionStatus.DISCONNECTED, ConnectionStatus.PENDING)
        ]
        if not wanted:
            raise ValidationError(f"{user} has no connection to sync")
        runs = []
        for x in wanted:
            await _regrant_in_sandbox(c, x.id, auditor=auditor, actor=uid)
            runs.append(
                await sync_with_progress(
                    c, x.id, auditor=auditor, actor=uid, force=force, label=x.alias or x.provider
                )
            )
        return runs

    runs = run_with_container(work)
    if as_json:
        echo_json(runs[0] if connection_id is not None else {"data": runs})
    else:
        for run in runs:
            typer.echo(_summary(run))
    if any(r["status"] == "failed" for r in runs):
        raise typer.Exit(1)


__all__ = ["approve_sandbox_grant", "sync", "sync_with_progress"]
