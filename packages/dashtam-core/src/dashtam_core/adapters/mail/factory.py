"""Pick the mail sender from settings: SMTP when ``DASHTAM_SMTP_URL`` is set, else the outbox."""

from __future__ import annotations

from dashtam_core.adapters.mail.outbox import OutboxMailSender
from dashtam_core.adapters.mail.smtp import SmtpMailSender
from dashtam_core.ports.mail import MailSender
from dashtam_core.settings import CoreSettings


def build_mail_sender(settings: CoreSettings) -> MailSender:
    """Return an :class:`SmtpMailSender` or an :class:`OutboxMailSender`."""
    if settings.smtp_url is not None and settings.smtp_url.get_secret_value():
        return SmtpMailSender.from_url(
            settings.smtp_url.get_secret_value(), sender=settings.mail_from
        )
    return OutboxMailSender(settings.mail_outbox, sender=settings.mail_from)


__all__ = ["build_mail_sender"]
