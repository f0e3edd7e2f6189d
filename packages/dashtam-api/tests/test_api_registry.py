"""The route registry is the single source of truth for every route (self-enforcing)."""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.routing import APIRoute
from starlette.routing import Mount, Route

from dashtam_api.main import DOCUMENTATION_PATHS, create_app
from dashtam_api.problems import PROBLEM_MEDIA_TYPE, error_catalog
from dashtam_api.registry import RATE_LIMIT_RULES, RouteRegistry, RouteSpec, RouteSpecError
from dashtam_api.routes import build_route_registry
from dashtam_api.settings import ApiSettings
from dashtam_core.plugins.manager import LoadedPlugins, build_plugin_manager


async def _handler() -> dict[str, str]:
    return {}


async def _thing(thing_id: str) -> dict[str, str]:
    return {"id": thing_id}


def _app(tmp_path: Any, plugins: LoadedPlugins, *, sandbox: bool = False) -> Any:
    settings = ApiSettings(
        database_url=f"sqlite+aiosqlite:///{tmp_path / 'r.db'}", redis_url=None, sandbox=sandbox
    )
    return create_app(settings, plugins=plugins)


@pytest.mark.parametrize("sandbox", [False, True])
def test_every_mounted_route_has_a_spec(
    tmp_path: Any, test_plugins: LoadedPlugins, sandbox: bool
) -> None:
    app = _app(tmp_path, test_plugins, sandbox=sandbox)
    registry: RouteRegistry = app.route_registry
    seen: set[str] = set()
    for route in app.routes:
        if isinstance(route, Mount):
            assert sandbox, f"unexpected mount {route.path}"
            assert route.path.startswith("/sandbox/")
            continue
        assert isinstance(route, Route | APIRoute)
        if route.path in DOCUMENTATION_PATHS:
            continue
        assert isinstance(route, APIRoute), f"{route.path} is not from the registry"
        for method in route.methods or ():
            if method == "HEAD":
                continue
            spec = registry.find(method, route.path)
            assert spec is not None, f"{method} {route.path} has no RouteSpec"
            assert spec.handler is route.endpoint
            seen.add(spec.name)
    assert seen == {spec.name for spec in registry}


def test_every_spec_has_auth_and_rate_limit() -> None:
    registry = build_route_registry()
    assert len(registry) >= 3
    for spec in registry:
        assert spec.auth in {"public", "user", "admin", "auditor", "browser"}
        assert spec.rate_limit in RATE_LIMIT_RULES
        if spec.rate_limit == "none":
            assert spec.rate_limit_exempt
            assert len(spec.rate_limit_exempt) > 10
            assert spec.auth in {"public", "browser"}, "only unauthenticated routes go unlimited"
        if spec.auth in {"user", "admin", "auditor"}:
            assert spec.policy is not None


def test_openapi_documents_every_error_code(tmp_path: Any, test_plugins: LoadedPlugins) -> None:
    app = _app(tmp_path, test_plugins)
    document = app.openapi()
    catalog = error_catalog()
    for spec in app.route_registry:
        operation = document["paths"][spec.path][spec.method.lower()]
        assert operation["operationId"] == spec.name
        assert operation["x-auth"] == spec.auth
        assert operation["x-rate-limit"] == spec.rate_limit
        assert str(spec.status_code) in operation["responses"]
        for entry in spec.documented_errors:
            code, _, fixed = entry.partition(":")
            statuses = [int(fixed)] if fixed else sorted(catalog[code])
            for status in statuses:
                response = operation["responses"][str(status)]
                content = response["content"]
                assert list(content) == [PROBLEM_MEDIA_TYPE], (spec.name, status)
                assert code in content[PROBLEM_MEDIA_TYPE]["examples"], (spec.name, code)
                assert content[PROBLEM_MEDIA_TYPE]["schema"] == {
                    "$ref": "#/components/schemas/ProblemDetails"
                }
    assert "HTTPValidationError" not in document["components"]["schemas"]


def test_spec_validation_rejects_inconsistent_routes() -> None:
    base: dict[str, Any] = {
        "name": "x.y",
        "method": "GET",
        "path": "/x",
        "handler": _handler,
        "auth": "public",
    }
    RouteSpec(**base, rate_limit="read_user")
    with pytest.raises(RouteSpecError, match="justification"):
        RouteSpec(**base, rate_limit="none")
    with pytest.raises(RouteSpecError, match="unknown rate-limit rule"):
        RouteSpec(**base, rate_limit="fast")
    with pytest.raises(RouteSpecError, match="undocumented error code"):
        RouteSpec(**base, rate_limit="read_user", errors=("no_such_code",))
    with pytest.raises(RouteSpecError, match="Casbin"):
        RouteSpec(**{**base, "auth": "user"}, rate_limit="read_user")
    with pytest.raises(RouteSpecError, match="unknown auth policy"):
        RouteSpec(**{**base, "auth": "anyone"}, rate_limit="read_user")
    with pytest.raises(RouteSpecError, match="path"):
        RouteSpec(**{**base, "path": "x"}, rate_limit="read_user")


def test_registry_rejects_duplicates() -> None:
    registry = RouteRegistry()
    spec = RouteSpec(
        name="a.b",
        method="GET",
        path="/a",
        handler=_handler,
        auth="public",
        rate_limit="read_user",
    )
    registry.add(spec)
    with pytest.raises(RouteSpecError, match="duplicate route name"):
        registry.add(spec)
    with pytest.raises(RouteSpecError, match="GET /a"):
        registry.add(
            RouteSpec(
                name="a.c",
                method="GET",
                path="/a",
                handler=_handler,
                auth="public",
                rate_limit="read_user",
            )
        )


def test_user_route_carries_policy_in_openapi(tmp_path: Any) -> None:
    spec = RouteSpec(
        name="things.read",
        method="GET",
        path="/api/v1/things/{thing_id}",
        handler=_thing,
        auth="user",
        policy=("things", "read"),
        rate_limit="read_user",
        errors=("not_found",),
    )
    app = create_app(
        ApiSettings(database_url=f"sqlite+aiosqlite:///{tmp_path / 'p.db'}", redis_url=None),
        plugins=build_plugin_manager(load_only=[]),
        extra_routes=[spec],
    )
    operation = app.openapi()["paths"]["/api/v1/things/{thing_id}"]["get"]
    assert operation["x-policy"] == ["things", "read"]
    assert {"404", "422", "429", "500"} <= set(operation["responses"])
    examples = operation["responses"]["422"]["content"][PROBLEM_MEDIA_TYPE]["examples"]
    assert list(examples) == ["validation_error"]
