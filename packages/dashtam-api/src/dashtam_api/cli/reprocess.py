"""``dashtam reprocess CONNECTION_ID``: re-normalize a connection from its raw archive."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any

import typer

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
        return dict(unwrap(await run_reprocess(c, connection_id)).as_dict())

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
