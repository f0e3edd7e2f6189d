"""``GET /api/v1/exports/transactions``: the transactions as a streamed CSV, JSON or OFX file.

The body is :func:`dashtam_core.application.exports.export_stream` (the same implementation as
``dashtam export transactions``): the caller's transactions read in keyset batches and sent
chunk by chunk, so memory stays flat whatever the size. CSV starts with a header row; JSON is
``{"data": [...]}`` with the API's transaction objects; OFX is an OFX 2.2 XML document with one
statement per account (bank, credit card or investment message set by account type).
"""

from __future__ import annotations

from datetime import UTC, date, datetime
from typing import Annotated
from uuid import UUID

from fastapi import Query
from starlette.responses import StreamingResponse

from dashtam_api.auth import CurrentPrincipal
from dashtam_api.deps import EngineDep
from dashtam_api.registry import RouteSpec
from dashtam_api.routes.data import AUTH_ERRORS
from dashtam_core.application.exports import (
    CSV_COLUMNS,
    EXPORT_MEDIA_TYPES,
    ExportFormat,
    csv_row,
    export_stream,
)
from dashtam_core.application.queries import TransactionFilter


async def export_transactions(
    principal: CurrentPrincipal,
    engine: EngineDep,
    format: Annotated[ExportFormat, Query(description="csv, json or ofx.")] = "csv",
    start: date | None = None,
    end: date | None = None,
    account_id: UUID | None = None,
) -> StreamingResponse:
    """The caller's transactions as a streamed CSV, JSON or OFX file."""
    flt = TransactionFilter(account_id=account_id, start=start, end=end)
    stamp = datetime.now(UTC).strftime("%Y%m%d")
    return StreamingResponse(
        export_stream(engine, principal.user_id, format, flt),
        media_type=EXPORT_MEDIA_TYPES[format],
        headers={
            "Content-Disposition": f'attachment; filename="dashtam-transactions-{stamp}.{format}"'
        },
    )


ROUTES = (
    RouteSpec(
        name="exports.transactions",
        method="GET",
        path="/api/v1/exports/transactions",
        handler=export_transactions,
        auth="user",
        rate_limit="read_user",
        policy=("exports", "read"),
        response_class=StreamingResponse,
        errors=AUTH_ERRORS,
        tags=("financial data",),
    ),
)

# CSV_COLUMNS and csv_row are re-exported: the CSV cells of a row live in core.
__all__ = ["CSV_COLUMNS", "ROUTES", "csv_row", "export_transactions"]
