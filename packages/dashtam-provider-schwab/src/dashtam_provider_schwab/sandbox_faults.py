"""Faults on demand for the Schwab sandbox, and the Trader API error body."""

from __future__ import annotations

import uuid
from dataclasses import dataclass

from starlette.responses import JSONResponse, Response


@dataclass
class Fault:
    """One queued fault, served ``count`` times to requests whose path starts with ``path``."""

    status: int = 500
    count: int = 1
    path: str = "/trader/v1"
    method: str | None = None
    retry_after: float | None = None
    malformed: bool = False
    shape: str = "service"


def service_error(status: int, message: str, *errors: str) -> JSONResponse:
    """A Trader API ``ServiceError`` body ``{message, errors: [str]}``."""
    headers = {"Schwab-Client-CorrelId": str(uuid.uuid4())}
    body = {"message": message, "errors": list(errors) or [message]}
    return JSONResponse(body, status_code=status, headers=headers)


def fault_response(fault: Fault) -> Response:
    """The response a queued fault answers with."""
    if fault.malformed:
        return Response(
            b'[{"securitiesAccount": {"accountNumber": "7123',
            200,
            media_type="application/json",
        )
    headers = {}
    if fault.retry_after is not None:
        headers["Retry-After"] = f"{fault.retry_after:g}"
    title = {401: "Unauthorized", 429: "Too Many Requests", 503: "Service Unavailable"}.get(
        fault.status, "Error"
    )
    if fault.shape == "text":
        text = f"{fault.status} {title}: Requested route does not exist."
        return Response(text, fault.status, headers=headers, media_type="text/plain")
    if fault.shape == "jsonapi":
        item = {"id": str(uuid.uuid4()), "status": str(fault.status), "title": title}
        item["detail"] = f"sandbox fault {fault.status}"
        return JSONResponse({"errors": [item]}, fault.status, headers=headers)
    response = service_error(fault.status, title, f"sandbox fault {fault.status}")
    response.headers.update(headers)
    return response


__all__ = ["Fault", "fault_response", "service_error"]
