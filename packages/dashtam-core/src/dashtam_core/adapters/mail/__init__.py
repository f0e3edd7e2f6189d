"""Mail adapters: SMTP delivery, the ``.eml`` outbox and the message templates."""

from dashtam_core.adapters.mail.factory import build_mail_sender
from dashtam_core.adapters.mail.outbox import OutboxMailSender, read_outbox
from dashtam_core.adapters.mail.smtp import SmtpConfig, SmtpMailSender, parse_smtp_url
from dashtam_core.adapters.mail.templates import (
    connection_expiry_email,
    new_session_email,
    password_changed_email,
    password_reset_email,
    verification_email,
)

__all__ = [
    "OutboxMailSender",
    "SmtpConfig",
    "SmtpMailSender",
    "build_mail_sender",
    "connection_expiry_email",
    "new_session_email",
    "parse_smtp_url",
    "password_changed_email",
    "password_reset_email",
    "read_outbox",
    "verification_email",
]
