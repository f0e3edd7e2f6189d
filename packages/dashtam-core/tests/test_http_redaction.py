"""Redaction of secrets in URLs, headers, free text, logging records and structlog events."""

from __future__ import annotations

import logging
import secrets
from collections.abc import MutableMapping
from typing import Any

import httpx
import pytest
import structlog

from dashtam_core.adapters.http import (
    RedactingFilter,
    SecretRegistry,
    build_provider_client,
    redact,
    redact_headers,
    redact_url,
    structlog_redactor,
)


def test_redact_url_masks_secret_query_params_and_userinfo() -> None:
    url = "https://user:pw@api.test/v1/x?access_token=abc123&page=2&client_secret=zz&code=c0de"
    out = redact_url(url)
    assert "abc123" not in out
    assert "zz" not in out
    assert "c0de" not in out
    assert "pw" not in out
    assert "page=2" in out
    assert "access_token=%2A%2A%2A" in out or "access_token=***" in out


def test_redact_headers_masks_auth_and_apca() -> None:
    headers = httpx.Headers(
        {
            "Authorization": "Bearer tok-123",
            "APCA-API-KEY-ID": "PKTEST",
            "APCA-API-SECRET-KEY": "s3cr3t",
            "X-Api-Key": "k",
            "Accept": "application/json",
        }
    )
    out = redact_headers(headers)
    assert out["authorization"] == "***"
    assert out["apca-api-key-id"] == "***"
    assert out["apca-api-secret-key"] == "***"
    assert out["x-api-key"] == "***"
    assert out["accept"] == "application/json"


def test_redact_free_text() -> None:
    registry = SecretRegistry()
    canary = secrets.token_hex(12)
    registry.add(canary, "x")  # too short values are ignored
    text = (
        f"failed with {canary}; Authorization: Bearer eyJhbGciOi.abc.def "
        'refresh_token=r-987 {"client_secret": "cs-1"} status_code=500 x'
    )
    out = redact(text, registry)
    assert canary not in out
    assert "eyJhbGciOi" not in out
    assert "r-987" not in out
    assert "cs-1" not in out
    assert "status_code=500" in out
    assert out.endswith(" x")
    assert len(registry) == 1
    registry.discard(canary)
    assert canary in redact(canary, registry)


def test_logging_filter_masks_registered_values(caplog: pytest.LogCaptureFixture) -> None:
    registry = SecretRegistry()
    canary = secrets.token_urlsafe(16)
    registry.add(canary)
    logger = logging.getLogger("dashtam.test.redaction")
    filt = RedactingFilter(registry)
    caplog.handler.addFilter(filt)
    try:
        with caplog.at_level(logging.INFO, logger="dashtam.test.redaction"):
            logger.info("calling with key %s", canary)
            try:
                raise RuntimeError(f"boom {canary}")
            except RuntimeError:
                logger.exception("failed")
    finally:
        caplog.handler.removeFilter(filt)
    assert canary not in caplog.text
    assert "calling with key ***" in caplog.text
    assert "RuntimeError: boom ***" in caplog.text


def test_structlog_processor_masks_keys_and_values() -> None:
    registry = SecretRegistry()
    canary = secrets.token_hex(8)
    registry.add(canary)
    captured: list[dict[str, object]] = []

    def capture(_logger: object, _method: str, event: MutableMapping[str, Any]) -> str:
        captured.append(dict(event))
        return ""

    log = structlog.wrap_logger(
        structlog.PrintLogger(),
        processors=[structlog_redactor(registry), capture],
    )
    log.info(
        f"sync {canary}",
        api_key="plain",
        nested={"refresh_token": "r", "note": f"k={canary}"},
        items=[canary],
        status_code=200,
    )
    event = captured[0]
    assert canary not in repr(event)
    assert event["api_key"] == "***"
    assert event["nested"] == {"refresh_token": "***", "note": "k=***"}
    assert event["status_code"] == 200


async def test_client_logs_method_path_status_only(caplog: pytest.LogCaptureFixture) -> None:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"ok": True})

    async with build_provider_client(
        "acme", transport=httpx.MockTransport(handler), headers={"Authorization": "Bearer T0KEN"}
    ) as client:
        with caplog.at_level(logging.DEBUG, logger="dashtam_core.http"):
            await client.get("https://api.test/v1/accounts?apikey=SECRETQ&page=1")
    assert "[acme] GET /v1/accounts -> 200" in caplog.text
    assert "SECRETQ" not in caplog.text
    assert "T0KEN" not in caplog.text
