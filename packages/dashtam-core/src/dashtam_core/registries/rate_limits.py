"""The rate-limit rule registry: every named rule, its default quota, scope and kind.

Routes name a rule (``login_ip``, ``read_user``, ...; ``none`` for unlimited routes). Quotas can be
overridden by a settings string such as ``"login_ip=20/min,read_user=1000/min"``
(:func:`parse_overrides`, :func:`build_rules`).
"""

from __future__ import annotations

import hashlib
import math
import re
from collections.abc import Mapping
from types import MappingProxyType

from dashtam_core.ports.rate_limit import Decision, RateLimitKind, RateLimitRule, RateLimitScope

_S, _C = RateLimitKind.SECURITY, RateLimitKind.CAPACITY
_PERIODS = {
    "s": 1.0,
    "sec": 1.0,
    "second": 1.0,
    "m": 60.0,
    "min": 60.0,
    "minute": 60.0,
    "h": 3600.0,
    "hour": 3600.0,
    "d": 86400.0,
    "day": 86400.0,
}
_RATE = re.compile(r"^\s*(\d+)\s*/\s*(\d*)\s*([a-z]+)\s*$")

#: The default rules (api.md "Default rate-limit rules").
DEFAULT_RULES: Mapping[str, RateLimitRule] = MappingProxyType(
    {
        rule.name: rule
        for rule in (
            RateLimitRule("login_ip", 10, 60.0, RateLimitScope.IP, _S),
            RateLimitRule("login_email", 5, 60.0, RateLimitScope.EMAIL, _S),
            RateLimitRule("register_ip", 5, 60.0, RateLimitScope.IP, _S),
            RateLimitRule("reset_ip", 5, 60.0, RateLimitScope.IP, _S),
            RateLimitRule("refresh_session", 30, 60.0, RateLimitScope.SESSION, _S),
            RateLimitRule("read_user", 300, 60.0, RateLimitScope.USER, _C),
            RateLimitRule("write_user", 60, 60.0, RateLimitScope.USER, _C),
            RateLimitRule("sync_connection", 10, 3600.0, RateLimitScope.CONNECTION, _C),
            RateLimitRule("none", 0, 60.0, RateLimitScope.NONE, _C),
        )
    }
)


def parse_rate(text: str) -> tuple[int, float]:
    """Parse ``"10/min"``, ``"5/30s"``, ``"100/hour"`` into ``(limit, period_seconds)``.

    Raises:
        ValueError: the text is not a rate.
    """
    match = _RATE.match(text.lower())
    if not match or match.group(3) not in _PERIODS:
        raise ValueError(f"not a rate: {text!r} (expected e.g. '10/min')")
    multiplier = int(match.group(2)) if match.group(2) else 1
    if multiplier <= 0:
        raise ValueError(f"not a rate: {text!r}")
    return int(match.group(1)), multiplier * _PERIODS[match.group(3)]


def parse_overrides(text: str | None) -> dict[str, str]:
    """Parse ``"login_ip=20/min, read_user=1000/min"`` into a mapping."""
    result: dict[str, str] = {}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, sep, rate = item.partition("=")
        if not sep:
            raise ValueError(f"rate-limit override needs name=rate: {item!r}")
        result[name.strip()] = rate.strip()
    return result


def build_rules(overrides: Mapping[str, str] | None = None) -> dict[str, RateLimitRule]:
    """The default rules with quota overrides applied.

    Raises:
        ValueError: an override names an unknown rule or is not a rate.
    """
    rules = dict(DEFAULT_RULES)
    for name, rate in (overrides or {}).items():
        if name not in rules or name == "none":
            raise ValueError(f"unknown rate-limit rule {name!r}")
        limit, period = parse_rate(rate)
        old = rules[name]
        rules[name] = RateLimitRule(name, limit, period, old.scope, old.kind)
    return rules


def get_rule(name: str, rules: Mapping[str, RateLimitRule] | None = None) -> RateLimitRule:
    """Return the rule called ``name``.

    Raises:
        KeyError: no such rule.
    """
    return (rules or DEFAULT_RULES)[name]


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode()).hexdigest()[:32]


def rate_limit_key(
    rule: RateLimitRule,
    *,
    ip: str | None = None,
    user_id: object = None,
    provider: str | None = None,
    session_id: object = None,
    email: str | None = None,
    connection_id: object = None,
) -> str:
    """Build the limiter key for ``rule`` from the request's values.

    Emails are lower-cased and hashed so that no address is stored in the limiter.

    Raises:
        ValueError: a value the rule's scope needs is missing.
    """
    parts: dict[RateLimitScope, object] = {
        RateLimitScope.IP: ip,
        RateLimitScope.USER: user_id,
        RateLimitScope.SESSION: session_id,
        RateLimitScope.CONNECTION: connection_id,
        RateLimitScope.EMAIL: _digest(email.strip().casefold()) if email else None,
    }
    scope = rule.scope
    if scope is RateLimitScope.NONE:
        return rule.name
    if scope is RateLimitScope.USER_PROVIDER:
        if user_id is None or not provider:
            raise ValueError(f"rule {rule.name} needs user_id and provider")
        return f"{rule.name}:{user_id}:{provider}"
    value = parts[scope]
    if value is None or value == "":
        raise ValueError(f"rule {rule.name} needs {scope.value}")
    return f"{rule.name}:{value}"


def retry_after_seconds(decision: Decision) -> int:
    """The ``Retry-After`` value: whole seconds, rounded up, at least 1."""
    return max(1, math.ceil(decision.retry_after))


def rate_limit_headers(rule: RateLimitRule, decision: Decision) -> dict[str, str]:
    """Response headers per the IETF RateLimit draft, plus ``Retry-After`` when refused.

    ``RateLimit-Policy: "login_ip";q=10;w=60`` states the quota and window;
    ``RateLimit: "login_ip";r=3;t=45`` the remaining hits and seconds until the quota is full.
    The ``none`` rule yields no headers.
    """
    if rule.unlimited:
        return {}
    headers = {
        "RateLimit-Policy": f'"{rule.name}";q={rule.limit};w={math.ceil(rule.period_seconds)}',
        "RateLimit": (
            f'"{rule.name}";r={max(0, decision.remaining)};t={math.ceil(decision.reset_after)}'
        ),
    }
    if not decision.allowed:
        headers["Retry-After"] = str(retry_after_seconds(decision))
    return headers


__all__ = [
    "DEFAULT_RULES",
    "build_rules",
    "get_rule",
    "parse_overrides",
    "parse_rate",
    "rate_limit_headers",
    "rate_limit_key",
    "retry_after_seconds",
]
