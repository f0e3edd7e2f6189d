"""Transactional email templates (plain text).

Verification and reset mails carry the token both alone (to paste into a client or the CLI) and
inside a link as ``token=`` (api.md). No template ever includes a password or a credential.
"""

from __future__ import annotations

from datetime import UTC, datetime
from email.message import EmailMessage
from email.utils import format_datetime, make_msgid
from string import Template
from urllib.parse import urlencode

PRODUCT = "Dashtam"

_VERIFY = Template("""Hello,

please confirm your email address for your $product account.

Open this link:

    $link

or enter this verification token:

    $token

The token is valid for $hours hours. If you did not create an account, ignore this message.
""")

_RESET = Template("""Hello,

someone asked to reset the password of your $product account.

Open this link to choose a new password:

    $link

or use this reset token:

    $token

The token is valid for $minutes minutes and works once. If you did not ask for this, ignore this
message: your password stays unchanged.
""")

_CHANGED = Template("""Hello,

the password of your $product account was changed at $when.
Every other session was signed out.

If this was not you, reset your password now and contact your administrator.
""")

_NEW_SESSION = Template("""Hello,

a new sign-in to your $product account happened at $when.

    IP address:  $ip
    Device:      $user_agent

If this was not you, revoke the session and change your password.
""")

_EXPIRY = Template("""Hello,

your $provider connection "$alias" needs to be re-authorized by $expires_at, or syncing stops.

Reconnect it here:

    $link
""")


def _message(to: str, subject: str, body: str, sender: str | None) -> EmailMessage:
    message = EmailMessage()
    message["To"] = to
    if sender:
        message["From"] = sender
    message["Subject"] = subject
    message["Date"] = format_datetime(datetime.now(UTC))
    message["Message-ID"] = make_msgid(domain="dashtam.local")
    message["Auto-Submitted"] = "auto-generated"
    message.set_content(body)
    return message


def _when(value: datetime) -> str:
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M UTC")


def _single_line(text: str | None) -> str:
    return " ".join((text or "unknown").split())[:200]


def verification_email(
    to: str, token: str, *, base_url: str, sender: str | None = None, hours: int = 24
) -> EmailMessage:
    """Email-verification message with the token alone and as ``token=`` in a link."""
    link = f"{base_url.rstrip('/')}/verify-email?{urlencode({'token': token})}"
    body = _VERIFY.substitute(product=PRODUCT, link=link, token=token, hours=hours)
    return _message(to, f"Confirm your {PRODUCT} email address", body, sender)


def password_reset_email(
    to: str, token: str, *, base_url: str, sender: str | None = None, minutes: int = 30
) -> EmailMessage:
    """Password-reset message with the token alone and as ``token=`` in a link."""
    link = f"{base_url.rstrip('/')}/reset-password?{urlencode({'token': token})}"
    body = _RESET.substitute(product=PRODUCT, link=link, token=token, minutes=minutes)
    return _message(to, f"Reset your {PRODUCT} password", body, sender)


def password_changed_email(to: str, *, when: datetime, sender: str | None = None) -> EmailMessage:
    """Notice that the password changed."""
    body = _CHANGED.substitute(product=PRODUCT, when=_when(when))
    return _message(to, f"Your {PRODUCT} password was changed", body, sender)


def new_session_email(
    to: str,
    *,
    when: datetime,
    ip: str | None,
    user_agent: str | None,
    sender: str | None = None,
) -> EmailMessage:
    """Notice of a new sign-in."""
    body = _NEW_SESSION.substitute(
        product=PRODUCT, when=_when(when), ip=_single_line(ip), user_agent=_single_line(user_agent)
    )
    return _message(to, f"New sign-in to your {PRODUCT} account", body, sender)


def connection_expiry_email(
    to: str,
    *,
    provider: str,
    alias: str | None,
    expires_at: datetime,
    base_url: str,
    connection_id: str,
    sender: str | None = None,
) -> EmailMessage:
    """Warning that a provider connection's authorization is about to expire."""
    link = f"{base_url.rstrip('/')}/connections/{connection_id}"
    body = _EXPIRY.substitute(
        provider=_single_line(provider),
        alias=_single_line(alias or provider),
        expires_at=_when(expires_at),
        link=link,
    )
    return _message(to, f"Your {provider} connection needs attention", body, sender)


__all__ = [
    "connection_expiry_email",
    "new_session_email",
    "password_changed_email",
    "password_reset_email",
    "verification_email",
]
