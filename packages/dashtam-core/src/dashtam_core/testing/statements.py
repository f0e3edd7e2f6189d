"""``StatementParserTests``: conformance for ``file_import`` providers.

The author supplies the plugin and a sample statement::

    class TestAcmeStatements(StatementParserTests):
        plugin_module = "dashtam_provider_acme.plugin"

        @pytest.fixture
        def sample_statement(self):
            path = Path(__file__).parent / "fixtures" / "sample.csv"
            return path.read_bytes(), path.name

``broken_statements`` (a fixture) lists files that must be refused; the default is empty
bytes, binary garbage and the sample truncated in the middle of a line.
"""

from __future__ import annotations

from typing import Any, ClassVar

import pytest

from dashtam_core.domain.connection import AuthType
from dashtam_core.errors import StatementParseError
from dashtam_core.ports.provider import ParsedStatement
from dashtam_core.result import Err, Ok
from dashtam_core.testing.checks import check_account, check_dedupe_keys, check_transaction
from dashtam_core.testing.support import KitBase

GARBAGE = bytes(range(256)) * 4


def truncate_mid_line(data: bytes) -> bytes:
    """``data`` cut in the middle of the line that holds its midpoint, past its first field."""
    middle = len(data) // 2
    start = data.rfind(b"\n", 0, middle) + 1
    end = data.find(b"\n", middle)
    end = len(data) if end < 0 else end
    line = data[start:end]
    cut = start + max(1, min(len(line) // 2, len(line) - 1))
    for delimiter in (b",", b"\t", b";", b">"):
        position = line.find(delimiter)
        if 0 <= position < len(line) - 1:
            cut = start + position + 1
            break
    return data[:cut]


class StatementParserTests(KitBase):
    """Parse the sample: Decimal money, ISO currency, stable unique dedupe keys; refuse junk."""

    __dashtam_kit_base__: ClassVar[bool] = True

    @pytest.fixture
    def broken_statements(self, sample_statement: tuple[bytes, str]) -> list[tuple[bytes, str]]:
        """Files the parser must answer with ``Err(StatementParseError)``."""
        data, filename = sample_statement
        return [(b"", filename), (GARBAGE, filename), (truncate_mid_line(data), filename)]

    def _parser(self) -> Any:
        spec = self.spec
        if spec.auth_type is not AuthType.FILE_IMPORT:
            pytest.skip(f"auth type is {spec.auth_type.value}, not file_import")
        parser, _ = self.build_provider(lambda request: pytest.fail("a parser made an HTTP call"))
        return parser

    def _parse(self, data: bytes, filename: str) -> ParsedStatement:
        result = self._parser().parse_statement(data, filename)
        assert isinstance(result, Ok), f"the sample statement did not parse: {result!r}"
        assert isinstance(result.value, ParsedStatement)
        return result.value

    def test_sample_is_recognised(self, sample_statement: tuple[bytes, str]) -> None:
        """``sniff`` accepts the sample and its extension is declared."""
        data, filename = sample_statement
        assert self._parser().sniff(filename, data[:1024]), "sniff refused the sample"
        assert any(filename.lower().endswith(ext.lower()) for ext in self.spec.extensions), (
            f"{filename} does not end with a declared extension {self.spec.extensions}"
        )

    def test_sample_parses_with_decimal_money(self, sample_statement: tuple[bytes, str]) -> None:
        """Accounts and transactions are typed, Decimal and in ISO currencies."""
        parsed = self._parse(*sample_statement)
        assert parsed.accounts, "the sample statement yields no account"
        assert parsed.transactions, "the sample statement yields no transaction"
        account_ids = {a.provider_account_id for a in parsed.accounts}
        for account in parsed.accounts:
            check_account(account)
        for txn in parsed.transactions:
            check_transaction(txn)
            assert txn.provider_account_id in account_ids, (
                f"{txn.provider_transaction_id} belongs to no parsed account"
            )
            if parsed.start is not None and parsed.end is not None:
                assert parsed.start <= txn.date <= parsed.end, (
                    f"{txn.provider_transaction_id} dated {txn.date} is outside the statement"
                )

    def test_dedupe_keys_unique_and_stable(self, sample_statement: tuple[bytes, str]) -> None:
        """Dedupe keys are unique per account and identical across two parses."""
        first = self._parse(*sample_statement)
        second = self._parse(*sample_statement)
        check_dedupe_keys(first.transactions)
        assert [t.dedupe_key for t in first.transactions] == [
            t.dedupe_key for t in second.transactions
        ]
        assert first == second, "two parses of the same bytes differ"

    def test_broken_files_are_parse_errors(
        self, broken_statements: list[tuple[bytes, str]]
    ) -> None:
        """Empty, garbage and truncated files are ``Err(StatementParseError)``, not exceptions."""
        parser = self._parser()
        for data, filename in broken_statements:
            result = parser.parse_statement(data, filename)
            assert isinstance(result, Err), f"{len(data)} broken bytes parsed: {result!r}"
            assert isinstance(result.error, StatementParseError), result.error


__all__ = ["StatementParserTests", "truncate_mid_line"]
