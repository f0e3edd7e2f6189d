"""Schemathesis over the whole OpenAPI document with two authenticated users (issue 6).

The real application runs in-process (schemathesis' ASGI transport, lifespan on) on a SQLite
file in ``tmp_path``, with the Schwab, Alpaca and Chase plugins loaded and their provider hosts
pointed at a closed loopback port (no call leaves the machine). Two users register, verify
their address from the mail outbox and log in; user A imports a Chase statement so the read
side has data and opens a Schwab OAuth connection (it stays pending). Every operation is then
generated and sent as user B and as user A, each with a fresh session so that logout-style
operations cannot starve the next ones; about half the cases of an ``{id}`` route use one of
user A's real ids (user B must get 404, user A a documented body).

Positive cases: no server error, a conforming body, a documented status code. Negative cases:
no server error and a conforming body; their status codes are checked by a strict xfail that
documents the one known gap (400 for a body that is not JSON). Failures are collected and
reported together.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar, cast

import hypothesis
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase
from hypothesis import strategies as st
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.core.failures import Failure, FailureGroup
from schemathesis.core.result import Ok
from schemathesis.python import asgi
from schemathesis.specs.openapi.checks import (
    response_schema_conformance,
    status_code_conformance,
)

from dashtam_api.main import create_app
from dashtam_api.settings import ApiSettings
from dashtam_core.adapters.mail.outbox import read_outbox
from dashtam_core.adapters.security.passwords import TEST_PARAMS, Argon2idHasher

CHASE_QFX = Path(__file__).parents[2] / "dashtam-core" / "tests" / "fixtures" / "chase"
PASSWORD = "correct horse battery staple 42"
MAX_EXAMPLES = 20
#: Closed loopback port: a provider call fails fast with a transport error.
NOWHERE = "http://127.0.0.1:9"

#: Operations that cannot work in this harness, and why.
EXCLUDED = {
    # A Server-Sent Events stream that stays open until the client goes away: the transport
    # would wait for it to end (it is covered by test_events_sse_http.py over real HTTP).
    "GET /api/v1/events",
}

#: Operations that destroy what the others use (user A's known ids, sessions): run last.
RUN_LAST = {
    "DELETE /api/v1/connections/{id}",
    "DELETE /api/v1/sessions",
    "DELETE /api/v1/sessions/current",
}

_LIMITS = ",".join(
    f"{name}=100000/min"
    for name in (
        "login_ip",
        "login_email",
        "register_ip",
        "reset_ip",
        "refresh_session",
        "read_user",
        "write_user",
        "sync_connection",
    )
)
#: Positive cases: no server error, the documented body, a documented status code.
POSITIVE_CHECKS = [not_a_server_error, response_schema_conformance, status_code_conformance]
#: Negative cases (invalid inputs): no server error and a conforming body when documented.
NEGATIVE_CHECKS = [not_a_server_error, response_schema_conformance]


def _verification_token(outbox: Path, to: str) -> str:
    for message in reversed(read_outbox(outbox)):
        if message["To"] == to and "Confirm" in message["Subject"]:
            link = re.search(r"token=([A-Za-z0-9_\-%]+)", message.get_content())
            assert link is not None
            return link.group(1)
    raise AssertionError(f"no confirmation mail to {to}")


class _Users:
    """Registers, verifies and logs in users through the public API."""

    def __init__(self, client: asgi.ASGIClient, outbox: Path) -> None:
        self.client = client
        self.outbox = outbox

    def register(self, email: str) -> None:
        r = self.client.post("/api/v1/users", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        token = _verification_token(self.outbox, email)
        r = self.client.post("/api/v1/email-verifications", json={"token": token})
        assert r.status_code == 200, r.text

    def bearer(self, email: str) -> dict[str, str]:
        r = self.client.post("/api/v1/sessions", json={"email": email, "password": PASSWORD})
        assert r.status_code == 201, r.text
        return {"Authorization": f"Bearer {r.json()['access_token']}"}


def _first_id(client: asgi.ASGIClient, path: str, headers: dict[str, str]) -> str:
    r = client.get(path, headers=headers)
    assert r.status_code == 200, r.text
    data = r.json()["data"]
    assert data, f"{path} is empty"
    return str(data[0]["id"])


@dataclass
class _Harness:
    """The running application, its operations and the two users."""

    client: asgi.ASGIClient
    users: _Users
    operations: list[Any]
    known_ids: dict[str, str]
    #: User B first, then user A (the owner of the data).
    emails: ClassVar[tuple[str, str]] = ("bob@example.com", "alice@example.com")

    def run_all(self, mode: GenerationMode, checks: list[Any]) -> list[str]:
        """Every operation as user B then user A, each with a fresh session; the failures."""
        failures: list[str] = []
        for operation in self.operations:
            for email in self.emails:
                headers = self.users.bearer(email)
                failures += _run_operation(operation, self, headers, mode, checks)
        return failures


def _run_operation(
    operation: Any,
    harness: _Harness,
    headers: dict[str, str],
    mode: GenerationMode,
    checks: list[Any],
) -> list[str]:
    """Run one operation; about half the cases use user A's real ``{id}`` where one is known."""
    failures: list[str] = []
    known = harness.known_ids.get(operation.path)

    @hypothesis.settings(
        max_examples=MAX_EXAMPLES,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
        database=None,
        derandomize=True,
    )
    @hypothesis.given(case=operation.as_strategy(generation_mode=mode), use_known=st.booleans())
    def run(case: Any, use_known: bool) -> None:
        if known is not None and use_known and "id" in (case.path_parameters or {}):
            case.path_parameters["id"] = known
        request = case.as_curl_command(headers=headers)
        try:
            response = case.call(session=harness.client, headers=headers)
        except Exception as exc:  # the application raised through the transport
            failures.append(f"{operation.label}: {type(exc).__name__}: {exc}\n  {request}")
            return
        try:
            case.validate_response(response, checks=checks, headers=headers)
        except (Failure, FailureGroup) as exc:
            failures.append(
                f"{operation.label}: {exc}\n  {request}\n"
                f"  status {response.status_code}: {response.text[:300]}"
            )

    try:
        run()
    except hypothesis.errors.Unsatisfiable:
        # Negative mode: an operation without any input has nothing to make invalid.
        assert mode is GenerationMode.NEGATIVE, operation.label
    return failures


@pytest.fixture
def harness(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[_Harness]:
    """The app in-process on SQLite; users A and B verified; a Chase statement for A."""
    for name in (
        "DASHTAM_ALPACA_PAPER_BASE_URL",
        "DASHTAM_ALPACA_LIVE_BASE_URL",
        "DASHTAM_SCHWAB_API_BASE_URL",
        "DASHTAM_SCHWAB_AUTH_BASE_URL",
    ):
        monkeypatch.setenv(name, NOWHERE)
    monkeypatch.setenv("DASHTAM_SCHWAB_CLIENT_ID", "schemathesis-client")
    monkeypatch.setenv("DASHTAM_SCHWAB_CLIENT_SECRET", "schemathesis-secret")
    settings = ApiSettings(
        _env_file=None,
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'dashtam.db'}",
        redis_url=None,
        sandbox=False,
        public_base_url="http://testserver",
        secret_dir=tmp_path / "keys",
        mail_outbox=tmp_path / "outbox",
        archive_dir=tmp_path / "archive",
        load_plugins="schwab,alpaca,chase",
        rate_limits=_LIMITS,
    )
    app = create_app(settings)
    app.state.security_options = {
        "hasher": Argon2idHasher(TEST_PARAMS, allow_weak_parameters=True),
        "login_delay_base": 0.0,
    }
    try:
        schema = schemathesis.openapi.from_asgi("/openapi.json", app)
        with asgi.get_client(cast(Any, app)) as client:
            users = _Users(client, settings.mail_outbox)
            bob, alice = _Harness.emails
            users.register(alice)
            users.register(bob)
            a_headers = users.bearer(alice)
            qfx = (CHASE_QFX / "checking.qfx").read_bytes()
            r = client.post(
                "/api/v1/imports",
                files={"file": ("checking.qfx", qfx, "application/octet-stream")},
                headers=a_headers,
            )
            assert r.status_code == 201, r.text
            assert r.json()["transactions_added"] == 25
            account = _first_id(client, "/api/v1/accounts", a_headers)
            # An OAuth connection stays pending (the browser step never happens here).
            r = client.post("/api/v1/connections", json={"provider": "schwab"}, headers=a_headers)
            assert r.status_code == 201, r.text
            connection = str(r.json()["connection"]["id"])
            known_ids = {
                "/api/v1/accounts/{id}": account,
                "/api/v1/accounts/{id}/balance-history": account,
                "/api/v1/transactions/{id}": _first_id(client, "/api/v1/transactions", a_headers),
                "/api/v1/sessions/{id}": _first_id(client, "/api/v1/sessions", a_headers),
                "/api/v1/connections/{id}": connection,
                "/api/v1/connections/{id}/reauthorizations": connection,
                "/api/v1/connections/{id}/syncs": connection,
            }
            operations = []
            for result in schema.get_all_operations():
                assert isinstance(result, Ok), result  # the document itself is valid
                if result.ok().label not in EXCLUDED:
                    operations.append(result.ok())
            assert len(operations) >= 30, [op.label for op in operations]
            operations.sort(key=lambda operation: operation.label in RUN_LAST)
            yield _Harness(client, users, operations, known_ids)
    finally:
        asgi.shutdown_lifespans()


def test_whole_openapi_two_users_positive(harness: _Harness) -> None:
    failures = harness.run_all(GenerationMode.POSITIVE, POSITIVE_CHECKS)
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(failures)


def test_whole_openapi_two_users_negative(harness: _Harness) -> None:
    failures = harness.run_all(GenerationMode.NEGATIVE, NEGATIVE_CHECKS)
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(failures)


def test_whole_openapi_negative_status_codes_documented(harness: _Harness) -> None:
    """Invalid input only ever gets a documented status (unparseable bodies are 422)."""
    failures = harness.run_all(GenerationMode.NEGATIVE, [status_code_conformance])
    assert not failures, f"{len(failures)} failure(s):\n" + "\n".join(failures)
