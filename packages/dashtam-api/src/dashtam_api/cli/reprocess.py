"""``dashtam reprocess CONNECTION_ID``: re-normalize a connection from its raw archive.

Audited as ``connection.reprocess`` by the operator (no user is named), by the application
service with the CLI origin; see :mod:`dashtam_api.cli.auditing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from dashtam_api.cli.auditing import cli_origin
from dashtam_api.cli.data import JsonOption, echo_json, parse_uuid, run_with_container, unwrap

if TYPE_CHECKING:
    from dashtam_core.application.container import Container


def reprocess(
    connection: Annotated[str, typer.Argument(help="Connection id.")],
    as_json: JsonOption = False,
) -> None:
    """Re-normalize stored data from archived raw payloads, without calling the provider."""
    from dashtam_core.application.reprocess import reprocess as run_reprocess

    connection_id = parse_uuid(connection, "connection")

    async def work(c: Container) -> dict[str, Any]:
        done = await run_reprocess(c, connection_id, origin=cli_origin(None))
        return dict(unwrap(done).as_dict())

    out = run_with_container(work)
    if as_json:
        echo_json(out)
        return
    typer.echo(
        f"reprocessed {out['payloads']} archived payload(s): "
        f"+{out['transactions_added']} ~{out['transactions_modified']} "
        f"-{out['transactions_removed']} transactions"
    )


__all__ = ["reprocess"]
