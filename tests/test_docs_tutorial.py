"""Run docs/tutorial.md and the how-to pages: every ```bash block, in order, in sandbox mode.

Each page runs in a fresh directory of its own. Conventions of the pages:

* The blocks run as one bash script (``set -e``), so variables carry from block to block; the
  working directory is a temporary copy of ``docs/samples`` under ``docs/samples``, with
  ``.venv/bin`` first on ``PATH`` and a SQLite database of its own.
* A ```text block right after a ```bash block is that block's expected output: after replacing
  UUIDs by ``<id>`` and RFC 3339 timestamps by ``<time>``, its lines must appear, in that order,
  among the lines the block printed (stdout and stderr).
* ``<!-- docs-test: skip (reason) -->`` before a fence: not run.
* ``<!-- docs-test: serve (reason) -->`` before a fence: the block starts a server; the test runs
  it in the background with ``--port`` set to a free port, waits for ``/health`` and rewrites
  ``http://127.0.0.1:8000`` to that port in the blocks after it.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parents[1]
TUTORIAL = ROOT / "docs" / "tutorial.md"
HOW_TO = ROOT / "docs" / "how-to"
#: Pages whose shell blocks run; postgres-redis.md needs servers and is checked by hand.
SHELL_PAGES = [
    TUTORIAL,
    HOW_TO / "import-statements.md",
    HOW_TO / "connect-a-provider.md",
    HOW_TO / "rotate-keys.md",
    HOW_TO / "verify-audit-trail.md",
]
SAMPLES = ROOT / "docs" / "samples"
VENV_BIN = Path(sys.executable).parent
DEFAULT_API = "http://127.0.0.1:8000"
MARKER = re.compile(r"<!--\s*docs-test:\s*(?P<kind>\w[\w-]*)\s*(?:\((?P<reason>[^)]*)\))?\s*-->")
UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
TIMESTAMP = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(?:\.\d+)?(?:Z|[+-]\d\d:\d\d)")
SENTINEL = "@@docs-test-block {}@@"


@dataclass(frozen=True)
class Fence:
    """One fenced code block of a Markdown page."""

    lang: str
    body: str
    line: int
    marker: str | None  # "skip", "serve", ... from a preceding docs-test comment


def fences(text: str) -> list[Fence]:
    """Return the top-level fenced blocks of ``text`` with their docs-test markers."""
    out: list[Fence] = []
    lines = text.splitlines()
    i = 0
    previous = ""
    while i < len(lines):
        line = lines[i]
        if line.startswith("```"):
            lang = line[3:].strip().split(" ")[0]
            start = i
            i += 1
            body: list[str] = []
            while i < len(lines) and not lines[i].startswith("```"):
                body.append(lines[i])
                i += 1
            found = MARKER.search(previous)
            out.append(Fence(lang, "\n".join(body) + "\n", start + 1, found and found["kind"]))
            previous = ""
        elif line.strip():
            previous = line
        i += 1
    return out


@dataclass
class Step:
    """A bash block to run and the output the page promises for it."""

    fence: Fence
    expected: list[str]


def steps(blocks: list[Fence]) -> list[Step]:
    """Pair each bash block with the text block that follows it (if any)."""
    out: list[Step] = []
    for n, block in enumerate(blocks):
        if block.lang != "bash" or block.marker in ("skip", "serve"):
            continue
        nxt = blocks[n + 1] if n + 1 < len(blocks) else None
        expected = nxt.body.splitlines() if nxt is not None and nxt.lang == "text" else []
        out.append(Step(block, [e.rstrip() for e in expected if e.strip()]))
    return out


def normalize(line: str) -> str:
    """Hide what differs between runs: ids and timestamps."""
    return TIMESTAMP.sub("<time>", UUID.sub("<id>", line)).rstrip()


def check_output(step: Step, printed: str, page: Path = TUTORIAL) -> None:
    """The expected lines must appear, in order, among the printed ones."""
    actual = [normalize(line) for line in printed.splitlines()]
    position = 0
    for want in step.expected:
        try:
            position = actual.index(normalize(want), position) + 1
        except ValueError:
            pytest.fail(
                f"{page.name}:{step.fence.line}: expected line not printed (in order):\n"
                f"  {want}\n--- printed ---\n{printed}"
            )


def run_script(page: Path, workdir: Path, env: dict[str, str], group: list[Step]) -> list[str]:
    """Run a group of steps as one bash script; return each step's combined output."""
    parts = ["set -e"]
    for n, step in enumerate(group):
        parts.append(f"printf '\\n{SENTINEL.format(n)}\\n'")
        parts.append(step.fence.body)
    done = subprocess.run(
        ["bash", "-c", "\n".join(parts)],
        cwd=workdir,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
        timeout=600,
        check=False,
    )
    chunks = re.split(r"^@@docs-test-block \d+@@$", done.stdout, flags=re.MULTILINE)[1:]
    if done.returncode != 0:
        failed = group[len(chunks) - 1] if chunks else group[0]
        pytest.fail(
            f"{page.name}:{failed.fence.line}: block failed with exit status "
            f"{done.returncode}:\n{failed.fence.body}--- output ---\n{done.stdout}"
        )
    assert len(chunks) == len(group), done.stdout
    return chunks


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@pytest.fixture
def tutorial_env(tmp_path: Path) -> tuple[Path, dict[str, str]]:
    for tool in ("bash", "curl", "jq"):
        if shutil.which(tool) is None:
            pytest.skip(f"the tutorial uses {tool}, which is not installed")
    workdir = tmp_path / "work"
    shutil.copytree(SAMPLES, workdir / "docs" / "samples")
    keep = {k: v for k, v in os.environ.items() if not k.startswith("DASHTAM_")}
    env = keep | {
        "PATH": f"{VENV_BIN}{os.pathsep}{os.environ.get('PATH', '')}",
        "PYTHONPYCACHEPREFIX": str(tmp_path / "pycache"),
        "DASHTAM_DATABASE_URL": f"sqlite+aiosqlite:///{workdir}/var/dashtam.db",
        "DASHTAM_SANDBOX": "true",
        "COLUMNS": "200",
    }
    return workdir, env


@dataclass
class Server:
    process: subprocess.Popen[bytes]
    url: str


def start_server(fence: Fence, workdir: Path, env: dict[str, str]) -> Server:
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = fence.body.strip() + f" --port {port}"
    process = subprocess.Popen(
        ["bash", "-c", f"exec {command}"],
        cwd=workdir,
        env=env | {"DASHTAM_PUBLIC_BASE_URL": url},
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
    )
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        assert process.poll() is None, f"{command!r} exited with {process.returncode}"
        try:
            if httpx.get(f"{url}/health", timeout=1).status_code == 200:
                return Server(process, url)
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    pytest.fail(f"{command!r} did not answer /health within 60 s")


def stop_server(server: Server) -> None:
    if server.process.poll() is None:
        os.killpg(server.process.pid, signal.SIGTERM)
        try:
            server.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(server.process.pid, signal.SIGKILL)
            server.process.wait()


def groups(blocks: list[Fence]) -> Iterator[tuple[Fence | None, list[Step]]]:
    """Split the page at each ``serve`` block: (server block or None, the steps after it)."""
    current: list[Fence] = []
    server: Fence | None = None
    for block in blocks:
        if block.marker == "serve":
            yield server, steps(current)
            current, server = [], block
        else:
            current.append(block)
    yield server, steps(current)


def run_page(page: Path, workdir: Path, env: dict[str, str]) -> int:
    """Run the page's blocks (starting its servers); return how many blocks ran."""
    blocks = fences(page.read_text(encoding="utf-8"))
    servers: list[Server] = []
    ran = 0
    try:
        for serve, group in groups(blocks):
            if serve is not None:
                server = start_server(serve, workdir, env)
                servers.append(server)
                for step in group:
                    body = step.fence.body.replace(DEFAULT_API, server.url)
                    step.fence = Fence(step.fence.lang, body, step.fence.line, step.fence.marker)
            if not group:
                continue
            printed = run_script(page, workdir, env, group)
            for step, output in zip(group, printed, strict=True):
                check_output(step, output, page)
                ran += 1
    finally:
        for server in servers:
            stop_server(server)
    return ran


@pytest.mark.slow
def test_tutorial_runs_as_written(tutorial_env: tuple[Path, dict[str, str]]) -> None:
    workdir, env = tutorial_env
    blocks = fences(TUTORIAL.read_text(encoding="utf-8"))
    assert sum(1 for b in blocks if b.marker == "serve") == 1
    ran = run_page(TUTORIAL, workdir, env)
    assert ran >= 15  # the page was not emptied by accident
    # what the tutorial promises beyond its printed lines
    assert (workdir / "transactions.csv").read_text().count("\n") == 92
    assert list((workdir / "var" / "outbox").glob("*.eml"))


@pytest.mark.slow
@pytest.mark.parametrize("page", SHELL_PAGES[1:], ids=lambda p: p.name)
def test_how_to_runs_as_written(page: Path, tutorial_env: tuple[Path, dict[str, str]]) -> None:
    workdir, env = tutorial_env
    assert run_page(page, workdir, env) >= 2


def test_fence_parser_reads_markers() -> None:
    text = (
        "intro\n\n<!-- docs-test: skip (needs PostgreSQL) -->\n```bash\nfoo\n```\n\n"
        "```text\nbar\n```\n<!-- docs-test: serve -->\n```bash\nserve\n```\n"
    )
    parsed = fences(text)
    assert [(f.lang, f.body, f.marker) for f in parsed] == [
        ("bash", "foo\n", "skip"),
        ("text", "bar\n", None),
        ("bash", "serve\n", "serve"),
    ]
    assert steps(parsed) == []  # skip is skipped, serve has no text after it
    step = Step(Fence("bash", "x", 1, None), ["a <id>", "c"])
    check_output(step, "a 01a2171e-e78c-7000-8ad2-a8b43ed9f9f0\nb\nc\n")
    with pytest.raises(pytest.fail.Exception):
        check_output(step, "c\na 01a2171e-e78c-7000-8ad2-a8b43ed9f9f0\n")
