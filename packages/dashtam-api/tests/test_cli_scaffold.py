"""``dashtam new-provider``: the printed next step and the error style of refused scaffolds."""

from __future__ import annotations

import shlex
import tomllib
from pathlib import Path

import pytest
import typer
from typer.testing import CliRunner, Result

from dashtam_api.cli.app import app
from dashtam_api.cli.scaffold import new_provider

runner = CliRunner()


@pytest.mark.parametrize("auth", ["api_key", "oauth2", "file_import"])
def test_next_step_installs_the_test_extra(tmp_path: Path, auth: str) -> None:
    dest = tmp_path / "with space"
    result = runner.invoke(app, ["new-provider", "acme", "--auth", auth, "--dest", str(dest)])
    assert result.exit_code == 0, result.output
    created_line, next_line = result.stdout.splitlines()
    created = Path(created_line.removeprefix("created "))
    assert next_line.startswith("next: ")
    assert 'pip install -e ".[test]"' in next_line
    words = shlex.split(next_line.removeprefix("next: "))
    assert words[:2] == ["cd", str(created)]
    assert words[2:] == ["&&", "pip", "install", "-e", ".[test]", "&&", "pytest"]
    extras = tomllib.loads((created / "pyproject.toml").read_text("utf-8"))["project"][
        "optional-dependencies"
    ]
    needed = " ".join(extras["test"])
    assert "pytest" in needed
    assert "dashtam-core[testing]" in needed


def _assert_user_error(result: Result, code: str) -> None:
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit), result.exception
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert lines[0].endswith(f"[{code}]")
    assert "Traceback" not in result.output
    assert result.stdout == ""


def test_refusals_are_user_errors_even_in_debug_mode(tmp_path: Path) -> None:
    """DASHTAM_DEBUG re-raises internal errors only; a refused scaffold is the user's error."""
    args = ["new-provider", "acme", "--dest", str(tmp_path)]
    assert runner.invoke(app, args).exit_code == 0
    debug = {"DASHTAM_DEBUG": "1"}
    again = runner.invoke(app, args, env=debug)
    _assert_user_error(again, "conflict")
    assert "already exists" in again.stderr
    bad = runner.invoke(app, ["new-provider", "Not A Slug!", "--dest", str(tmp_path)], env=debug)
    _assert_user_error(bad, "validation_error")


def test_command_reports_errors_without_the_dashtam_group(tmp_path: Path) -> None:
    """Mounted in a plain Typer app, the command still prints one line and exits 1."""
    plain = typer.Typer()
    plain.command()(new_provider)
    bad = runner.invoke(plain, ["Not A Slug!", "--dest", str(tmp_path)])
    _assert_user_error(bad, "validation_error")
    blocker = tmp_path / "a-file"
    blocker.write_text("not a directory")
    _assert_user_error(runner.invoke(plain, ["acme", "--dest", str(blocker)]), "os_error")
    assert not (tmp_path / "dashtam-provider-acme").exists()
