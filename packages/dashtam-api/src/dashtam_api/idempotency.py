"""``Idempotency-Key`` for POST routes that create or start something (api.md conventions).

A request carrying the header claims ``(user, key)`` in the ``idempotency_keys`` table with the
SHA-256 of its fingerprint (method, path and a canonical form of the body: sorted-key JSON, or
for uploads the file bytes and form fields), then runs. Its successful response (status and JSON
body) is stored on the claim, and:

* the same key with the same fingerprint returns the stored response again (header
  ``Idempotent-Replayed: true``) without running anything;
* the same key with another fingerprint is refused: 422 ``idempotency_key_reused``;
* the same key while the first request still runs: 409 ``idempotency_in_progress``.

A request that fails with a problem releases its claim (failed commands write nothing, so a
retry with the same key simply runs again). Keys are per user and kept
:data:`KEY_TTL`; an older claim is replaced.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

import orjson
from fastapi import Request
from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncEngine
from starlette.responses import Response

from dashtam_core.adapters.sqlalchemy.tables import idempotency_keys
from dashtam_core.domain.ids import uuid7
from dashtam_core.errors import Conflict, ValidationError
from dashtam_core.sync.upsert import insert_for

HEADER = "Idempotency-Key"
#: How long a key is remembered.
KEY_TTL = timedelta(hours=24)
MAX_KEY_LENGTH = 255

Producer = Callable[[], Awaitable[tuple[int, Any]]]


class IdempotencyKeyReused(ValidationError):
    """The ``Idempotency-Key`` was already used for a different request."""

    code = "idempotency_key_reused"


class IdempotencyInProgress(Conflict):
    """The first request with this ``Idempotency-Key`` has not finished yet."""

    code = "idempotency_in_progress"


def json_fingerprint(body: bytes) -> bytes:
    """A canonical form of a JSON body (keys sorted), or the bytes themselves if not JSON."""
    if not body.strip():
        return b""
    try:
        return orjson.dumps(orjson.loads(body), option=orjson.OPT_SORT_KEYS)
    except orjson.JSONDecodeError:
        return body


_NOT_COPIED = frozenset({"content-length", "content-type"})


def _json_response(
    status: int, body: Any, headers: Mapping[str, str] | None, *, replayed: bool = False
) -> Response:
    out = {k: v for k, v in (headers or {}).items() if k.lower() not in _NOT_COPIED}
    if replayed:
        out["Idempotent-Replayed"] = "true"
    return Response(
        content=orjson.dumps(body),
        status_code=status,
        media_type="application/json",
        headers=out,
    )


def idempotency_key(request: Request) -> str | None:
    """The request's ``Idempotency-Key`` (``ValidationError`` when malformed)."""
    key = request.headers.get(HEADER)
    if key is None:
        return None
    key = key.strip()
    if not key or len(key) > MAX_KEY_LENGTH or not key.isprintable():
        raise ValidationError(f"{HEADER} must be 1 to {MAX_KEY_LENGTH} printable characters")
    return key


async def run_idempotent(
    request: Request,
    engine: AsyncEngine,
    user_id: UUID,
    fingerprint: bytes,
    produce: Producer,
    *,
    headers: Mapping[str, str] | None = None,
) -> Response:
    """Run ``produce`` once per ``(user, Idempotency-Key)`` and answer with its JSON result.

    Args:
        request: the request (its header, method and path).
        engine: the database engine.
        user_id: the caller.
        fingerprint: what identifies "the same request" besides method and path.
        produce: returns ``(status, json_body)``; may raise ``DashtamError``.
        headers: headers to send along (the ``RateLimit`` headers dependencies set on the
            request's ``Response``).

    Raises:
        IdempotencyKeyReused: the key was used with another request.
        IdempotencyInProgress: the first request with the key is still running.
    """
    key = idempotency_key(request)
    if key is None:
        status, body = await produce()
        return _json_response(status, body, headers)
    digest = hashlib.sha256(
        request.method.encode() + b" " + request.url.path.encode() + b"\n" + fingerprint
    ).hexdigest()
    k = idempotency_keys
    now = datetime.now(UTC)
    async with engine.begin() as conn:
        await conn.execute(
            delete(k).where(k.c.user_id == user_id, k.c.key == key, k.c.created_at < now - KEY_TTL)
        )
        claim_id = uuid7()
        claimed = (
            await conn.execute(
                insert_for(conn, k)
                .values(id=claim_id, user_id=user_id, key=key, request_hash=digest, created_at=now)
                .on_conflict_do_nothing(index_elements=[k.c.user_id, k.c.key])
                .returning(k.c.id)
            )
        ).scalar_one_or_none()
        if claimed is None:
            row = (
                await conn.execute(select(k).where(k.c.user_id == user_id, k.c.key == key))
            ).one()
    if claimed is None:
        if row.request_hash != digest:
            raise IdempotencyKeyReused(f"this {HEADER} was already used for another request")
        if row.response_status is None:
            raise IdempotencyInProgress(f"the first request with this {HEADER} is still running")
        return _json_response(row.response_status, row.response_body, headers, replayed=True)
    try:
        status, body = await produce()
    except BaseException:
        async with engine.begin() as conn:
            await conn.execute(delete(k).where(k.c.id == claim_id))
        raise
    async with engine.begin() as conn:
        await conn.execute(
            update(k).where(k.c.id == claim_id).values(response_status=status, response_body=body)
        )
    return _json_response(status, body, headers)


__all__ = [
    "HEADER",
    "KEY_TTL",
    "IdempotencyInProgress",
    "IdempotencyKeyReused",
    "Producer",
    "idempotency_key",
    "json_fingerprint",
    "run_idempotent",
]
