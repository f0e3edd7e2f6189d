"""Mail: SMTP delivery through a real aiosmtpd server, the .eml outbox, and the templates."""

from __future__ import annotations

import os
import socket
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlparse

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword
from pydantic import SecretStr

from dashtam_core.adapters.mail import (
    OutboxMailSender,
    SmtpMailSender,
    build_mail_sender,
    connection_expiry_email,
    new_session_email,
    parse_smtp_url,
    password_changed_email,
    password_reset_email,
    read_outbox,
    verification_email,
)
from dashtam_core.errors import ConfigurationError
from dashtam_core.ports.mail import MailDeliveryError, MailSender
from dashtam_core.result import Err, Ok
from dashtam_core.settings import CoreSettings

TOKEN = "tok_-AbC123xyz"
SENDER = "Dashtam <no-reply@dashtam.local>"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class Recorder:
    def __init__(self) -> None:
        self.messages: list[tuple[str, list[str], EmailMessage]] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        parsed = message_from_bytes(envelope.content, policy=policy.default)
        self.messages.append((envelope.mail_from, list(envelope.rcpt_tos), parsed))
        return "250 OK"


def _authenticator(
    server: Any, session: Any, envelope: Any, mechanism: str, data: Any
) -> AuthResult:
    ok = isinstance(data, LoginPassword) and (data.login, data.password) == (
        b"mailer",
        b"p@ss:w/rd",
    )
    return AuthResult(success=ok, handled=False)


@pytest.fixture
def smtp_server() -> Iterator[tuple[Recorder, int]]:
    recorder = Recorder()
    port = _free_port()
    controller = Controller(
        recorder,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticator,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield recorder, port
    finally:
        controller.stop()


def test_parse_smtp_url() -> None:
    cfg = parse_smtp_url("smtp://mailer:p%40ss%3Aw%2Frd@mail.example:2525?starttls=true")
    assert (cfg.host, cfg.port, cfg.username, cfg.password) == (
        "mail.example",
        2525,
        "mailer",
        "p@ss:w/rd",
    )
    assert cfg.starttls
    assert not cfg.use_ssl
    assert "p@ss" not in repr(cfg)
    tls = parse_smtp_url("smtps://mail.example")
    assert tls.use_ssl
    assert tls.port == 465
    assert tls.username is None
    for bad in ("http://x", "smtp://", "smtp://host:notaport"):
        with pytest.raises(ConfigurationError):
            parse_smtp_url(bad)


async def test_smtp_delivery_with_auth(smtp_server: tuple[Recorder, int]) -> None:
    recorder, port = smtp_server
    sender = SmtpMailSender.from_url(
        f"smtp://mailer:p%40ss%3Aw%2Frd@127.0.0.1:{port}", sender=SENDER
    )
    assert isinstance(sender, MailSender)
    assert "p@ss" not in repr(sender)
    message = verification_email("alice@example.com", TOKEN, base_url="https://app.example")
    assert await sender.send(message) == Ok(None)
    assert len(recorder.messages) == 1
    mail_from, rcpts, received = recorder.messages[0]
    assert mail_from == "no-reply@dashtam.local"
    assert rcpts == ["alice@example.com"]
    assert received["Subject"] == "Confirm your Dashtam email address"
    body = received.get_content()
    assert f"token={TOKEN}" in body
    assert TOKEN in [line.strip() for line in body.splitlines()]


async def test_smtp_wrong_password_and_unreachable(smtp_server: tuple[Recorder, int]) -> None:
    _, port = smtp_server
    message = password_changed_email("a@example.com", when=datetime.now(UTC))
    bad_auth = SmtpMailSender.from_url(f"smtp://mailer:wrong@127.0.0.1:{port}", sender=SENDER)
    result = await bad_auth.send(message)
    assert isinstance(result, Err)
    assert isinstance(result.error, MailDeliveryError)
    assert "wrong" not in result.error.message
    closed = SmtpMailSender.from_url(f"smtp://127.0.0.1:{_free_port()}?timeout=2", sender=SENDER)
    result = await closed.send(password_changed_email("a@example.com", when=datetime.now(UTC)))
    assert isinstance(result, Err)
    assert result.error.code == "mail_delivery_failed"


async def test_outbox_writes_eml_atomically(tmp_path: Path) -> None:
    outbox = tmp_path / "outbox"
    sender = OutboxMailSender(outbox, sender=SENDER)
    assert isinstance(sender, MailSender)
    for i in range(3):
        message = password_reset_email(f"user{i}@example.com", f"{TOKEN}{i}", base_url="http://x")
        assert await sender.send(message) == Ok(None)
    files = sorted(outbox.iterdir())
    assert len(files) == 3
    assert all(f.suffix == ".eml" for f in files)
    assert not [f for f in files if f.name.startswith(".")]
    assert stat.S_IMODE(os.stat(files[0]).st_mode) == 0o600
    messages = read_outbox(outbox)
    assert [m["To"] for m in messages] == [f"user{i}@example.com" for i in range(3)]
    assert messages[0]["From"] == SENDER
    link = next(line.strip() for line in messages[2].get_content().splitlines() if "token=" in line)
    assert parse_qs(urlparse(link).query)["token"] == [f"{TOKEN}2"]
    assert read_outbox(tmp_path / "missing") == []


async def test_outbox_not_writable(tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    result = await OutboxMailSender(blocker / "outbox").send(
        password_changed_email("a@example.com", when=datetime.now(UTC))
    )
    assert isinstance(result, Err)
    assert isinstance(result.error, MailDeliveryError)


def test_build_mail_sender_from_settings(tmp_path: Path) -> None:
    outbox = build_mail_sender(CoreSettings(mail_outbox=tmp_path, smtp_url=None))
    assert isinstance(outbox, OutboxMailSender)
    assert outbox.directory == tmp_path
    smtp = build_mail_sender(
        CoreSettings(mail_outbox=tmp_path, smtp_url=SecretStr("smtp://u:p@mail.example:25"))
    )
    assert isinstance(smtp, SmtpMailSender)
    assert smtp.config.host == "mail.example"


def test_templates() -> None:
    when = datetime(2026, 5, 1, 8, 30, tzinfo=UTC)
    reset = password_reset_email("bob@example.com", TOKEN, base_url="https://app.example/")
    body = reset.get_content()
    assert "https://app.example/reset-password?token=" + TOKEN in body
    assert f"\n    {TOKEN}\n" in body
    assert "30 minutes" in body
    assert reset["Message-ID"]
    assert reset["Date"]
    changed = password_changed_email("bob@example.com", when=when).get_content()
    assert "2026-05-01 08:30 UTC" in changed
    session = new_session_email(
        "bob@example.com", when=when, ip="203.0.113.9", user_agent="Evil\r\nBcc: x@y"
    )
    text = session.get_content()
    assert "203.0.113.9" in text
    assert "Evil Bcc: x@y" in text
    assert session["Bcc"] is None
    expiry = connection_expiry_email(
        "bob@example.com",
        provider="schwab",
        alias="My brokerage",
        expires_at=when,
        base_url="https://app.example",
        connection_id="c-1",
    )
    assert "My brokerage" in expiry.get_content()
    assert "https://app.example/connections/c-1" in expiry.get_content()
    with pytest.raises(ValueError):
        verification_email("a@example.com\r\nBcc: evil@example.com", TOKEN, base_url="http://x")
