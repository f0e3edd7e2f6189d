"""Run every ```python block of README.md, docs/ and the package READMEs.

Each block runs on its own as a script, in a fresh directory holding copies of the sample
statements of ``docs/samples`` (so ``Path("checking.qfx")`` works), with no ``DASHTAM_*``
variable from the outside. docs/write-a-provider.md is run by its own test. A block preceded by
``<!-- docs-test: skip (reason) -->`` is not run; keep those few, and give the reason.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SAMPLES = ROOT / "docs" / "samples"
EXCLUDED = {ROOT / "docs" / "write-a-provider.md"}
MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<kind>[\w-]+)\s*(?:\((?P<reason>[^)]*)\))?\s*-->")
MAX_SKIPPED = 6


@dataclass(frozen=True)
class Block:
    """A fenced ```python block."""

    page: Path
    line: int
    code: str
    skip: str | None  # the reason, when marked skip

    @property
    def name(self) -> str:
        return f"{self.page.relative_to(ROOT)}:{self.line}"


def pages() -> list[Path]:
    found = [ROOT / "README.md", *sorted((ROOT / "docs").rglob("*.md"))]
    found += sorted(ROOT.glob("packages/*/README.md"))
    return [p for p in found if p not in EXCLUDED]


def python_blocks(page: Path) -> list[Block]:
    """The ```python blocks of ``page`` with their skip reasons."""
    out: list[Block] = []
    lines = page.read_text(encoding="utf-8").splitlines()
    previous = ""
    i = 0
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            lang = line[3:].strip().split(" ")[0]
            start = i + 1
            i += 1
            body: list[str] = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            if lang == "python":
                marker = MARKER.search(previous)
                skip = None
                if marker is not None and marker["kind"] == "skip":
                    skip = marker["reason"] or ""
                out.append(Block(page, start, "\n".join(body) + "\n", skip))
            previous = ""
        elif line.strip():
            previous = line
        i += 1
    return out


ALL_BLOCKS = [block for page in pages() for block in python_blocks(page)]


def test_blocks_are_found_and_skips_are_few_and_explained() -> None:
    assert any(b.page == ROOT / "README.md" for b in ALL_BLOCKS), "README lost its example"
    skipped = [b for b in ALL_BLOCKS if b.skip is not None]
    assert len(skipped) <= MAX_SKIPPED, [b.name for b in skipped]
    assert all(b.skip for b in skipped), "every skip marker needs a (reason)"
    assert len(ALL_BLOCKS) - len(skipped) >= 5


@pytest.mark.parametrize("block", ALL_BLOCKS, ids=[b.name for b in ALL_BLOCKS])
def test_python_block_runs(block: Block, tmp_path: Path) -> None:
    if block.skip is not None:
        pytest.skip(f"marked in the page: {block.skip}")
    for sample in SAMPLES.iterdir():
        shutil.copy(sample, tmp_path / sample.name)
    script = tmp_path / "example.py"
    script.write_text(block.code, encoding="utf-8")
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHTAM_")}
    env["PYTHONPYCACHEPREFIX"] = str(tmp_path / "pycache")
    env["PYTHONWARNINGS"] = "error"
    done = subprocess.run(
        [sys.executable, str(script)],
        cwd=tmp_path,
        env=env,
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, (
        f"{block.name} failed:\n{block.code}--- stdout ---\n{done.stdout}"
        f"--- stderr ---\n{done.stderr}"
    )


def test_marker_parsing(tmp_path: Path) -> None:
    page = tmp_path / "page.md"
    page.write_text(
        "<!-- docs-test: skip (needs a server) -->\n```python\nraise SystemExit(1)\n```\n\n"
        "```python\nprint('ok')\n```\n```bash\nfalse\n```\n",
        encoding="utf-8",
    )
    blocks = python_blocks(page)
    assert [(b.line, b.skip) for b in blocks] == [(2, "needs a server"), (6, None)]
