"""Dashtam provider plugin for Chase statement downloads (QFX/OFX/QBO 1.x and 2.x, Chase CSV).

Library use::

    from dashtam_provider_chase import ChaseProvider

    result = ChaseProvider().parse_statement(data, "Chase9876_Activity_20250430.qfx")
"""

from __future__ import annotations

from dashtam_provider_chase.csv_reader import detect_layout, parse_csv_statement
from dashtam_provider_chase.ofx import (
    OfxAccount,
    OfxBalance,
    OfxReader,
    OfxStatement,
    OfxStatementEnd,
    OfxTransaction,
    read_ofx,
)
from dashtam_provider_chase.plugin import DEDUPE_RULE, SPEC
from dashtam_provider_chase.provider import (
    EXTENSIONS,
    ChaseProvider,
    create_provider,
    detect_format,
)
from dashtam_provider_chase.settings import ChaseSettings
from dashtam_provider_chase.statement import parse_ofx_statement

__version__ = "0.1.0"

__all__ = [
    "ChaseProvider",
    "ChaseSettings",
    "DEDUPE_RULE",
    "EXTENSIONS",
    "OfxAccount",
    "OfxBalance",
    "OfxReader",
    "OfxStatement",
    "OfxStatementEnd",
    "OfxTransaction",
    "SPEC",
    "create_provider",
    "detect_format",
    "detect_layout",
    "parse_csv_statement",
    "parse_ofx_statement",
    "read_ofx",
]
