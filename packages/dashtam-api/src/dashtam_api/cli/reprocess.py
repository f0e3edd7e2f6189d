"""``dashtam reprocess CONNECTION_ID``: re-normalize a connection from its raw archive.

Audited as ``connection.reprocess`` by the operator (no user is named); see
:mod:`dashtam_api.cli.auditing`.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

from dashtam_api.cli.auditing import CliAuditor
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
        auditor = CliAuditor.for_container(c)
        async with auditor.action(
            "connection.reprocess", actor=None, object_type="connection", object_id=connection_id
        ) as audited:
            out = dict(unwrap(await run_reprocess(c, connection_id)).as_dict())
            audited.details.update({k: v for k, v in out.items() if k != "connection_id"})
        return out

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
