"""Schwab test fixtures: fixture files and the sandbox served by a real uvicorn server."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import uvicorn

from dashtam_core.ports.provider import Credentials
from dashtam_provider_schwab import SandboxConfig, SchwabProvider, SchwabSettings
from dashtam_provider_schwab.sandbox import create_sandbox_app

FIXTURES = Path(__file__).parent / "fixtures"
REDIRECT_URI = "https://127.0.0.1:8182/callback"


class SchwabSandboxServer:
    """The Schwab sandbox served over HTTP on 127.0.0.1 (random free port) in a thread."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        self.app = create_sandbox_app(config)
        self.sandbox = self.app.state.sandbox
        self._sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._sock.bind(("127.0.0.1", 0))
        self.url = f"http://127.0.0.1:{self._sock.getsockname()[1]}"
        config_ = uvicorn.Config(
            self.app, lifespan="off", ws="none", http="h11", log_level="warning", access_log=False
        )
        self._server = uvicorn.Server(config_)
        self._thread = threading.Thread(
            target=self._server.run, kwargs={"sockets": [self._sock]}, daemon=True
        )

    def start(self) -> SchwabSandboxServer:
        self._thread.start()
        deadline = time.monotonic() + 10
        while not self._server.started:
            if time.monotonic() > deadline or not self._thread.is_alive():
                raise RuntimeError("the Schwab sandbox did not start")
            time.sleep(0.01)
        return self

    def stop(self) -> None:
        self._server.should_exit = True
        self._thread.join(timeout=10)
        self._sock.close()


@pytest.fixture
def sandbox_server() -> Iterator[SchwabSandboxServer]:
    server = SchwabSandboxServer().start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def serve_sandbox() -> Iterator[Callable[[SandboxConfig], SchwabSandboxServer]]:
    """``serve_sandbox(config)`` serves another sandbox (stopped after the test)."""
    started: list[SchwabSandboxServer] = []

    def serve(config: SandboxConfig) -> SchwabSandboxServer:
        server = SchwabSandboxServer(config).start()
        started.append(server)
        return server

    try:
        yield serve
    finally:
        for server in started:
            server.stop()


def _sandbox_settings(url: str, **overrides: object) -> SchwabSettings:
    """Settings pointing at a sandbox at ``url`` (environment ignored)."""
    base = SchwabSettings(_env_file=None, redirect_uri=REDIRECT_URI)
    merged = {**base.for_sandbox(url).model_dump(), **overrides}
    return SchwabSettings(_env_file=None, **merged)


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


@pytest.fixture
def provider(sandbox_server: SchwabSandboxServer, http_client: httpx.AsyncClient) -> SchwabProvider:
    return SchwabProvider(_sandbox_settings(sandbox_server.url), http_client)


async def _authorize(
    provider: SchwabProvider, http_client: httpx.AsyncClient, state: str = "st-123"
) -> tuple[str, str]:
    """Run the browser leg against the sandbox: returns (raw encoded code, verifier)."""
    request = provider.authorization_request(state)
    response = await http_client.get(request.url, follow_redirects=False)
    assert response.status_code == 302
    location = response.headers["location"]
    assert location.startswith(REDIRECT_URI + "?")
    raw_query = urlsplit(location).query
    raw_code = next(p.split("=", 1)[1] for p in raw_query.split("&") if p.startswith("code="))
    assert parse_qs(raw_query)["state"] == [state]
    return raw_code, request.code_verifier


async def _connect(provider: SchwabProvider, http_client: httpx.AsyncClient) -> Credentials:
    raw_code, verifier = await _authorize(provider, http_client)
    return (await provider.exchange_code(raw_code, verifier)).unwrap()


Authorize = Callable[[SchwabProvider, httpx.AsyncClient], Awaitable[tuple[str, str]]]
Connect = Callable[[SchwabProvider, httpx.AsyncClient], Awaitable[Credentials]]


@pytest.fixture
def make_settings() -> Callable[..., SchwabSettings]:
    """``make_settings(url, **overrides)``: settings pointing at a sandbox at ``url``."""
    return _sandbox_settings


@pytest.fixture
def authorize() -> Authorize:
    """``await authorize(provider, client)``: the browser leg; (raw ``%40`` code, verifier)."""
    return _authorize


@pytest.fixture
def connect() -> Connect:
    """``await connect(provider, client)``: authorize + exchange, fresh credentials."""
    return _connect
