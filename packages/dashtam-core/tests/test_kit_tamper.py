"""Anti-tamper: overriding a kit test without xfail(reason=...) fails the run."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from dashtam_core.testing import ProviderIntegrationTests, ProviderUnitTests
from dashtam_core.testing.pytest_plugin import is_kit_class, tampered_tests

SUITE = textwrap.dedent(
    """
    import pytest
    from dashtam_core.testing import ProviderUnitTests

    PLUGIN = "dashtam_core.testing.fake"

    class TestSilenced(ProviderUnitTests):
        plugin_module = PLUGIN

        def test_http_401_is_an_auth_error(self):
            pass

    class TestHidden(ProviderUnitTests):
        plugin_module = PLUGIN
        test_spec_is_valid = None

    class TestBareXfail(ProviderUnitTests):
        plugin_module = PLUGIN

        @pytest.mark.xfail
        def test_spec_is_valid(self):
            raise AssertionError

    @pytest.mark.skip(reason="too strict")
    class TestSkipped(ProviderUnitTests):
        plugin_module = PLUGIN

    class TestHonest(ProviderUnitTests):
        plugin_module = PLUGIN

        @pytest.mark.xfail(reason="not distributed through an entry point", strict=True)
        def test_slug_matches_entry_point(self, request):
            super().test_slug_matches_entry_point(request)
    """
)


def run_suite(tmp_path: Path) -> dict[str, str]:
    (tmp_path / "pytest.ini").write_text(
        "[pytest]\nasyncio_mode = auto\nasyncio_default_fixture_loop_scope = function\n"
        "xfail_strict = true\n"
    )
    (tmp_path / "test_suite.py").write_text(SUITE)
    report = tmp_path / "report.xml"
    subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", f"--junitxml={report}"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    outcomes: dict[str, str] = {}
    for case in ET.parse(report).getroot().iter("testcase"):
        name = f"{case.get('classname', '').rsplit('.', 1)[-1]}::{case.get('name')}"
        children = [child.tag for child in case]
        outcomes[name] = next(
            (tag for tag in children if tag in {"failure", "error", "skipped"}), "passed"
        )
    return outcomes


def test_tampering_classes_get_a_failing_integrity_item(tmp_path: Path) -> None:
    outcomes = run_suite(tmp_path)
    integrity = {name: result for name, result in outcomes.items() if "kit-integrity" in name}
    assert {name.split("::")[-2] for name in integrity} == {
        "TestSilenced",
        "TestHidden",
        "TestBareXfail",
        "TestSkipped",
    }, outcomes
    assert set(integrity.values()) == {"failure"}
    # The honest class: its xfail override is an expected failure, the rest passes.
    honest = {n: r for n, r in outcomes.items() if n.startswith("TestHonest")}
    assert honest["TestHonest::test_slug_matches_entry_point"] == "skipped"  # xfail
    assert "failure" not in honest.values()
    assert "error" not in honest.values()


def test_tampered_tests_names_the_problems() -> None:
    class Silenced(ProviderUnitTests):
        def test_spec_is_valid(self) -> None:
            pass

    class Allowed(ProviderUnitTests):
        @pytest.mark.xfail(reason="documented gap")
        def test_spec_is_valid(self) -> None:
            pass

    problems = tampered_tests(Silenced)
    assert len(problems) == 1
    assert "test_spec_is_valid" in problems[0]
    assert "xfail(reason=...)" in problems[0]
    assert tampered_tests(Allowed) == []

    @pytest.mark.skipif(True, reason="hide it all")
    class Skipped(ProviderUnitTests):
        pass

    assert "hides every kit test" in tampered_tests(Skipped)[0]
    assert is_kit_class(ProviderUnitTests)
    assert is_kit_class(ProviderIntegrationTests)
    assert not is_kit_class(Silenced)
