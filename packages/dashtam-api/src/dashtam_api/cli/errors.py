"""How the CLI reports failures: a message on stderr and exit status 1, never a traceback."""

from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

import typer
from typer.core import TyperGroup

#: Exit status of a user error (a usage error is 2, typer's default).
USER_ERROR = 1


@dataclass(frozen=True, slots=True)
class UserMessage:
    """What the CLI prints for a failed command."""

    message: str
    code: str

    def render(self) -> str:
        """``error: <message> [<code>]``."""
        return f"error: {self.message} [{self.code}]"


def _first_line(text: str) -> str:
    stripped = text.strip()
    return stripped.splitlines()[0] if stripped else ""


def to_user_message(exc: Exception) -> UserMessage:
    """Translate an exception raised by a command into a one-line :class:`UserMessage`.

    ``DashtamError`` keeps its message and stable code; settings, database and OS failures
    become one-line messages; anything else is reported as an internal error
    (``DASHTAM_DEBUG=1`` re-raises it with its traceback instead).
    """
    from dashtam_core.errors import DashtamError

    if isinstance(exc, DashtamError):
        return UserMessage(exc.message, exc.code)
    module = type(exc).__module__
    if module.startswith("pydantic"):
        return UserMessage(f"invalid settings: {_first_line(str(exc))}", "configuration_error")
    if module.startswith("sqlalchemy"):
        orig = getattr(exc, "orig", None)
        detail = _first_line(str(orig) if orig is not None else str(exc))
        return UserMessage(f"database error: {detail}", "database_error")
    if isinstance(exc, OSError):
        return UserMessage(_first_line(str(exc)) or type(exc).__name__, "os_error")
    return UserMessage(
        f"internal error ({type(exc).__name__}: {_first_line(str(exc))}); "
        "set DASHTAM_DEBUG=1 for the traceback",
        "internal_error",
    )


class DashtamGroup(TyperGroup):
    """The top-level command group: an exception leaving a command becomes exit status 1."""

    def invoke(self, ctx: Any) -> Any:
        """Run the command; print unexpected exceptions as one line on stderr (exit 1)."""
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except Exception as exc:
            if os.environ.get("DASHTAM_DEBUG"):
                raise
            typer.echo(to_user_message(exc).render(), err=True)
            raise typer.Exit(USER_ERROR) from None


__all__ = ["USER_ERROR", "DashtamGroup", "UserMessage", "to_user_message"]
