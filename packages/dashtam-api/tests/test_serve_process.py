"""``dashtam serve`` as a real process on a free loopback port."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from dashtam_api import __version__
from dashtam_api.schemas.providers import provider_listing
from dashtam_core.plugins.manager import build_plugin_manager


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _command() -> list[str]:
    script = Path(sys.executable).parent / "dashtam"
    if script.exists():
        return [str(script)]
    return [sys.executable, "-m", "dashtam_api.cli.app"]


@pytest.fixture
def served(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    sandbox: bool = getattr(request, "param", False)
    port = _free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("DASHTAM_")}
    db = tmp_path / "var" / "served.db"
    env["DASHTAM_DATABASE_URL"] = f"sqlite+aiosqlite:///{db}"
    process = subprocess.Popen(
        [
            *_command(),
            "serve",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            *(["--sandbox"] if sandbox else []),
        ],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
        text=True,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                output = process.stdout.read() if process.stdout else ""
                pytest.fail(f"dashtam serve exited with {process.returncode}:\n{output}")
            try:
                if httpx.get(f"{base}/health", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                pytest.fail("dashtam serve did not answer /health within 30 s")
            time.sleep(0.1)
        yield base, db
    finally:
        process.send_signal(signal.SIGINT)
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout:
            process.stdout.close()


def test_serve_answers_health_providers_and_problems(served: tuple[str, Path]) -> None:
    base, db = served
    assert db.exists(), "serve must create and migrate the embedded database"
    with httpx.Client(base_url=base, timeout=5) as client:
        health = client.get("/health")
        assert health.status_code == 200
        assert health.json() == {"status": "ok", "version": __version__, "sandbox": False}
        assert client.get("/health/ready").json()["checks"] == {"database": "ok"}

        providers = client.get("/api/v1/providers")
        assert providers.status_code == 200
        expected = provider_listing(build_plugin_manager().providers).model_dump(mode="json")
        assert providers.json() == expected

        missing = client.get("/definitely/not/here", headers={"X-Request-ID": "probe-404"})
        assert missing.status_code == 404
        assert missing.headers["content-type"] == "application/problem+json"
        assert missing.headers["x-request-id"] == "probe-404"
        body = missing.json()
        assert body["code"] == "not_found"
        assert body["trace_id"] == "probe-404"
        assert "server" not in {k.lower() for k in missing.headers}

        assert client.get("/openapi.json").json()["info"]["title"] == "Dashtam"


@pytest.mark.parametrize("served", [True], indirect=True)
def test_serve_sandbox_mounts_provider_simulators(served: tuple[str, Path]) -> None:
    base, _ = served
    sandboxed = [p.spec.slug for p in build_plugin_manager().providers if p.spec.sandbox]
    with httpx.Client(base_url=base, timeout=5) as client:
        for slug in sandboxed:
            # The simulator answers in its provider's own wire format, not with our problem.
            response = client.get(f"/sandbox/{slug}/no-such-endpoint")
            assert response.headers.get("content-type") != "application/problem+json", slug
        if "alpaca" in sandboxed:
            account = client.get("/sandbox/alpaca/v2/account")
            assert account.status_code == 401
            assert account.json()["message"] == "request is not authorized"
        if "schwab" in sandboxed:
            accounts = client.get("/sandbox/schwab/trader/v1/accounts")
            assert accounts.status_code == 401


async def test_inprocess_jobs_start_and_stop_with_the_app(tmp_path: Path) -> None:
    """On the embedded default the periodic jobs run inside the app and stop with it."""
    from dashtam_api.main import create_app
    from dashtam_api.settings import ApiSettings

    settings = ApiSettings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'jobs.db'}",
        secret_dir=tmp_path / "keys",
        mail_outbox=tmp_path / "outbox",
        inprocess_jobs=True,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        assert runtime.periodic is not None
        assert runtime.jobs is None  # syncs still run as tasks of this process
    assert app.state.runtime is None
