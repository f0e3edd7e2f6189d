"""The plugin: registration, spec, sniffing, and the core's statement-parser conformance kit."""

from __future__ import annotations

from pathlib import Path

import pytest

from dashtam_core.domain.connection import AuthType
from dashtam_core.plugins.manager import build_plugin_manager
from dashtam_core.ports.provider import Capability, StatementParser
from dashtam_core.testing.statements import StatementParserTests
from dashtam_provider_chase import SPEC, ChaseProvider, ChaseSettings, detect_format

FIXTURES = Path(__file__).parent / "fixtures"


def test_entry_point_registers_the_spec() -> None:
    loaded = build_plugin_manager(load_only=["chase"])
    registered = loaded.providers.get("chase")
    assert registered.spec is SPEC
    assert registered.distribution == "dashtam-provider-chase"
    assert SPEC.auth_type is AuthType.FILE_IMPORT
    assert SPEC.capabilities == {Capability.ACCOUNTS, Capability.BALANCES, Capability.TRANSACTIONS}
    assert SPEC.extensions == (".qfx", ".ofx", ".qbo", ".csv")
    assert SPEC.settings_model is ChaseSettings
    assert "FITID" in SPEC.dedupe_rule


def test_factory_builds_a_statement_parser(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DASHTAM_CHASE_MAX_FILE_BYTES", "1234")
    provider = SPEC.factory(ChaseSettings(), None)  # type: ignore[arg-type]
    assert isinstance(provider, ChaseProvider)
    assert isinstance(provider, StatementParser)
    assert provider.settings.max_file_bytes == 1234


@pytest.mark.parametrize(
    ("filename", "head", "expected"),
    [
        ("anything.txt", b"OFXHEADER:100\nDATA:OFXSGML\n", "ofx"),
        ("x.bin", b'\xef\xbb\xbf<?xml version="1.0"?>\n<?OFX OFXHEADER="200"?><OFX>', "ofx"),
        (
            "x.dat",
            b"Details,Posting Date,Description,Amount,Type,Balance,Check or Slip #\r\n",
            "csv",
        ),
        ("Chase1234_Activity.QBO", b"junk", "ofx"),
        ("export.CSV", b"junk", "csv"),
        ("photo.jpg", b"\xff\xd8\xff\xe0", None),
        ("notes.xml", b'<?xml version="1.0"?><notes/>', None),
    ],
)
def test_sniff_by_content_then_extension(filename: str, head: bytes, expected: str | None) -> None:
    assert detect_format(filename, head) == expected
    assert ChaseProvider().sniff(filename, head) is (expected is not None)


def test_qbo_variant_parses_like_qfx() -> None:
    data = (
        (FIXTURES / "credit_card.qfx").read_bytes().replace(b"<INTU.BID>10898", b"<INTU.BID>2430")
    )
    qbo = ChaseProvider().parse_statement(data, "Chase9876_Activity_20250430.QBO").unwrap()
    qfx = ChaseProvider().parse_statement(
        (FIXTURES / "credit_card.qfx").read_bytes(), "Chase9876_Activity_20250430.qfx"
    )
    assert qbo == qfx.unwrap()


class TestCheckingQfxConformance(StatementParserTests):
    plugin_module = "dashtam_provider_chase.plugin"

    @pytest.fixture
    def sample_statement(self) -> tuple[bytes, str]:
        return (FIXTURES / "checking.qfx").read_bytes(), "Chase3210_Activity_20250430.qfx"


class TestCardQfxConformance(StatementParserTests):
    plugin_module = "dashtam_provider_chase.plugin"

    @pytest.fixture
    def sample_statement(self) -> tuple[bytes, str]:
        return (FIXTURES / "credit_card.qfx").read_bytes(), "Chase9876_Activity_20250430.qfx"


class TestCheckingCsvConformance(StatementParserTests):
    plugin_module = "dashtam_provider_chase.plugin"

    @pytest.fixture
    def sample_statement(self) -> tuple[bytes, str]:
        return (FIXTURES / "checking.csv").read_bytes(), "Chase3210_Activity_20250430.CSV"


class TestCardCsvConformance(StatementParserTests):
    plugin_module = "dashtam_provider_chase.plugin"

    @pytest.fixture
    def sample_statement(self) -> tuple[bytes, str]:
        return (FIXTURES / "credit_card.csv").read_bytes(), "Chase9876_Activity20250430.CSV"
