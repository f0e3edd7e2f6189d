"""``POST /api/v1/imports``: upload a statement file (multipart ``file``).

The upload is read in chunks and refused past ``DASHTAM_IMPORT_MAX_BYTES`` (413); the provider
is inferred from the content unless ``provider`` is given. A bad file answers 422
``invalid_statement`` naming the line and element, and nothing is written. Importing the same
bytes again adds nothing (content dedupe); with ``Idempotency-Key`` the same key and file return
the first response.
"""

from __future__ import annotations

import hashlib
from typing import Annotated, Any
from uuid import UUID

from fastapi import File, Form, Request, Response, UploadFile

from dashtam_api.auth import CurrentPrincipal
from dashtam_api.idempotency import run_idempotent
from dashtam_api.problems import PayloadTooLarge
from dashtam_api.registry import RouteSpec
from dashtam_api.routes._runtime import RuntimeDep
from dashtam_api.routes.connections import IDEMPOTENCY_ERRORS
from dashtam_api.routes.data import AUTH_ERRORS
from dashtam_api.schemas.connections import ImportOut
from dashtam_core.application.imports import import_statement
from dashtam_core.errors import DashtamError, FieldError, StatementParseError
from dashtam_core.result import Err

_CHUNK = 1024 * 1024


async def read_capped(upload: UploadFile, limit: int) -> bytes:
    """The upload's bytes, read in chunks; ``PayloadTooLarge`` past ``limit``."""
    parts: list[bytes] = []
    size = 0
    while chunk := await upload.read(_CHUNK):
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"the file exceeds the import limit of {limit} bytes")
        parts.append(chunk)
    return b"".join(parts)


def _located(error: DashtamError) -> DashtamError:
    """Put a parse error's line / element into ``errors[]`` (field ``file``)."""
    if not isinstance(error, StatementParseError) or error.errors:
        return error
    where = [f"line {error.line}" if error.line is not None else ""]
    where.append(f"element <{error.element}>" if error.element else "")
    located = StatementParseError(error.message)
    located.line, located.element = error.line, error.element
    located.errors = [
        FieldError("file", "invalid_statement", ", ".join(w for w in where if w) or error.message)
    ]
    return located


async def create_import(
    request: Request,
    response: Response,
    principal: CurrentPrincipal,
    runtime: RuntimeDep,
    file: Annotated[UploadFile, File(description="The statement: .qfx, .ofx, .qbo or .csv")],
    provider: Annotated[str | None, Form(max_length=64)] = None,
    account_id: Annotated[UUID | None, Form()] = None,
    connection_id: Annotated[UUID | None, Form()] = None,
) -> Any:
    """Import a statement file: 201 with the accounts and counts; 422 for a bad file."""
    container = runtime.container
    data = await read_capped(file, container.settings.import_max_bytes)
    filename = (file.filename or "statement").rsplit("/", 1)[-1].rsplit("\\", 1)[-1]

    async def produce() -> tuple[int, Any]:
        done = await import_statement(
            container,
            principal.user_id,
            filename,
            data,
            provider=provider,
            account_id=account_id,
            connection_id=connection_id,
            origin=principal.origin,
        )
        if isinstance(done, Err):
            raise _located(done.error)
        await runtime.dispatch()
        result = done.value
        out = ImportOut(
            id=result.id,
            connection_id=result.connection_id,
            accounts=list(result.accounts),
            transactions_added=result.transactions_added,
            transactions_skipped=result.transactions_skipped,
            errors=list(result.errors),
        )
        return 201, out.model_dump(mode="json")

    fingerprint = "\n".join(
        [
            hashlib.sha256(data).hexdigest(),
            provider or "",
            str(account_id or ""),
            str(connection_id or ""),
        ]
    ).encode()
    return await run_idempotent(
        request, container.engine, principal.user_id, fingerprint, produce, headers=response.headers
    )


ROUTES = (
    RouteSpec(
        name="imports.create",
        method="POST",
        path="/api/v1/imports",
        handler=create_import,
        auth="user",
        rate_limit="write_user",
        policy=("imports", "write"),
        response_model=ImportOut,
        status_code=201,
        errors=(
            *AUTH_ERRORS,
            "invalid_statement",
            "validation_error",
            "not_found",
            "payload_too_large",
            *IDEMPOTENCY_ERRORS,
        ),
        tags=("imports",),
    ),
)

__all__ = ["ROUTES", "create_import", "read_capped"]
