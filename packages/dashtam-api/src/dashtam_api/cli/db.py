"""``dashtam db upgrade`` / ``dashtam db current``: database migrations."""

from __future__ import annotations

import asyncio
import json
from typing import Annotated

import typer

app = typer.Typer(help="Apply or show database migrations.", no_args_is_help=True)


def _database_url() -> str:
    from dashtam_api.settings import ApiSettings

    return ApiSettings().database_url


def _display(url: str) -> str:
    from sqlalchemy.engine import make_url

    return make_url(url).render_as_string(hide_password=True)


@app.command("upgrade")
def upgrade(
    revision: Annotated[str, typer.Argument(help="Target revision.")] = "heads",
) -> None:
    """Apply migrations up to REVISION (default: all heads)."""
    from dashtam_core.adapters.sqlalchemy import migrate

    url = _database_url()
    asyncio.run(migrate.upgrade(url, revision))
    revisions = asyncio.run(migrate.current(url))
    typer.echo(f"{_display(url)}: at {', '.join(revisions) or 'base'}")


@app.command("current")
def current(
    as_json: Annotated[bool, typer.Option("--json", help="Machine-readable output.")] = False,
) -> None:
    """Show the database's current revision(s) and the code's head revision(s)."""
    from dashtam_core.adapters.sqlalchemy import migrate

    url = _database_url()
    revisions = sorted(asyncio.run(migrate.current(url)))
    heads = sorted(migrate.heads())
    up_to_date = revisions == heads
    if as_json:
        payload = {"current": revisions, "heads": heads, "up_to_date": up_to_date}
        typer.echo(json.dumps(payload))
        return
    state = "up to date" if up_to_date else f"behind (heads: {', '.join(heads)})"
    typer.echo(f"{_display(url)}: at {', '.join(revisions) or 'base'} — {state}")


__all__ = ["app", "current", "upgrade"]
