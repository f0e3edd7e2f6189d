"""Audit records of CLI actions (security.md, audit trail).

A command run from the shell is audited like the same action through the REST API:

* commands that change data (``users create``, ``users roles``, ``connect``, ``disconnect``,
  ``sync``, ``import``, ``reprocess``) pass the :func:`cli_origin` to the application service,
  which writes the record in the same transaction as the change (a refusal: a failure record,
  the error code as ``reason``, in a transaction of its own), exactly as it does for the API's
  ``principal.origin``; the records differ only in their origin;
* actions with no such service (``keys rotate``, ``audit verify``) append their record with
  :meth:`CliAuditor.record`; ``audit verify`` records ``audit.verify`` as
  ``GET /api/v1/admin/audit-events/verification`` does. Other reads (listings, exports) are not
  audited, as in the API.

The origin of a CLI action: the actor is the user named by ``--user`` (``None``, the operator,
for commands without one), no IP, and the user agent ``dashtam-cli/<version> (os-user NAME)``.
The services load the audit key before they change anything, so a missing key stops a command
first.
"""

from __future__ import annotations

import getpass
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING
from uuid import UUID

from dashtam_api import __version__
from dashtam_core.domain.audit import AuditOutcome

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

    from dashtam_core.application.audit import Origin
    from dashtam_core.application.container import Container
    from dashtam_core.settings import CoreSettings

#: Longest OS user name kept in the user agent.
_MAX_OS_USER = 64


def _os_user() -> str | None:
    """The login name running the command (printable characters only), if known."""
    try:
        name = getpass.getuser()
    except (OSError, KeyError, ImportError):
        return None
    cleaned = "".join(ch for ch in name if ch.isprintable() and ch not in "()")[:_MAX_OS_USER]
    return cleaned or None


def cli_user_agent() -> str:
    """``dashtam-cli/<version>``, with ``(os-user NAME)`` when the login name is known."""
    agent = f"dashtam-cli/{__version__}"
    name = _os_user()
    return f"{agent} (os-user {name})" if name else agent


def cli_origin(actor_id: UUID | None = None) -> Origin:
    """The audit origin of a CLI action by ``actor_id`` (``None``: the operator)."""
    from dashtam_core.application.audit import Origin

    return Origin(actor_id, None, cli_user_agent())


def load_audit_key(settings: CoreSettings) -> bytes:
    """The audit HMAC key (missing key files are created first on the embedded SQLite default).

    Raises:
        ConfigurationError: no audit key outside the embedded SQLite default.
    """
    from dashtam_core.adapters.security.keys import generate_all_keys, load_hmac_key

    if settings.is_sqlite:
        generate_all_keys(settings.secret_dir)
    return load_hmac_key("audit_hmac", settings.secret_dir)


@dataclass(frozen=True, slots=True)
class CliAuditor:
    """Writes the audit records of one CLI command.

    Attributes:
        engine: the database engine of the command.
        key: the audit HMAC key.
    """

    engine: AsyncEngine
    key: bytes = field(repr=False)

    @classmethod
    def for_container(cls, container: Container) -> CliAuditor:
        """An auditor on the container's engine, with the key from the container's settings."""
        return cls(container.engine, load_audit_key(container.settings))

    async def record(
        self,
        action: str,
        *,
        actor: UUID | None,
        outcome: AuditOutcome = AuditOutcome.SUCCESS,
        object_type: str | None = None,
        object_id: object = None,
        details: Mapping[str, object] | None = None,
    ) -> None:
        """Append one record by ``actor`` from the CLI, in a transaction of its own."""
        from dashtam_core.application.audit import audit

        async with self.engine.begin() as conn:
            await audit(
                conn,
                self.key,
                cli_origin(actor),
                action,
                outcome=outcome,
                object_type=object_type,
                object_id=object_id,
                details=details,
            )


__all__ = [
    "CliAuditor",
    "cli_origin",
    "cli_user_agent",
    "load_audit_key",
]
