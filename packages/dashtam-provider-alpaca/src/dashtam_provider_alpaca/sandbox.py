"""A simulator of the Alpaca Trading API v2, faithful to its wire format.

Serves ``GET /v2/account``, ``GET /v2/positions``, ``GET /v2/positions/{symbol_or_asset_id}``,
``GET /v2/account/activities`` and ``GET /v2/account/activities/{activity_type}`` with the real
query parameters (``activity_types``, ``category``, ``date``, ``after``, ``until``,
``direction``, ``page_size``, ``page_token``), decimals as strings, bare JSON arrays and
``page_token`` = id pagination. Every ``/v2`` call needs the sandbox key pair in the
``APCA-API-KEY-ID`` / ``APCA-API-SECRET-KEY`` headers, else 401 with Alpaca's error body.

Faults on demand: ``POST /_sandbox/faults`` with ``{"status": 429, "retry_after": 1,
"count": 1}`` (optional ``"path": "/v2/positions"`` prefix, ``"malformed": true`` for a 200 with
a truncated JSON body, ``"delay": 2`` to answer late, e.g. ``{"status": 200, "delay": 2}``);
``GET`` lists and ``DELETE`` clears the queue.
"""

from __future__ import annotations

import asyncio
import hmac
import json
import math
import os
import time
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from datetime import time as dtime
from typing import Any

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from dashtam_provider_alpaca.activity_types import ACTIVITY_KINDS
from dashtam_provider_alpaca.client import KEY_ID_HEADER, SECRET_HEADER
from dashtam_provider_alpaca.mapping import NEW_YORK, WireFormatError, parse_timestamp
from dashtam_provider_alpaca.sandbox_data import Activity, SandboxData, build_sandbox_data

#: The sandbox's paper key pair (public test values, not secrets).
SANDBOX_API_KEY_ID = "PKSANDBOX0DASHTAM000"
SANDBOX_SECRET_KEY = "sandbox-secret-0000000000000000000000000000"

_GROUPS = {"TRANS": {"CSD", "CSW"}, "FILL": {"FILL"}}
_SLACK = timedelta(hours=2)  # ids sort by New York local time; allow for the DST fold


@dataclass(frozen=True, slots=True)
class SandboxConfig:
    """How the sandbox behaves.

    Attributes:
        api_key_id: the accepted key id.
        secret_key: the accepted secret key.
        extra_activities: synthetic activities added to the 11 fixture ones (benchmarks).
        max_page_size: the largest ``page_size`` accepted without ``date`` (Alpaca: 100).
        seed: seed of the synthetic activities.
    """

    api_key_id: str = field(default=SANDBOX_API_KEY_ID, repr=False)
    secret_key: str = field(default=SANDBOX_SECRET_KEY, repr=False)
    extra_activities: int = 0
    max_page_size: int = 100
    seed: int = 20250430

    @classmethod
    def from_env(cls, environ: Mapping[str, str] | None = None) -> SandboxConfig:
        """Defaults, with ``DASHTAM_ALPACA_SANDBOX_EXTRA_ACTIVITIES`` and
        ``DASHTAM_ALPACA_SANDBOX_MAX_PAGE_SIZE`` applied when set (e.g. for ``serve --sandbox``).
        """
        env = os.environ if environ is None else environ
        extra = env.get("DASHTAM_ALPACA_SANDBOX_EXTRA_ACTIVITIES", "").strip()
        page = env.get("DASHTAM_ALPACA_SANDBOX_MAX_PAGE_SIZE", "").strip()
        return cls(
            extra_activities=max(0, int(extra)) if extra else 0,
            max_page_size=max(1, int(page)) if page else 100,
        )


@dataclass(slots=True)
class Fault:
    """A queued fault: the next ``count`` matching ``/v2`` calls fail this way."""

    status: int
    count: int = 1
    retry_after: float | None = None
    path: str | None = None
    malformed: bool = False
    delay: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        """JSON form for ``GET /_sandbox/faults``."""
        return {
            "status": self.status,
            "count": self.count,
            "retry_after": self.retry_after,
            "path": self.path,
            "malformed": self.malformed,
            "delay": self.delay,
        }


def _json(body: Any, status: int = 200, headers: dict[str, str] | None = None) -> Response:
    content = body if isinstance(body, bytes) else json.dumps(body).encode()
    return Response(content, status_code=status, headers=headers, media_type="application/json")


def _error(status: int, code: int | None, message: str) -> Response:
    body: dict[str, Any] = (
        {"message": message} if code is None else {"code": code, "message": message}
    )
    return _json(body, status)


def _unprocessable(message: str, code: int = 42210000) -> Response:
    return _error(422, code, message)


def _parse_bound(value: str) -> datetime:
    """A date (New York midnight) or an RFC 3339 timestamp."""
    if len(value) == 10:
        day = date.fromisoformat(value)
        return datetime.combine(day, dtime(), NEW_YORK).astimezone(UTC)
    return parse_timestamp(value)


def _widen(bound: datetime | None, by: timedelta) -> datetime | None:
    if bound is None:
        return None
    try:
        return bound + by
    except OverflowError:
        return None


class _Sandbox:
    def __init__(self, config: SandboxConfig) -> None:
        self.config = config
        self.data: SandboxData = build_sandbox_data(config.extra_activities, seed=config.seed)
        self.ids = [a.id for a in self.data.activities]
        self.faults: list[Fault] = []

    # ----------------------------------------------------------------- gatekeeping

    def _take_fault(self, path: str) -> Fault | None:
        for fault in self.faults:
            if fault.path is None or path.startswith(fault.path):
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
                return fault
        return None

    @staticmethod
    def _render_fault(fault: Fault) -> Response:
        if fault.malformed:
            return Response(
                b'[{"activity_type":"FILL","id":"2025', fault.status, media_type="application/json"
            )
        if fault.status == 429:
            headers = {"X-RateLimit-Limit": "200", "X-RateLimit-Remaining": "0"}
            wait = fault.retry_after if fault.retry_after is not None else 60.0
            headers["X-RateLimit-Reset"] = str(math.ceil(time.time() + wait))
            if fault.retry_after is not None:
                headers["Retry-After"] = str(math.ceil(fault.retry_after))
            return _json({"code": 42910000, "message": "rate limit exceeded"}, 429, headers)
        if fault.status == 401:
            return _error(401, 40110000, "request is not authorized")
        if fault.status == 403:
            return _error(403, None, "forbidden.")
        if fault.status >= 500:
            return _error(fault.status, fault.status * 100000, "internal server error")
        return _error(fault.status, fault.status * 100000, "sandbox fault")

    def _authorized(self, request: Request) -> bool:
        key_id = request.headers.get(KEY_ID_HEADER, "")
        secret = request.headers.get(SECRET_HEADER, "")
        good_id = hmac.compare_digest(key_id.encode(), self.config.api_key_id.encode())
        good_secret = hmac.compare_digest(secret.encode(), self.config.secret_key.encode())
        return good_id and good_secret

    async def _gate(self, request: Request, path: str) -> Response | None:
        fault = self._take_fault(path)
        if fault is not None:
            if fault.delay > 0:
                await asyncio.sleep(fault.delay)
            if fault.status >= 400 or fault.malformed:
                return self._render_fault(fault)
        if not self._authorized(request):
            return _error(401, 40110000, "request is not authorized")
        return None

    # ----------------------------------------------------------------- endpoints

    async def account(self, request: Request) -> Response:
        return await self._gate(request, "/v2/account") or _json(self.data.account)

    async def positions(self, request: Request) -> Response:
        return await self._gate(request, "/v2/positions") or _json(self.data.positions)

    async def position(self, request: Request) -> Response:
        wanted = str(request.path_params["symbol_or_asset_id"])
        denied = await self._gate(request, f"/v2/positions/{wanted}")
        if denied is not None:
            return denied
        flat = wanted.replace("/", "")
        for item in self.data.positions:
            if wanted == item["asset_id"] or flat == item["symbol"]:
                return _json(item)
        return _error(404, 40410000, "position does not exist")

    async def activities(self, request: Request) -> Response:
        path_type = request.path_params.get("activity_type")
        path = "/v2/account/activities" + (f"/{path_type}" if path_type else "")
        denied = await self._gate(request, path)
        if denied is not None:
            return denied
        query = request.query_params
        raw_types = str(path_type) if path_type else query.get("activity_types", "")
        types: set[str] | None = None
        if raw_types:
            types = set()
            for name in (t.strip().upper() for t in raw_types.split(",") if t.strip()):
                if name in _GROUPS:
                    types |= _GROUPS[name]
                elif name == "MISC":
                    types |= set(ACTIVITY_KINDS) - {"FILL", "CSD", "CSW"}
                elif name in ACTIVITY_KINDS:
                    types.add(name)
                else:
                    return _unprocessable(f"invalid activity type: {name}", 40010001)
        category = query.get("category")
        if category not in (None, "trade_activity", "non_trade_activity"):
            return _unprocessable("invalid category", 40010001)
        direction = query.get("direction", "desc")
        if direction not in ("asc", "desc"):
            return _unprocessable("invalid direction", 40010001)
        day_text = query.get("date")
        if day_text and (query.get("after") or query.get("until")):
            return _unprocessable("date cannot be combined with after or until")
        try:
            day = date.fromisoformat(day_text) if day_text else None
            after = _parse_bound(query["after"]) if query.get("after") else None
            until = _parse_bound(query["until"]) if query.get("until") else None
        except (ValueError, WireFormatError):
            return _unprocessable("invalid date, after or until", 40010001)
        size_text = query.get("page_size")
        limit: int | None = None if day else 100
        if size_text:
            if not size_text.isdigit() or int(size_text) < 1:
                return _unprocessable("page_size must be a positive integer", 40010001)
            limit = int(size_text)
            if day is None and limit > self.config.max_page_size:
                return _unprocessable(f"page_size must be at most {self.config.max_page_size}")
        token = query.get("page_token")
        selected: list[bytes] = []
        for item in self._walk(direction, token, after, until):
            if types is not None and item.activity_type not in types:
                continue
            if category == "trade_activity" and item.activity_type != "FILL":
                continue
            if category == "non_trade_activity" and item.activity_type == "FILL":
                continue
            if day is not None and item.ny_date != day:
                continue
            if after is not None and item.instant <= after:
                continue
            if until is not None and item.instant >= until:
                continue
            selected.append(item.body)
            if limit is not None and len(selected) >= limit:
                break
        return _json(b"[" + b",".join(selected) + b"]")

    def _walk(
        self, direction: str, token: str | None, after: datetime | None, until: datetime | None
    ) -> Iterator[Activity]:
        """Activities after ``token`` in ``direction``, stopping once past the window."""
        items = self.data.activities
        floor = _widen(after, -_SLACK)
        ceiling = _widen(until, _SLACK)
        if direction == "desc":
            end = bisect_left(self.ids, token) if token else len(items)
            for index in range(end - 1, -1, -1):
                item = items[index]
                if floor is not None and item.instant < floor:
                    return
                yield item
        else:
            begin = bisect_right(self.ids, token) if token else 0
            for index in range(begin, len(items)):
                item = items[index]
                if ceiling is not None and item.instant > ceiling:
                    return
                yield item

    # ----------------------------------------------------------------- fault control

    async def add_fault(self, request: Request) -> Response:
        try:
            body = json.loads(await request.body() or b"{}")
            if not isinstance(body, dict):
                raise TypeError
            status = int(body.get("status", 500))
            count = int(body.get("count", 1))
            retry = body.get("retry_after")
            fault = Fault(
                status=status,
                count=count,
                retry_after=float(retry) if retry is not None else None,
                path=str(body["path"]) if body.get("path") else None,
                malformed=bool(body.get("malformed", False)),
                delay=float(body.get("delay", 0)),
            )
        except (ValueError, TypeError, KeyError):
            return _unprocessable("invalid fault", 40010001)
        plain_ok = status < 400 and not fault.malformed and fault.delay <= 0
        if not (200 <= status <= 599) or count < 1 or plain_ok or not 0 <= fault.delay <= 60:
            return _unprocessable("invalid fault", 40010001)
        self.faults.append(fault)
        return _json({"queued": len(self.faults), "fault": fault.as_dict()}, 201)

    async def list_faults(self, request: Request) -> Response:
        return _json([f.as_dict() for f in self.faults])

    async def clear_faults(self, request: Request) -> Response:
        self.faults.clear()
        return Response(status_code=204)


async def _not_found(request: Request, exc: Exception) -> Response:
    if isinstance(exc, HTTPException) and exc.status_code == 405:
        return _error(405, 40510000, "method not allowed")
    return _error(404, 40410000, "endpoint not found")


def create_sandbox_app(config: SandboxConfig | None = None) -> Starlette:
    """Build the sandbox ASGI app (the ``ProviderSpec.sandbox`` factory).

    Args:
        config: key pair, scale and page-size limit; ``None`` means
            :meth:`SandboxConfig.from_env` (the fixture data, keys :data:`SANDBOX_API_KEY_ID` /
            :data:`SANDBOX_SECRET_KEY`, unless the environment asks for more activities).

    Returns:
        A Starlette app; mount it anywhere and point both Alpaca base URLs at the mount.
    """
    sandbox = _Sandbox(config or SandboxConfig.from_env())
    routes = [
        Route("/v2/account", sandbox.account, methods=["GET"]),
        Route("/v2/positions", sandbox.positions, methods=["GET"]),
        Route("/v2/positions/{symbol_or_asset_id:path}", sandbox.position, methods=["GET"]),
        Route("/v2/account/activities", sandbox.activities, methods=["GET"]),
        Route("/v2/account/activities/{activity_type}", sandbox.activities, methods=["GET"]),
        Route("/_sandbox/faults", sandbox.add_fault, methods=["POST"]),
        Route("/_sandbox/faults", sandbox.list_faults, methods=["GET"]),
        Route("/_sandbox/faults", sandbox.clear_faults, methods=["DELETE"]),
    ]
    app = Starlette(routes=routes, exception_handlers={404: _not_found, 405: _not_found})
    app.state.sandbox = sandbox
    return app


__all__ = [
    "SANDBOX_API_KEY_ID",
    "SANDBOX_SECRET_KEY",
    "Fault",
    "SandboxConfig",
    "create_sandbox_app",
]
