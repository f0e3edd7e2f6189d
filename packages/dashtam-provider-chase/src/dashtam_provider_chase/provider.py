"""``ChaseProvider``: the statement-file provider (QFX/OFX/QBO and Chase CSV).

Parsing is synchronous CPU work; async callers run :meth:`ChaseProvider.parse_statement` in a
worker thread (``anyio.to_thread.run_sync`` / ``asyncio.to_thread``).
"""

from __future__ import annotations

from pathlib import PurePath
from typing import Any

from dashtam_core.errors import StatementParseError
from dashtam_core.ports.provider import ParsedStatement
from dashtam_core.result import Err, Result
from dashtam_provider_chase.csv_reader import detect_layout, parse_csv_statement
from dashtam_provider_chase.settings import ChaseSettings
from dashtam_provider_chase.statement import parse_ofx_statement

#: File extensions the provider accepts (lower case).
EXTENSIONS = (".qfx", ".ofx", ".qbo", ".csv")
_OFX_EXTENSIONS = frozenset({".qfx", ".ofx", ".qbo"})


def _extension(filename: str) -> str:
    return PurePath(filename.replace("\\", "/")).suffix.lower()


def detect_format(filename: str, head: bytes) -> str | None:
    """``"ofx"``, ``"csv"`` or ``None``: by content first, then by file extension.

    Args:
        filename: the file's name (only its extension is used, as a fallback).
        head: the first bytes of the file (1 KiB is plenty).
    """
    start = head.lstrip(b"\xef\xbb\xbf \t\r\n")
    if start.startswith((b"OFXHEADER", b"<OFX>")):
        return "ofx"
    if start.startswith(b"<?xml") and b"<OFX" in head:
        return "ofx"
    if detect_layout(start) is not None:
        return "csv"
    extension = _extension(filename)
    if extension in _OFX_EXTENSIONS:
        return "ofx"
    if extension == ".csv":
        return "csv"
    return None


class ChaseProvider:
    """Implements :class:`~dashtam_core.ports.provider.StatementParser` for Chase downloads.

    Args:
        settings: limits (defaults read from ``DASHTAM_CHASE_*``).
    """

    def __init__(self, settings: ChaseSettings | None = None) -> None:
        self.settings = settings or ChaseSettings()

    def sniff(self, filename: str, head: bytes) -> bool:
        """True for OFX 1.x/2.x content or a Chase CSV header, else for a known extension."""
        return detect_format(filename, head) is not None

    def parse_statement(
        self, data: bytes, filename: str
    ) -> Result[ParsedStatement, StatementParseError]:
        """Parse a whole statement file; any defect is an ``Err`` naming the line or element.

        Args:
            data: the file's bytes.
            filename: its name (the extension is a fallback; ``Chase1234`` names CSV accounts).
        """
        if len(data) > self.settings.max_file_bytes:
            return Err(
                StatementParseError(
                    f"statement file too large ({len(data)} bytes; "
                    f"limit {self.settings.max_file_bytes})"
                )
            )
        try:
            if detect_format(filename, data[:1024]) == "csv":
                return parse_csv_statement(data, filename)
            return parse_ofx_statement(data)
        except Exception as exc:  # the contract: defects are values, never raised
            return Err(StatementParseError(f"unreadable statement file ({type(exc).__name__})"))


def create_provider(settings: Any, http_client: Any = None) -> ChaseProvider:
    """The :class:`ProviderSpec` factory: ``(settings, http_client) -> ChaseProvider``.

    The HTTP client is unused (files are uploaded, not fetched).
    """
    return ChaseProvider(settings if isinstance(settings, ChaseSettings) else None)


__all__ = ["EXTENSIONS", "ChaseProvider", "create_provider", "detect_format"]
