"""StatementParserTests against small in-test parsers: the good one passes, broken ones fail."""

from __future__ import annotations

import types
import uuid
from datetime import date
from decimal import Decimal, InvalidOperation
from typing import Any

import pytest
from pydantic_settings import BaseSettings, SettingsConfigDict

from dashtam_core.domain.account import AccountType
from dashtam_core.domain.connection import AuthType
from dashtam_core.domain.transaction import TransactionSubtype, TransactionType
from dashtam_core.errors import StatementParseError
from dashtam_core.plugins.hookspecs import RegisterProvider, hookimpl
from dashtam_core.plugins.spec import ProviderSpec
from dashtam_core.ports.provider import (
    Capability,
    ParsedStatement,
    ProviderAccount,
    ProviderTransaction,
)
from dashtam_core.result import Err, Ok, Result
from dashtam_core.testing import StatementParserTests
from dashtam_core.testing.statements import truncate_mid_line

SAMPLE = b"date,amount,description\n2024-01-02,-3.50,Coffee\n2024-01-03,100.00,Pay\n"


class LinesSettings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DASHTAM_LINES_")


class LinesParser:
    """``date,amount,description`` rows for one account."""

    def sniff(self, filename: str, head: bytes) -> bool:
        return head.startswith(b"date,amount,description")

    def key(self, n: int, fields: list[str]) -> str:
        return f"{n}:{fields[0]}:{fields[1]}"

    def amount(self, text: str) -> Any:
        return Decimal(text)

    def parse_statement(
        self, data: bytes, filename: str
    ) -> Result[ParsedStatement, StatementParseError]:
        try:
            lines = data.decode().splitlines()
        except UnicodeDecodeError:
            return Err(StatementParseError("not text"))
        if not lines or lines[0] != "date,amount,description":
            return Err(StatementParseError("no header", line=1))
        txns = []
        for n, line in enumerate(lines[1:], start=2):
            fields = line.split(",")
            if len(fields) != 3:
                return Err(StatementParseError("three fields expected", line=n))
            try:
                day, amount = date.fromisoformat(fields[0]), self.amount(fields[1])
            except (ValueError, InvalidOperation):
                return Err(StatementParseError("bad value", line=n))
            key = self.key(n, fields)
            subtype = TransactionSubtype.DEPOSIT if amount > 0 else TransactionSubtype.PURCHASE
            txns.append(
                ProviderTransaction(
                    "acct", key, key, day, amount, "USD", fields[2], TransactionType.OTHER, subtype
                )
            )
        account = ProviderAccount("acct", "Lines", AccountType.CHECKING, "USD")
        return Ok(ParsedStatement([account], txns, format="lines"))


class UnstableKeys(LinesParser):
    def key(self, n: int, fields: list[str]) -> str:
        return str(uuid.uuid4())


class FloatAmounts(LinesParser):
    def amount(self, text: str) -> Any:
        return float(text)


class RaisesOnGarbage(LinesParser):
    def parse_statement(
        self, data: bytes, filename: str
    ) -> Result[ParsedStatement, StatementParseError]:
        data.decode()  # UnicodeDecodeError escapes
        return super().parse_statement(data, filename)


def suite(parser_cls: type[LinesParser]) -> StatementParserTests:
    spec = ProviderSpec(
        slug="lines",
        name="Lines",
        auth_type=AuthType.FILE_IMPORT,
        capabilities=frozenset({Capability.ACCOUNTS, Capability.TRANSACTIONS}),
        settings_model=LinesSettings,
        factory=lambda settings, client: parser_cls(),
        extensions=(".txt",),
    )
    module = types.ModuleType("lines_plugin")

    @hookimpl
    def register_providers(register: RegisterProvider) -> None:
        register(spec)

    module.register_providers = register_providers  # type: ignore[attr-defined]
    cls = type("Suite", (StatementParserTests,), {"plugin_module": module})
    return cls()  # type: ignore[no-any-return]


def broken() -> list[tuple[bytes, str]]:
    return [(b"", "a.txt"), (bytes(range(256)), "a.txt"), (truncate_mid_line(SAMPLE), "a.txt")]


def test_good_parser_passes_every_statement_test() -> None:
    kit = suite(LinesParser)
    kit.test_sample_is_recognised((SAMPLE, "a.txt"))
    kit.test_sample_parses_with_decimal_money((SAMPLE, "a.txt"))
    kit.test_dedupe_keys_unique_and_stable((SAMPLE, "a.txt"))
    kit.test_broken_files_are_parse_errors(broken())


def test_undeclared_extension_fails() -> None:
    with pytest.raises(AssertionError, match="declared extension"):
        suite(LinesParser).test_sample_is_recognised((SAMPLE, "a.csv"))


def test_unstable_dedupe_keys_fail() -> None:
    with pytest.raises(AssertionError):
        suite(UnstableKeys).test_dedupe_keys_unique_and_stable((SAMPLE, "a.txt"))


def test_float_amounts_fail() -> None:
    with pytest.raises(AssertionError, match="Decimal"):
        suite(FloatAmounts).test_sample_parses_with_decimal_money((SAMPLE, "a.txt"))


def test_exceptions_on_garbage_fail() -> None:
    with pytest.raises(UnicodeDecodeError):
        suite(RaisesOnGarbage).test_broken_files_are_parse_errors(broken())


def test_truncation_cuts_inside_a_line() -> None:
    cut = truncate_mid_line(SAMPLE)
    assert SAMPLE.startswith(cut)
    assert not cut.endswith(b"\n")
    assert cut.count(b"\n") == 1  # inside the first data row, after its first field
    assert cut.endswith(b"2024-01-02,")


def test_api_providers_skip_the_statement_tests() -> None:
    from dashtam_core.testing import FAKE_SPEC

    module = types.ModuleType("fake_again")
    module.register_providers = lambda register: register(FAKE_SPEC)  # type: ignore[attr-defined]
    kit = type("Suite", (StatementParserTests,), {"plugin_module": module})()
    with pytest.raises(pytest.skip.Exception, match="not file_import"):
        kit.test_sample_is_recognised((SAMPLE, "a.txt"))
