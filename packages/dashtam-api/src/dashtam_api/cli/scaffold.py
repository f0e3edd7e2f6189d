"""``dashtam new-provider``: scaffold a third-party provider package."""

from __future__ import annotations

import shlex
from enum import StrEnum
from pathlib import Path
from typing import Annotated

import typer

from dashtam_api.cli.errors import USER_ERROR, to_user_message


class AuthChoice(StrEnum):
    """How the new provider authenticates."""

    OAUTH2 = "oauth2"
    API_KEY = "api_key"
    FILE_IMPORT = "file_import"


def new_provider(
    name: Annotated[str, typer.Argument(help="Provider slug, e.g. 'acmebank'.")],
    auth: Annotated[AuthChoice, typer.Option(help="Authentication style.")] = AuthChoice.API_KEY,
    dest: Annotated[
        Path, typer.Option(help="Directory in which the package directory is created.")
    ] = Path("."),
) -> None:
    """Scaffold a provider package that passes the conformance kit out of the box.

    A bad slug (``validation_error``), an existing package directory (``conflict``) or an
    unwritable ``dest`` (``os_error``) prints one ``error: ...`` line on stderr and exits 1.
    """
    from dashtam_core.domain.connection import AuthType
    from dashtam_core.errors import DashtamError
    from dashtam_core.scaffold import scaffold_provider

    try:
        created = scaffold_provider(name, AuthType(auth.value), dest)
    except (DashtamError, OSError) as exc:
        typer.echo(to_user_message(exc).render(), err=True)
        raise typer.Exit(USER_ERROR) from None
    typer.echo(f"created {created}")
    # The kit, pytest and pytest-asyncio come with the package's `test` extra; the quotes
    # keep shells such as zsh from globbing the brackets.
    typer.echo(f'next: cd {shlex.quote(str(created))} && pip install -e ".[test]" && pytest')


__all__ = ["AuthChoice", "new_provider"]
