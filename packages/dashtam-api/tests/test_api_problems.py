"""Every error is RFC 9457 problem details: framework 404/405/422, DashtamErrors, 413, 500."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable
from typing import Any

import httpx
from fastapi import Body, Query

from dashtam_api.problems import (
    PROBLEM_MEDIA_TYPE,
    ProblemDetails,
    error_catalog,
    openapi_error_responses,
    problem_for_exception,
    register_error_code,
)
from dashtam_api.registry import RouteSpec
from dashtam_core.errors import FieldError, NotFound, RateLimitExceeded, WeakPassword

UUID7 = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-7[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}")
SECRET = "sk-live-hunter2-do-not-leak"


async def boom() -> dict[str, str]:
    """Always fails with a bug."""
    raise RuntimeError(f"database password is {SECRET}")


async def limited() -> dict[str, str]:
    """Always rate limited."""
    raise RateLimitExceeded(retry_after=2.2)


async def weak(password: str = Body(embed=True)) -> dict[str, str]:
    """Rejects every password."""
    raise WeakPassword(
        "password is too common",
        errors=[FieldError("password", "too_common", "found in breach lists")],
    )


async def missing() -> dict[str, str]:
    """Nothing here."""
    raise NotFound("no such account")


async def paged(limit: int = Query(ge=1, le=500)) -> dict[str, int]:
    """Echoes ``limit``."""
    return {"limit": limit}


EXTRA = (
    RouteSpec(
        name="test.boom",
        method="GET",
        path="/test/boom",
        handler=boom,
        auth="public",
        rate_limit="read_user",
    ),
    RouteSpec(
        name="test.limited",
        method="GET",
        path="/test/limited",
        handler=limited,
        auth="public",
        rate_limit="read_user",
    ),
    RouteSpec(
        name="test.weak",
        method="POST",
        path="/test/weak",
        handler=weak,
        auth="public",
        rate_limit="register_ip",
        errors=("weak_password",),
    ),
    RouteSpec(
        name="test.missing",
        method="GET",
        path="/test/missing",
        handler=missing,
        auth="public",
        rate_limit="read_user",
        errors=("not_found",),
    ),
    RouteSpec(
        name="test.paged",
        method="GET",
        path="/test/paged",
        handler=paged,
        auth="public",
        rate_limit="read_user",
    ),
)


def assert_problem(response: httpx.Response, status: int, code: str) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"] == PROBLEM_MEDIA_TYPE
    body: dict[str, Any] = response.json()
    ProblemDetails.model_validate(body)
    assert set(body) == {
        "type",
        "title",
        "status",
        "detail",
        "instance",
        "code",
        "trace_id",
        "errors",
    }
    assert body["status"] == status
    assert body["code"] == code
    assert body["type"] == f"urn:dashtam:problem:{code}"
    assert body["trace_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text
    return body


async def test_unknown_path_is_404_problem(client: httpx.AsyncClient) -> None:
    response = await client.get("/no/such/thing")
    body = assert_problem(response, 404, "not_found")
    assert body["instance"] == "/no/such/thing"
    assert UUID7.fullmatch(body["trace_id"])


async def test_wrong_method_is_405_problem_with_allow(client: httpx.AsyncClient) -> None:
    response = await client.delete("/health")
    assert_problem(response, 405, "method_not_allowed")
    assert response.headers["allow"] == "GET"


async def test_validation_error_names_the_field(make_client: Callable[..., Any]) -> None:
    _, client = await make_client(extra_routes=EXTRA)
    response = await client.get("/test/paged", params={"limit": "many"})
    body = assert_problem(response, 422, "validation_error")
    assert [e["field"] for e in body["errors"]] == ["query.limit"]
    assert body["errors"][0]["code"] == "int_parsing"
    missing = assert_problem(await client.get("/test/paged"), 422, "validation_error")
    assert missing["errors"][0] == {
        "field": "query.limit",
        "code": "missing",
        "message": "Field required",
    }
    ok = await client.get("/test/paged", params={"limit": "5"})
    assert ok.json() == {"limit": 5}


async def test_body_validation_field_path_drops_body_prefix(
    make_client: Callable[..., Any],
) -> None:
    _, client = await make_client(extra_routes=EXTRA)
    body = assert_problem(await client.post("/test/weak", json={}), 422, "validation_error")
    assert body["errors"][0]["field"] == "password"


async def test_dashtam_error_keeps_code_detail_and_field_errors(
    make_client: Callable[..., Any],
) -> None:
    _, client = await make_client(extra_routes=EXTRA)
    body = assert_problem(
        await client.post("/test/weak", json={"password": "x"}), 422, "weak_password"
    )
    assert body["detail"] == "password is too common"
    assert body["errors"] == [
        {"field": "password", "code": "too_common", "message": "found in breach lists"}
    ]
    assert_problem(await client.get("/test/missing"), 404, "not_found")


async def test_rate_limit_sets_retry_after(make_client: Callable[..., Any]) -> None:
    _, client = await make_client(extra_routes=EXTRA)
    response = await client.get("/test/limited")
    assert_problem(response, 429, "rate_limited")
    assert response.headers["retry-after"] == "3"


async def test_unhandled_exception_is_500_without_details(
    make_client: Callable[..., Any],
) -> None:
    _, client = await make_client(extra_routes=EXTRA)
    response = await client.get("/test/boom", headers={"X-Request-ID": "trace-me-500"})
    body = assert_problem(response, 500, "internal_error")
    assert body["trace_id"] == "trace-me-500"
    assert SECRET not in response.text
    assert "RuntimeError" not in response.text


async def test_oversized_body_is_413_problem(make_client: Callable[..., Any]) -> None:
    _, client = await make_client(extra_routes=EXTRA, max_request_bytes=2048)
    declared = await client.post("/test/weak", content=b"x" * 4096)
    assert_problem(declared, 413, "payload_too_large")

    async def chunks() -> AsyncIterator[bytes]:
        for _ in range(8):
            yield b'{"password": "' + b"y" * 512

    streamed_response = await client.post("/test/weak", content=chunks())
    assert_problem(streamed_response, 413, "payload_too_large")
    small = await client.post("/test/weak", json={"password": "short"})
    assert small.status_code == 422


def test_catalog_knows_core_and_framework_codes() -> None:
    catalog = error_catalog()
    assert catalog["not_found"] == {404}
    assert catalog["invalid_credentials"] == {401, 422}
    assert catalog["internal_error"] == {500}
    assert catalog["payload_too_large"] == {413}
    assert catalog["not_ready"] == {503}
    register_error_code("test_only_code", 418)
    assert error_catalog()["test_only_code"] == {418}


def test_openapi_responses_group_codes_by_status() -> None:
    responses = openapi_error_responses(["not_found", "invalid_credentials:401", "conflict"])
    assert sorted(responses) == [401, 404, 409]
    examples = responses[401]["content"][PROBLEM_MEDIA_TYPE]["examples"]
    assert list(examples) == ["invalid_credentials"]
    assert examples["invalid_credentials"]["value"]["status"] == 401


def test_problem_for_exception_never_echoes_unknown_errors() -> None:
    problem, headers = problem_for_exception(
        ValueError(SECRET), instance="/x", trace_id="t-1", method="GET"
    )
    assert problem.code == "internal_error"
    assert SECRET not in problem.model_dump_json()
    assert headers == {}
