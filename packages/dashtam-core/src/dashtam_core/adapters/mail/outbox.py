"""Outbox delivery (``DASHTAM_MAIL_OUTBOX``): each message becomes one ``.eml`` file.

Files are written under a temporary name and renamed, so a reader never sees half a message.
Names sort by time: ``<UTC timestamp>-<random>.eml``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import secrets
from datetime import UTC, datetime
from email import message_from_bytes, policy
from email.message import EmailMessage
from pathlib import Path

from dashtam_core.ports.mail import MailDeliveryError
from dashtam_core.result import Err, Ok, Result


class OutboxMailSender:
    """Writes messages as ``.eml`` files into ``directory``.

    Args:
        directory: the outbox (created if missing).
        sender: ``From`` used when a message has none.
    """

    def __init__(self, directory: Path, *, sender: str | None = None) -> None:
        self.directory = Path(directory)
        self.sender = sender

    def _write(self, data: bytes) -> Path:
        self.directory.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%S%fZ")
        final = self.directory / f"{stamp}-{secrets.token_hex(6)}.eml"
        tmp = self.directory / f".{final.name}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, final)
        except BaseException:
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
            raise
        return final

    async def send(self, message: EmailMessage) -> Result[None, MailDeliveryError]:
        """Write ``message`` to the outbox."""
        if self.sender and not message["From"]:
            message["From"] = self.sender
        try:
            await asyncio.to_thread(self._write, message.as_bytes(policy=policy.SMTP))
        except OSError as exc:
            return Err(MailDeliveryError(f"outbox not writable ({type(exc).__name__})"))
        return Ok(None)


def read_outbox(directory: Path) -> list[EmailMessage]:
    """Every message in the outbox, oldest first (CLI, tests, development)."""
    paths = sorted(Path(directory).glob("*.eml")) if Path(directory).is_dir() else []
    return [message_from_bytes(p.read_bytes(), policy=policy.default) for p in paths]


__all__ = ["OutboxMailSender", "read_outbox"]
