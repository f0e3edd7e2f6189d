"""The domain event registry: every event's category, audit action and handlers.

A test walks every :class:`~dashtam_core.domain.events.DomainEvent` subclass and fails when
one has no entry here, so a new event cannot ship without deciding how it is audited and who
reacts to it.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from dashtam_core.domain import events as ev


class EventCategory(StrEnum):
    """Broad grouping used for audit and fan-out."""

    IDENTITY = "identity"
    CONNECTION = "connection"
    SYNC = "sync"
    DATA = "data"


@dataclass(frozen=True, slots=True)
class EventMetadata:
    """How one event type is treated.

    Attributes:
        category: its group.
        audit_action: the audit trail action name, or None when the event is not audited
            (pure progress notifications).
        handlers: names of the handler roles that react to it (``audit``, ``notify`` (SSE fan-out),
            ``mail``, ``sync``); the message bus resolves names to callables.
        user_visible: whether it is streamed to its owner over SSE.
    """

    category: EventCategory
    audit_action: str | None
    handlers: tuple[str, ...]
    user_visible: bool = False


EVENT_REGISTRY: dict[type[ev.DomainEvent], EventMetadata] = {
    ev.UserRegistered: EventMetadata(EventCategory.IDENTITY, "user.register", ("audit", "mail")),
    ev.EmailVerified: EventMetadata(EventCategory.IDENTITY, "user.verify_email", ("audit",)),
    ev.UserLoggedIn: EventMetadata(EventCategory.IDENTITY, "auth.login", ("audit", "mail")),
    ev.LoginFailed: EventMetadata(EventCategory.IDENTITY, "auth.login", ("audit",)),
    ev.PasswordChanged: EventMetadata(
        EventCategory.IDENTITY, "user.password_change", ("audit", "mail")
    ),
    ev.SessionRevoked: EventMetadata(EventCategory.IDENTITY, "session.revoke", ("audit",)),
    ev.RolesChanged: EventMetadata(EventCategory.IDENTITY, "admin.roles_change", ("audit",)),
    ev.AccountLocked: EventMetadata(EventCategory.IDENTITY, "user.lock", ("audit",)),
    ev.AccountUnlocked: EventMetadata(EventCategory.IDENTITY, "user.unlock", ("audit",)),
    ev.ConnectionCreated: EventMetadata(
        EventCategory.CONNECTION, "connection.create", ("audit", "notify"), user_visible=True
    ),
    ev.ConnectionStatusChanged: EventMetadata(
        EventCategory.CONNECTION,
        "connection.status_change",
        ("audit", "notify"),
        user_visible=True,
    ),
    ev.ConnectionDisconnected: EventMetadata(
        EventCategory.CONNECTION, "connection.disconnect", ("audit", "notify"), user_visible=True
    ),
    ev.CredentialsRefreshed: EventMetadata(
        EventCategory.CONNECTION, "connection.credentials_refresh", ("audit",)
    ),
    ev.ConnectionExpiring: EventMetadata(
        EventCategory.CONNECTION, None, ("notify", "mail"), user_visible=True
    ),
    ev.SyncStarted: EventMetadata(EventCategory.SYNC, None, ("notify",), user_visible=True),
    ev.SyncProgressed: EventMetadata(EventCategory.SYNC, None, ("notify",), user_visible=True),
    ev.SyncFinished: EventMetadata(
        EventCategory.SYNC, "sync.finish", ("audit", "notify"), user_visible=True
    ),
    ev.TransactionsChanged: EventMetadata(EventCategory.DATA, None, ("notify",), user_visible=True),
    ev.PendingTransactionPosted: EventMetadata(
        EventCategory.DATA, None, ("notify",), user_visible=True
    ),
    ev.HoldingsSnapshotted: EventMetadata(EventCategory.DATA, None, ("notify",), user_visible=True),
    ev.StatementImported: EventMetadata(
        EventCategory.DATA, "import.create", ("audit", "notify"), user_visible=True
    ),
}

#: Handler roles the message bus knows. A registry entry naming another role is a bug.
HANDLER_ROLES = frozenset({"audit", "notify", "mail", "sync"})


def metadata_for(event: type[ev.DomainEvent]) -> EventMetadata:
    """Return the registry entry for ``event`` (KeyError when unregistered: a bug)."""
    return EVENT_REGISTRY[event]


def all_event_types() -> list[type[ev.DomainEvent]]:
    """Every concrete DomainEvent subclass defined in the domain."""
    found: list[type[ev.DomainEvent]] = []
    stack: list[type[ev.DomainEvent]] = list(ev.DomainEvent.__subclasses__())
    while stack:
        cls = stack.pop()
        found.append(cls)
        stack.extend(cls.__subclasses__())
    return sorted(found, key=lambda c: c.__name__)


def event_by_name(name: str) -> type[ev.DomainEvent]:
    """Look an event class up by its wire name (used by the outbox dispatcher)."""
    for cls in EVENT_REGISTRY:
        if cls.__name__ == name:
            return cls
    raise KeyError(name)


__all__ = [
    "EVENT_REGISTRY",
    "HANDLER_ROLES",
    "EventCategory",
    "EventMetadata",
    "all_event_types",
    "event_by_name",
    "metadata_for",
]
