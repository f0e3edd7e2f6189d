"""docs/write-a-provider.md: its Python blocks run, and its steps match the scaffold."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from dashtam_core.domain.connection import AuthType
from dashtam_core.scaffold import scaffold_provider

DOC = Path(__file__).resolve().parents[3] / "docs" / "write-a-provider.md"
FENCE = re.compile(r"^```(?P<info>[^\n]*)\n(?P<body>.*?)^```$", re.MULTILINE | re.DOTALL)

pytestmark = pytest.mark.skipif(not DOC.is_file(), reason="the docs folder is not present")


def blocks(kind: str) -> list[tuple[str, str]]:
    """``(info, body)`` of every fenced block whose language is ``kind``."""
    text = DOC.read_text("utf-8")
    return [(m["info"], m["body"]) for m in FENCE.finditer(text) if m["info"].split(" ")[0] == kind]


def test_python_blocks_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    runnable = [body for info, body in blocks("python") if "title=" not in info]
    assert len(runnable) >= 3
    namespace: dict[str, object] = {"__name__": "write_a_provider_doc"}
    for number, body in enumerate(runnable, start=1):
        code = compile(body, f"{DOC.name}#python-block-{number}", "exec")
        exec(code, namespace)  # the documentation's own examples
    assert (tmp_path / "dashtam-provider-acme" / "pyproject.toml").is_file()


def test_conformance_block_is_what_the_scaffold_writes(tmp_path: Path) -> None:
    titled = {
        re.search(r'title="([^"]+)"', info)[1]: body  # type: ignore[index]
        for info, body in blocks("python")
        if "title=" in info
    }
    package = scaffold_provider("acme", AuthType.API_KEY, tmp_path)
    assert titled, "the page shows the generated test module"
    for relative, body in titled.items():
        assert (package / relative).read_text("utf-8") == body, relative


def test_console_steps_scaffold_through_the_cli(tmp_path: Path) -> None:
    commands = [
        line.removeprefix("$ ").split()
        for _, body in blocks("console")
        for line in body.splitlines()
        if line.startswith("$ ")
    ]
    assert commands[0][:2] == ["dashtam", "new-provider"]
    assert ["cd", "dashtam-provider-acme"] in commands
    assert ["dashtam", "plugins"] in commands
    cli = shutil.which("dashtam", path=str(Path(sys.executable).parent))
    if cli is None:
        pytest.skip("the dashtam CLI (dashtam-api) is not installed")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHTAM_")}
    done = subprocess.run(
        [cli, *commands[0][1:]],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "dashtam-provider-acme" / "tests" / "test_conformance.py").is_file()
