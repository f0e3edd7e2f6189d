"""``ProviderUnitTests``: offline conformance tests every provider plugin must pass.

Usage (the whole test module of a provider)::

    from dashtam_core.testing import ProviderUnitTests

    class TestAcmeUnit(ProviderUnitTests):
        plugin_module = "dashtam_provider_acme.plugin"

Nothing here talks to the network: HTTP is answered by ``httpx.MockTransport``.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import ClassVar

import httpx
import pytest
from pydantic_settings import BaseSettings

from dashtam_core.domain.connection import AuthType
from dashtam_core.domain.holding import CostBasisUnit
from dashtam_core.errors import (
    AuthExpired,
    InvalidCredentials,
    ProviderError,
    ProviderProtocolError,
    ProviderUnavailable,
    RateLimited,
)
from dashtam_core.plugins.manager import build_plugin_manager
from dashtam_core.ports.provider import CAPABILITY_METHODS, Capability
from dashtam_core.result import Err
from dashtam_core.testing.support import (
    Handler,
    KitBase,
    canary,
    capture_all_logs,
    declared_entry_points,
    fetch_methods,
    is_async,
    required_methods,
)

SLUG = re.compile(r"^[a-z][a-z0-9_]*$")
RETRY_AFTER = 17


def _status(status: int, headers: dict[str, str] | None = None) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(status, headers=headers, json={"message": "kit says no"})

    return handler


def _raise(exc_type: type[httpx.TransportError]) -> Handler:
    def handler(request: httpx.Request) -> httpx.Response:
        raise exc_type("kit-injected failure", request=request)

    return handler


def _invalid_json(request: httpx.Request) -> httpx.Response:
    return httpx.Response(
        200,
        content=b'{"accounts": [ this is not json',
        headers={"Content-Type": "application/json"},
    )


class ProviderUnitTests(KitBase):
    """Offline checks: the spec, entry point, capabilities, secrets and HTTP error mapping.

    Set ``plugin_module``; override :meth:`make_settings` / :meth:`make_credentials` when the
    defaults (``settings_model()``, canary values in each credential field) do not fit.
    """

    __dashtam_kit_base__: ClassVar[bool] = True

    # -- the spec and its registration -------------------------------------------------

    def test_spec_is_valid(self) -> None:
        """Slug, name, auth type, capabilities, settings and per-auth-type fields."""
        spec = self.spec
        assert SLUG.match(spec.slug), f"slug {spec.slug!r} must match {SLUG.pattern}"
        assert spec.name.strip(), "the display name is empty"
        assert isinstance(spec.auth_type, AuthType)
        assert spec.capabilities, "a provider declares at least one capability"
        assert all(isinstance(c, Capability) for c in spec.capabilities)
        assert isinstance(spec.settings_model, type)
        assert issubclass(spec.settings_model, BaseSettings)
        prefix = str(spec.settings_model.model_config.get("env_prefix", ""))
        expected = f"DASHTAM_{spec.slug.upper()}_"
        assert prefix.upper() == expected, f"settings env_prefix is {prefix!r}, not {expected!r}"
        assert callable(spec.factory)
        assert spec.dedupe_rule.strip(), "dedupe_rule documents the transaction natural key"
        if spec.auth_type is AuthType.API_KEY:
            names = [f.name for f in spec.credential_fields]
            assert names, "api_key providers list their credential_fields"
            assert len(set(names)) == len(names), "credential field names repeat"
        if spec.auth_type is AuthType.FILE_IMPORT:
            assert spec.extensions, "file_import providers list the file extensions they read"
        if Capability.HOLDINGS in spec.capabilities:
            assert isinstance(spec.cost_basis_unit, CostBasisUnit), (
                "providers with holdings declare cost_basis_unit"
            )
        if spec.sandbox is not None:
            assert callable(spec.sandbox)

    def test_slug_matches_entry_point(self, request: pytest.FixtureRequest) -> None:
        """The entry-point name in group ``dashtam`` is the spec's slug."""
        module = self.module.__name__
        declared = declared_entry_points(module, Path(str(request.path)).parent)
        assert declared, (
            f"no [project.entry-points.dashtam] entry points to {module!r} "
            "(neither installed nor in a pyproject.toml above the tests)"
        )
        assert self.spec.slug in declared, (
            f"slug {self.spec.slug!r} is not the entry-point name ({sorted(declared)})"
        )

    def test_registers_through_pluggy(self) -> None:
        """The module's hook registers the spec in a real plugin manager."""
        loaded = build_plugin_manager(load_only=[], extra_plugins=[(self.spec.slug, self.module)])
        assert self.spec.slug in loaded.providers
        assert loaded.providers.get(self.spec.slug).spec == self.spec

    def test_capabilities_match_methods(self) -> None:
        """Declared capabilities have their methods, and no fetch method is undeclared."""
        spec = self.spec
        provider, _ = self.build_provider(_status(500))
        missing = sorted(
            m for m in required_methods(spec) if not callable(getattr(provider, m, None))
        )
        assert not missing, f"{type(provider).__name__} lacks {missing} required by the spec"
        for name in required_methods(spec) - {"authorization_request", "sniff", "parse_statement"}:
            assert is_async(provider, name), f"{name} must be `async def`"
        if spec.auth_type is not AuthType.FILE_IMPORT:
            declared = {CAPABILITY_METHODS[c] for c in spec.capabilities}
            extra = [m for m in fetch_methods(provider) if m not in declared]
            assert not extra, f"{extra} implemented but no capability declares them"

    # -- secrets ----------------------------------------------------------------------

    async def test_secrets_never_leak(self, caplog: pytest.LogCaptureFixture) -> None:
        """Canary credentials never show in reprs, logs, structlog events or errors."""
        secret = canary()
        credentials = self.make_credentials(secret)
        assert secret not in repr(credentials)
        assert secret not in str(credentials)
        handlers: list[Handler] = [
            _status(200),
            _status(401),
            _status(429, {"Retry-After": "1"}),
            _status(500),
            _invalid_json,
            _raise(httpx.ReadTimeout),
        ]
        seen: list[str] = []
        with capture_all_logs(caplog) as lines:
            for handler in handlers:
                provider, client = self.build_provider(handler)
                seen.append(repr(provider))
                async with client:
                    for name, result in (await self.call_all(provider, credentials)).items():
                        seen.append(f"{name}: {result!r}")
                        if isinstance(result, Err):
                            seen.append(str(result.error))
                            seen.extend(repr(e) for e in result.error.errors)
        seen.extend(lines)
        leaks = [line for line in seen if secret in line]
        assert not leaks, f"credential values leaked: {leaks[:3]}"

    # -- HTTP error mapping -----------------------------------------------------------

    async def _expect(self, handler: Handler, *expected: type[ProviderError]) -> list[object]:
        provider, client = self.build_provider(handler)
        if not fetch_methods(provider):
            pytest.skip("the provider makes no HTTP calls (no fetch methods)")
        errors: list[object] = []
        async with client:
            results = await self.call_all(provider, self.make_credentials(canary()))
        for name, result in results.items():
            assert isinstance(result, Err), f"{name} returned {result!r}, expected an Err"
            assert isinstance(result.error, expected), (
                f"{name} returned {type(result.error).__name__}: {result.error}; "
                f"expected {' or '.join(e.__name__ for e in expected)}"
            )
            errors.append(result.error)
        return errors

    async def test_http_401_is_an_auth_error(self) -> None:
        """401 → ``AuthExpired`` (stored tokens) or ``InvalidCredentials``."""
        await self._expect(_status(401), AuthExpired, InvalidCredentials)

    async def test_http_403_is_an_auth_error(self) -> None:
        """403 → ``InvalidCredentials`` (or ``AuthExpired``)."""
        await self._expect(_status(403), InvalidCredentials, AuthExpired)

    async def test_http_429_is_rate_limited_with_retry_after(self) -> None:
        """429 with ``Retry-After`` → ``RateLimited(retry_after=...)``."""
        headers = {"Retry-After": str(RETRY_AFTER)}
        for error in await self._expect(_status(429, headers), RateLimited):
            assert isinstance(error, RateLimited)
            assert error.retry_after is not None
            assert abs(error.retry_after - RETRY_AFTER) < 2, error.retry_after

    @pytest.mark.parametrize("status", [500, 502, 503])
    async def test_http_5xx_is_unavailable(self, status: int) -> None:
        """5xx → ``ProviderUnavailable``."""
        await self._expect(_status(status), ProviderUnavailable)

    @pytest.mark.parametrize(
        "failure", [httpx.ReadTimeout, httpx.ConnectTimeout, httpx.ConnectError]
    )
    async def test_timeout_is_unavailable(self, failure: type[httpx.TransportError]) -> None:
        """Timeouts and refused connections → ``ProviderUnavailable``."""
        await self._expect(_raise(failure), ProviderUnavailable)

    async def test_invalid_json_is_a_protocol_error(self) -> None:
        """A 200 with a broken JSON body → ``ProviderProtocolError``."""
        await self._expect(_invalid_json, ProviderProtocolError)

    # -- auth flows -------------------------------------------------------------------

    async def test_api_key_refusal_is_invalid_credentials(self) -> None:
        """``validate_credentials`` answers 401 with ``InvalidCredentials``."""
        if self.spec.auth_type is not AuthType.API_KEY:
            pytest.skip(f"auth type is {self.spec.auth_type.value}, not api_key")
        provider, client = self.build_provider(_status(401))
        async with client:
            result = await provider.validate_credentials(  # type: ignore[attr-defined]
                self.make_credentials(canary())
            )
        assert isinstance(result, Err), result
        assert isinstance(result.error, InvalidCredentials), result.error

    def test_oauth2_authorization_request_uses_state_and_pkce(self) -> None:
        """The authorization URL carries ``state`` and an S256 PKCE challenge."""
        if self.spec.auth_type is not AuthType.OAUTH2:
            pytest.skip(f"auth type is {self.spec.auth_type.value}, not oauth2")
        provider, _ = self.build_provider(_status(500))
        state = canary()
        first = provider.authorization_request(state)  # type: ignore[attr-defined]
        second = provider.authorization_request(state)  # type: ignore[attr-defined]
        params = httpx.URL(first.url).params
        assert first.state == state
        assert params.get("state") == state
        assert params.get("code_challenge_method") == "S256"
        assert params.get("code_challenge"), "no PKCE code_challenge"
        assert first.code_verifier not in first.url, "the verifier must not travel in the URL"
        assert 43 <= len(first.code_verifier) <= 128
        assert first.code_verifier != second.code_verifier, "PKCE verifiers must be fresh"

    async def test_oauth2_token_errors_are_typed(self) -> None:
        """Token endpoint failures are ``Err`` values, never exceptions."""
        if self.spec.auth_type is not AuthType.OAUTH2:
            pytest.skip(f"auth type is {self.spec.auth_type.value}, not oauth2")
        for handler, expected in [
            (_status(503), (ProviderUnavailable,)),
            (_raise(httpx.ReadTimeout), (ProviderUnavailable,)),
            (_status(400), (ProviderError,)),
        ]:
            provider, client = self.build_provider(handler)
            async with client:
                exchanged = await provider.exchange_code(  # type: ignore[attr-defined]
                    "kit-code", "v" * 43
                )
                refreshed = await provider.refresh(  # type: ignore[attr-defined]
                    self.make_credentials(canary())
                )
            for result in (exchanged, refreshed):
                assert isinstance(result, Err), result
                assert isinstance(result.error, expected), result.error


__all__ = ["ProviderUnitTests"]
