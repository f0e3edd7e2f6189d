"""SMTP delivery (``DASHTAM_SMTP_URL``): smtplib in a worker thread.

URL forms: ``smtp://user:pass@host:587`` (plain, STARTTLS when ``?starttls=true``),
``smtps://user:pass@host:465`` (implicit TLS). User and password are percent-decoded.
"""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from dataclasses import dataclass, field
from email.message import EmailMessage
from urllib.parse import parse_qs, unquote, urlsplit

from dashtam_core.errors import ConfigurationError
from dashtam_core.ports.mail import MailDeliveryError
from dashtam_core.result import Err, Ok, Result

_TRUE = {"1", "true", "yes", "on"}


@dataclass(frozen=True, slots=True)
class SmtpConfig:
    """Where and how to deliver; ``password`` never appears in ``repr``."""

    host: str
    port: int
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    use_ssl: bool = False
    starttls: bool = False
    timeout: float = 10.0


def parse_smtp_url(url: str) -> SmtpConfig:
    """Parse ``smtp://user:pass@host:port`` / ``smtps://...``.

    Raises:
        ConfigurationError: not an smtp/smtps URL or no host.
    """
    parts = urlsplit(url)
    if parts.scheme not in {"smtp", "smtps"} or not parts.hostname:
        raise ConfigurationError("DASHTAM_SMTP_URL must look like smtp://user:pass@host:port")
    query = parse_qs(parts.query)
    use_ssl = parts.scheme == "smtps"
    try:
        port = parts.port or (465 if use_ssl else 25)
    except ValueError:
        raise ConfigurationError("DASHTAM_SMTP_URL has an invalid port") from None
    return SmtpConfig(
        host=parts.hostname,
        port=port,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
        use_ssl=use_ssl,
        starttls=query.get("starttls", ["false"])[0].lower() in _TRUE,
        timeout=float(query.get("timeout", ["10"])[0]),
    )


class SmtpMailSender:
    """Delivers messages over SMTP without blocking the event loop.

    Args:
        config: connection settings.
        sender: ``From`` used when a message has none (``DASHTAM_MAIL_FROM``).
    """

    def __init__(self, config: SmtpConfig, *, sender: str | None = None) -> None:
        self.config = config
        self.sender = sender

    @classmethod
    def from_url(cls, url: str, *, sender: str | None = None) -> SmtpMailSender:
        """Build from ``DASHTAM_SMTP_URL``."""
        return cls(parse_smtp_url(url), sender=sender)

    def _send_sync(self, message: EmailMessage) -> None:
        cfg = self.config
        context = ssl.create_default_context()
        smtp: smtplib.SMTP
        if cfg.use_ssl:
            smtp = smtplib.SMTP_SSL(cfg.host, cfg.port, timeout=cfg.timeout, context=context)
        else:
            smtp = smtplib.SMTP(cfg.host, cfg.port, timeout=cfg.timeout)
        with smtp:
            if cfg.starttls:
                smtp.starttls(context=context)
            if cfg.username:
                smtp.login(cfg.username, cfg.password or "")
            smtp.send_message(message)

    async def send(self, message: EmailMessage) -> Result[None, MailDeliveryError]:
        """Deliver ``message``; SMTP and network failures become ``Err(MailDeliveryError)``."""
        if self.sender and not message["From"]:
            message["From"] = self.sender
        try:
            await asyncio.to_thread(self._send_sync, message)
        except (smtplib.SMTPException, OSError) as exc:
            return Err(MailDeliveryError(f"SMTP delivery failed ({type(exc).__name__})"))
        return Ok(None)

    def __repr__(self) -> str:
        return f"SmtpMailSender(host={self.config.host!r}, port={self.config.port!r})"


__all__ = ["SmtpConfig", "SmtpMailSender", "parse_smtp_url"]
