"""Alpaca test fixtures: the fixture files and the sandbox served by a real uvicorn server."""

from __future__ import annotations

import json
import threading
import time
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from dashtam_core.ports.provider import Credentials
from dashtam_provider_alpaca import AlpacaProvider, AlpacaSettings
from dashtam_provider_alpaca.sandbox import (
    SANDBOX_API_KEY_ID,
    SANDBOX_SECRET_KEY,
    SandboxConfig,
    create_sandbox_app,
)

FIXTURES = Path(__file__).parent / "fixtures"


def load_fixture(name: str) -> Any:
    """A fixture file decoded as the client decodes responses (decimals stay strings)."""
    return json.loads((FIXTURES / name).read_text("utf-8"))


class ServedSandbox:
    """A sandbox app served over real HTTP on 127.0.0.1 in a background thread."""

    def __init__(self, config: SandboxConfig | None = None) -> None:
        cfg = uvicorn.Config(
            create_sandbox_app(config),
            host="127.0.0.1",
            port=0,  # a free port, read back once started
            lifespan="off",
            ws="none",
            http="h11",
            log_level="warning",
            access_log=False,
        )
        self.server = uvicorn.Server(cfg)
        self.thread = threading.Thread(target=self.server.run, daemon=True)
        self.url = ""

    def __enter__(self) -> ServedSandbox:
        self.thread.start()
        deadline = time.monotonic() + 10
        while not self.server.started:
            if time.monotonic() > deadline or not self.thread.is_alive():
                raise RuntimeError("the sandbox server did not start")
            time.sleep(0.01)
        port = self.server.servers[0].sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}"
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=10)


@pytest.fixture(scope="module")
def served() -> Iterator[ServedSandbox]:
    with ServedSandbox() as server:
        yield server


@pytest.fixture
def serve_sandbox() -> Iterator[Callable[[SandboxConfig], str]]:
    """``serve_sandbox(config)`` serves another sandbox for this test and returns its URL."""
    started: list[ServedSandbox] = []

    def serve(config: SandboxConfig) -> str:
        server = ServedSandbox(config).__enter__()
        started.append(server)
        return server.url

    yield serve
    for server in started:
        server.__exit__(None, None, None)


@pytest.fixture
def sandbox_url(served: ServedSandbox) -> str:
    """The served sandbox's base URL, with its fault queue emptied."""
    httpx.delete(f"{served.url}/_sandbox/faults").raise_for_status()
    return served.url


@pytest.fixture
def credentials() -> Credentials:
    return Credentials({"api_key_id": SANDBOX_API_KEY_ID, "secret_key": SANDBOX_SECRET_KEY})


@pytest.fixture
async def http_client() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient() as client:
        yield client


class ProviderFactory:
    """Builds providers whose paper and live hosts both point at one base URL."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client

    def __call__(self, base_url: str, *, page_size: int = 100) -> AlpacaProvider:
        settings = AlpacaSettings(page_size=page_size).for_sandbox(base_url)
        return AlpacaProvider(settings, self.client)


@pytest.fixture
def make_provider(http_client: httpx.AsyncClient) -> ProviderFactory:
    return ProviderFactory(http_client)


@pytest.fixture
def fixture_json() -> Any:
    """``fixture_json(name)`` loads a copied fixture file."""
    return load_fixture
