"""The route registry: the single source of truth for every HTTP route of the service.

Each route is a :class:`RouteSpec` (method, path, handler, auth policy, Casbin object/action,
rate-limit rule, response model, status code, documented error codes). The application mounts
routes only from a :class:`RouteRegistry`, and a self-enforcing test checks that every mounted
route has a spec, every spec has an auth policy and a rate-limit rule (or an explicit
justification for having none) and that OpenAPI documents every declared error code.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

from fastapi import APIRouter
from fastapi.dependencies.utils import get_flat_params
from fastapi.routing import APIRoute
from starlette.responses import Response

from dashtam_api.problems import error_catalog, openapi_error_responses
from dashtam_core.registries.rate_limits import DEFAULT_RULES

AuthPolicy = Literal["public", "user", "admin", "auditor", "browser"]
HttpMethod = Literal["GET", "POST", "PUT", "PATCH", "DELETE"]

AUTH_POLICIES: frozenset[str] = frozenset(get_args(AuthPolicy))
HTTP_METHODS: frozenset[str] = frozenset(get_args(HttpMethod))

#: Rule names a route may use: the core rate-limit registry's (``none`` = unlimited).
RATE_LIMIT_RULES: frozenset[str] = frozenset(DEFAULT_RULES)
#: Auth policies that need a Casbin (object, action) pair.
_AUTHORIZED = frozenset({"user", "admin", "auditor"})
_NAME = re.compile(r"[a-z][a-z0-9_.]*")


class RouteSpecError(ValueError):
    """A route specification is inconsistent."""


@dataclass(frozen=True, slots=True)
class RouteSpec:
    """One HTTP route and everything the service needs to know about it.

    Attributes:
        name: unique operation name (``providers.list``); also the OpenAPI ``operationId``.
        method: HTTP method.
        path: path template (``/api/v1/accounts/{id}``).
        handler: the endpoint function (FastAPI dependencies allowed).
        auth: who may call it: ``public``, ``user``, ``admin``, ``auditor`` or ``browser``
            (cookie/state-bound browser redirect such as the OAuth callback).
        rate_limit: name of a rule in :data:`RATE_LIMIT_RULES`; ``"none"`` needs
            ``rate_limit_exempt``.
        rate_limit_exempt: why the route has no rate limit (liveness probes).
        policy: Casbin ``(object, action)`` checked for ``user``/``admin``/``auditor`` routes.
        response_model: model of the success body (``None`` for no body).
        status_code: success status.
        errors: documented error codes (``code`` or ``code:status``).
        summary: OpenAPI summary (default: the handler docstring's first line).
        tags: OpenAPI tags.
        response_class: the response class (default JSON).
        include_in_schema: list it in OpenAPI.
    """

    name: str
    method: HttpMethod
    path: str
    handler: Callable[..., Any]
    auth: AuthPolicy
    rate_limit: str
    rate_limit_exempt: str | None = None
    policy: tuple[str, str] | None = None
    response_model: Any = None
    status_code: int = 200
    errors: tuple[str, ...] = ()
    summary: str | None = None
    tags: tuple[str, ...] = ()
    response_class: type[Response] | None = None
    include_in_schema: bool = True

    def __post_init__(self) -> None:
        problems = list(self._problems())
        if problems:
            raise RouteSpecError(f"route {self.name!r}: " + "; ".join(problems))

    def _problems(self) -> Iterator[str]:
        if not _NAME.fullmatch(self.name):
            yield "name must be lowercase dotted words"
        if self.method not in HTTP_METHODS:
            yield f"unsupported method {self.method!r}"
        if not self.path.startswith("/"):
            yield "path must start with '/'"
        if self.auth not in AUTH_POLICIES:
            yield f"unknown auth policy {self.auth!r}"
        if self.rate_limit not in RATE_LIMIT_RULES:
            yield f"unknown rate-limit rule {self.rate_limit!r}"
        if self.rate_limit == "none" and not (self.rate_limit_exempt or "").strip():
            yield "rate_limit 'none' needs a rate_limit_exempt justification"
        if self.rate_limit != "none" and self.rate_limit_exempt:
            yield "rate_limit_exempt is only for rate_limit 'none'"
        if self.auth in _AUTHORIZED and self.policy is None:
            yield f"auth {self.auth!r} needs a Casbin (object, action) policy"
        if not 100 <= self.status_code <= 599:
            yield f"bad status code {self.status_code}"
        catalog = error_catalog()
        for entry in self.errors:
            code = entry.partition(":")[0]
            if code not in catalog:
                yield f"undocumented error code {code!r}"

    @property
    def documented_errors(self) -> tuple[str, ...]:
        """Declared errors plus those every route of its kind can answer."""
        implied = ["internal_error"]
        if self.rate_limit != "none":
            implied.append("rate_limited:429")
        return tuple(dict.fromkeys((*self.errors, *implied)))


@dataclass
class RouteRegistry:
    """An ordered set of :class:`RouteSpec`, unique by name and by (method, path)."""

    _specs: dict[str, RouteSpec] = field(default_factory=dict)

    def add(self, spec: RouteSpec) -> RouteSpec:
        """Add ``spec``; a duplicate name or (method, path) raises :class:`RouteSpecError`."""
        if spec.name in self._specs:
            raise RouteSpecError(f"duplicate route name {spec.name!r}")
        for other in self._specs.values():
            if (other.method, other.path) == (spec.method, spec.path):
                raise RouteSpecError(
                    f"{spec.method} {spec.path} declared by {other.name!r} and {spec.name!r}"
                )
        self._specs[spec.name] = spec
        return spec

    def extend(self, specs: Iterable[RouteSpec]) -> None:
        """Add several specs."""
        for spec in specs:
            self.add(spec)

    def get(self, name: str) -> RouteSpec:
        """The spec named ``name`` (``KeyError`` if absent)."""
        return self._specs[name]

    def find(self, method: str, path: str) -> RouteSpec | None:
        """The spec for ``method`` and path template ``path``, if any."""
        for spec in self._specs.values():
            if spec.method == method and spec.path == path:
                return spec
        return None

    def __iter__(self) -> Iterator[RouteSpec]:
        return iter(self._specs.values())

    def __len__(self) -> int:
        return len(self._specs)

    def mount(self, router: APIRouter) -> list[APIRoute]:
        """Add one route per spec to ``router`` (e.g. ``app.router``), documented from the spec.

        Returns:
            The routes added, in registry order.
        """
        added: list[APIRoute] = []
        for spec in self._specs.values():
            kwargs: dict[str, Any] = {}
            if spec.response_class is not None:
                kwargs["response_class"] = spec.response_class
            router.add_api_route(
                spec.path,
                spec.handler,
                methods=[spec.method],
                name=spec.name,
                operation_id=spec.name,
                response_model=spec.response_model,
                status_code=spec.status_code,
                summary=spec.summary,
                tags=list(spec.tags),
                include_in_schema=spec.include_in_schema,
                responses=openapi_error_responses(spec.documented_errors),
                openapi_extra={
                    "x-auth": spec.auth,
                    "x-rate-limit": spec.rate_limit,
                    **({"x-policy": list(spec.policy)} if spec.policy else {}),
                },
                **kwargs,
            )
            route = router.routes[-1]
            assert isinstance(route, APIRoute)
            if _has_inputs(route):
                route.responses = {
                    **openapi_error_responses(("validation_error:422",)),
                    **route.responses,
                }
            added.append(route)
        return added


def _has_inputs(route: APIRoute) -> bool:
    return bool(get_flat_params(route.dependant)) or route.body_field is not None


__all__ = [
    "AUTH_POLICIES",
    "HTTP_METHODS",
    "RATE_LIMIT_RULES",
    "AuthPolicy",
    "HttpMethod",
    "RouteRegistry",
    "RouteSpec",
    "RouteSpecError",
]
