"""``dashtam sync [CONNECTION_ID | --user EMAIL]``: sync now, with progress.

Every sync is audited by the application services with the CLI origin (see
:mod:`dashtam_api.cli.auditing`), like a sync requested through the API: ``sync.start`` when
the run is queued (a failure when the connection cannot be synced) and ``sync.finish`` in the
transaction that finishes it (a failure when it ends ``failed``). A grant re-approved against
an in-process OAuth simulator records ``connection.reauthorize`` and ``connection.authorize``.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any
from uuid import UUID

import typer

from dashtam_api.cli.auditing import cli_origin
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
    from dashtam_core.application.audit import Origin
    from dashtam_core.application.container import Container


async def approve_sandbox_grant(
    c: Container,
    provider: str,
    authorization_url: str,
    *,
    origin: Origin,
    connection_id: UUID,
) -> Any:
    """Play the browser of an OAuth flow against the in-process simulator; complete it.

    Audited as ``connection.authorize`` of ``connection_id`` by ``origin`` (the credentials of
    the connection are replaced), a failure when the simulator does not approve.
    """
    from urllib.parse import parse_qs, urlsplit

    import httpx

    from dashtam_core.application.connections import complete_oauth
    from dashtam_core.errors import ProviderProtocolError

    async with httpx.AsyncClient(transport=c.http_transport(provider)) as browser:
        answer = await browser.get(authorization_url)
    query = parse_qs(urlsplit(answer.headers.get("location", "")).query)
    if "code" not in query or "state" not in query:
        refused = ProviderProtocolError(f"the {provider} sandbox did not approve the request")
        await c.audit_failure(
            origin,
            "connection.authorize",
            refused,
            object_type="connection",
            object_id=connection_id,
            details={"provider": provider},
        )
        raise refused
    done = await complete_oauth(c, query["state"][0], code=query["code"][0], origin=origin)
    return unwrap(done)


async def _regrant_in_sandbox(c: Container, connection_id: UUID, *, origin: Origin) -> None:
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
    started = unwrap(
        await start_oauth(c, conn.user_id, conn.provider, connection_id=conn.id, origin=origin)
    )
    await approve_sandbox_grant(
        c, conn.provider, started.authorization_url, origin=origin, connection_id=conn.id
    )


async def sync_with_progress(
    c: Container,
    connection_id: UUID,
    *,
    origin: Origin,
    force: bool = False,
    label: str = "",
) -> dict[str, Any]:
    """Run one sync (progress bar on a terminal) and return its ``GET /syncs/{id}`` object.

    Audited by ``origin``: ``sync.start`` and ``sync.finish`` of the connection (failures when
    it cannot start or ends ``failed``).
    """
    from rich.progress import Progress, SpinnerColumn, TextColumn

    from dashtam_core.application.exports import sync_run_to_dict
    from dashtam_core.application.syncing import sync_connection
    from dashtam_core.domain.events import SyncProgressed

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

        run = await sync_connection(
            c, connection_id, force=force, progress=on_progress, origin=origin
        )
    return sync_run_to_dict(unwrap(run))


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
        if connection_id is not None:
            operator = cli_origin(None)
            await _regrant_in_sandbox(c, connection_id, origin=operator)
            return [await sync_with_progress(c, connection_id, origin=operator, force=force)]
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
        origin = cli_origin(uid)
        for x in wanted:
            await _regrant_in_sandbox(c, x.id, origin=origin)
            runs.append(
                await sync_with_progress(
                    c, x.id, origin=origin, force=force, label=x.alias or x.provider
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
