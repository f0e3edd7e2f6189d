"""``dashtam connect PROVIDER --user EMAIL``, ``dashtam connections``, ``dashtam disconnect``.

API-key providers: keys from ``--credential k=v`` (repeatable) or a JSON object on stdin; they
are checked with the provider before anything is stored, then the initial sync runs (skip it
with ``--no-sync``). OAuth providers: a pending connection is created and the authorization URL
printed; the browser comes back to the server's ``/oauth/{provider}/callback``.

Audited by the application services with the CLI origin of the ``--user`` (see
:mod:`dashtam_api.cli.auditing`), in the transaction of each change, as through the API:
``connection.create`` (a failure when the provider refuses the keys), ``connection.authorize``
when a sandbox grant completes, ``sync.start`` / ``sync.finish`` for the initial sync,
``connection.disconnect``.
"""

from __future__ import annotations

import json
import sys
from typing import TYPE_CHECKING, Annotated, Any

import typer

from dashtam_api.cli.auditing import cli_origin
from dashtam_api.cli.data import (
    JsonOption,
    UserOption,
    echo_json,
    parse_uuid,
    run_with_container,
    unwrap,
    user_id_for,
)
from dashtam_api.cli.sync import approve_sandbox_grant, sync_with_progress

if TYPE_CHECKING:
    from dashtam_core.application.audit import Origin
    from dashtam_core.application.container import Container


def _pairs(values: list[str], what: str) -> dict[str, str]:
    out: dict[str, str] = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise typer.BadParameter(f"{what} must look like key=value, got {item!r}")
        out[key.strip()] = value
    return out


def _stdin_credentials() -> dict[str, str]:
    from dashtam_core.errors import ValidationError

    if sys.stdin is None or sys.stdin.isatty():
        return {}
    raw = sys.stdin.read().strip()
    if not raw:
        return {}
    try:
        doc = json.loads(raw)
    except ValueError:
        raise ValidationError("stdin must hold a JSON object of credentials") from None
    if not isinstance(doc, dict):
        raise ValidationError("stdin must hold a JSON object of credentials")
    return {str(k): str(v) for k, v in doc.items()}


def connect(
    provider: Annotated[str, typer.Argument(help="Provider slug (see dashtam plugins).")],
    user: UserOption,
    option: Annotated[
        list[str] | None, typer.Option("--option", help="Provider option k=v (repeatable).")
    ] = None,
    credential: Annotated[
        list[str] | None, typer.Option("--credential", help="Credential k=v (repeatable).")
    ] = None,
    alias: Annotated[str | None, typer.Option("--alias", help="A name for it.")] = None,
    no_sync: Annotated[bool, typer.Option("--no-sync", help="Skip the initial sync.")] = False,
    as_json: JsonOption = False,
) -> None:
    """Connect an API-key provider, or print the OAuth URL for an OAuth one."""
    from dashtam_core.application.connections import connect_api_key, start_oauth
    from dashtam_core.application.exports import connection_to_dict
    from dashtam_core.domain.connection import AuthType
    from dashtam_core.errors import ValidationError

    options = _pairs(option or [], "--option")
    creds = _pairs(credential or [], "--credential")

    async def work(c: Container) -> dict[str, Any]:
        spec = c.require_provider(provider).spec
        uid = await user_id_for(c, user)
        origin = cli_origin(uid)
        if spec.auth_type == AuthType.OAUTH2:
            started = unwrap(await start_oauth(c, uid, provider, alias=alias, origin=origin))
            if c.settings.sandbox and c.sandbox_transport == "asgi":
                return await _approve_in_sandbox(c, origin, provider, started, no_sync, alias)
            return {
                "connection": connection_to_dict(started.connection),
                "authorization_url": started.authorization_url,
                "state": started.state,
                "expires_in": started.expires_in,
            }
        if spec.auth_type != AuthType.API_KEY:
            raise ValidationError(
                f"{provider} imports statement files: use dashtam import FILE --user {user}"
            )
        secrets = creds or _stdin_credentials()
        made = await connect_api_key(
            c, uid, provider, secrets, options=options, alias=alias, origin=origin
        )
        conn = unwrap(made)
        out: dict[str, Any] = {"connection": connection_to_dict(conn)}
        if not no_sync:
            out["sync"] = await sync_with_progress(
                c, conn.id, origin=origin, label=alias or provider
            )
            async with c.uow_factory() as uow:
                fresh = await uow.connections.get(conn.id)
            if fresh is not None:
                out["connection"] = connection_to_dict(fresh)
        return out

    out = run_with_container(work)
    if as_json:
        echo_json(out)
        return
    conn = out["connection"]
    if "authorization_url" in out:
        typer.echo(f"connection {conn['id']} is pending; open this URL to authorize:")
        typer.echo(out["authorization_url"])
        return
    typer.echo(f"connected {conn['provider']}: connection {conn['id']} ({conn['status']})")
    if "sync" in out:
        run = out["sync"]
        typer.echo(
            f"initial sync {run['status']}: {run['counts']['accounts']} accounts, "
            f"{run['counts']['transactions_added']} transactions, "
            f"{run['counts']['holdings']} holdings"
        )


async def _approve_in_sandbox(
    c: Container,
    origin: Origin,
    provider: str,
    started: Any,
    no_sync: bool,
    alias: str | None,
) -> dict[str, Any]:
    """No server runs: play the browser against the in-process simulator and finish.

    The simulator lives as long as this command, so the initial sync runs here too.
    """
    from dashtam_core.application.exports import connection_to_dict

    conn = await approve_sandbox_grant(
        c, provider, started.authorization_url, origin=origin, connection_id=started.connection.id
    )
    out: dict[str, Any] = {"connection": connection_to_dict(conn)}
    if not no_sync:
        out["sync"] = await sync_with_progress(c, conn.id, origin=origin, label=alias or provider)
        async with c.uow_factory() as uow:
            fresh = await uow.connections.get(conn.id)
        if fresh is not None:
            out["connection"] = connection_to_dict(fresh)
    return out


def connections(user: UserOption, as_json: JsonOption = False) -> None:
    """List the user's connections."""
    from dashtam_core.application.exports import connection_to_dict

    async def work(c: Container) -> list[dict[str, Any]]:
        uid = await user_id_for(c, user)
        async with c.uow_factory() as uow:
            return [connection_to_dict(x) for x in await uow.connections.list_for_user(uid)]

    data = run_with_container(work)
    if as_json:
        echo_json({"data": data})
        return
    for x in data:
        typer.echo(
            f"{x['id']}  {x['provider']:<8} {x['status']:<13} "
            f"{x['alias'] or '-'}  last synced {x['last_synced_at'] or 'never'}"
        )


def disconnect(
    connection: Annotated[str, typer.Argument(help="Connection id.")],
    user: UserOption,
    as_json: JsonOption = False,
) -> None:
    """Disconnect: destroy the credentials, keep the data."""
    from dashtam_core.application.connections import disconnect as do_disconnect
    from dashtam_core.application.exports import connection_to_dict

    connection_id = parse_uuid(connection, "connection")

    async def work(c: Container) -> dict[str, Any]:
        uid = await user_id_for(c, user)
        done = await do_disconnect(c, uid, connection_id, origin=cli_origin(uid))
        return connection_to_dict(unwrap(done))

    out = run_with_container(work)
    if as_json:
        echo_json({"connection": out})
    else:
        typer.echo(f"connection {out['id']} disconnected (data kept)")


__all__ = ["connect", "connections", "disconnect"]
