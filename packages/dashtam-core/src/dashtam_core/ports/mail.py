"""The mail port: something that delivers an :class:`email.message.EmailMessage`."""

from __future__ import annotations

from email.message import EmailMessage
from typing import Protocol, runtime_checkable

from dashtam_core.errors import DashtamError
from dashtam_core.result import Result


class MailDeliveryError(DashtamError):
    """A message could not be delivered (SMTP refused or unreachable, outbox not writable)."""

    code = "mail_delivery_failed"
    status = 503


@runtime_checkable
class MailSender(Protocol):
    """Delivers one message; failures are ``Err(MailDeliveryError)``, never secrets in messages."""

    async def send(self, message: EmailMessage) -> Result[None, MailDeliveryError]:
        """Deliver ``message``."""
        ...


__all__ = ["MailDeliveryError", "MailSender"]
