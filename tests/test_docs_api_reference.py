"""docs/reference/api.md lists exactly the routes of the app's OpenAPI document."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from dashtam_api import create_app

PAGE = Path(__file__).resolve().parents[1] / "docs" / "reference" / "api.md"
ROW = re.compile(
    r"^\| (?P<method>GET|POST|PUT|PATCH|DELETE) \| `(?P<path>[^`]+)` \| (?P<auth>[a-z]+) \| "
    r"(?P<status>[0-9,]+) \|(?P<what>[^\n]*)$",
    re.MULTILINE,
)
QUERY = re.compile(r"Query: ((?:`\w+`(?:, )?)+)\.")


@pytest.fixture(scope="module")
def openapi() -> dict[str, Any]:
    return create_app().openapi()


def operations(doc: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {
        (method.upper(), path): op
        for path, ops in doc["paths"].items()
        for method, op in ops.items()
        if method in ("get", "post", "put", "patch", "delete")
    }


def documented() -> dict[tuple[str, str], re.Match[str]]:
    return {(m["method"], m["path"]): m for m in ROW.finditer(PAGE.read_text(encoding="utf-8"))}


def test_every_route_is_documented(openapi: dict[str, Any]) -> None:
    missing = sorted(set(operations(openapi)) - set(documented()))
    assert not missing, f"routes missing from {PAGE.name}: {missing}"


def test_no_documented_route_is_invented(openapi: dict[str, Any]) -> None:
    invented = sorted(set(documented()) - set(operations(openapi)))
    assert not invented, f"{PAGE.name} lists routes the app does not have: {invented}"


def test_auth_and_success_status_agree(openapi: dict[str, Any]) -> None:
    ops = operations(openapi)
    for key, row in documented().items():
        op = ops[key]
        assert row["auth"] == op.get("x-auth"), (key, row["auth"], op.get("x-auth"))
        success = ",".join(code for code in op["responses"] if code.startswith("2"))
        assert row["status"] == success, (key, row["status"], success)


def test_query_parameters_agree(openapi: dict[str, Any]) -> None:
    ops = operations(openapi)
    for key, row in documented().items():
        found = QUERY.search(row["what"])
        written = set(re.findall(r"`(\w+)`", found[1])) if found else set()
        actual = {p["name"] for p in ops[key].get("parameters", []) if p["in"] == "query"}
        assert written == actual, (key, sorted(written), sorted(actual))


def test_row_pattern_reads_the_page() -> None:
    assert len(documented()) >= 40
    assert ("GET", "/api/v1/accounts") in documented()
