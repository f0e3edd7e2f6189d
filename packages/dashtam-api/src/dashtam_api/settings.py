"""``ApiSettings``: service settings on top of :class:`~dashtam_core.settings.CoreSettings`."""

from __future__ import annotations

from pydantic import Field

from dashtam_core.settings import CoreSettings


class ApiSettings(CoreSettings):
    """Settings of the HTTP service and the ``dashtam`` CLI (``DASHTAM_*`` variables).

    Attributes:
        host: interface ``dashtam serve`` binds to.
        port: TCP port ``dashtam serve`` listens on.
        workers: uvicorn worker processes (1 = single process, jobs in-process).
        cors_origins: origins allowed by CORS (empty = no CORS headers at all).
        max_request_bytes: largest accepted request body; ``None`` means the statement
            import limit plus 1 MiB of multipart overhead.
        readiness_timeout_seconds: time budget of each ``/health/ready`` probe.
        hsts: send ``Strict-Transport-Security`` (enable behind TLS).
        log_level: uvicorn's log level.
        inprocess_jobs: run the periodic jobs (scheduled syncs, token refresh, expiry
            warnings, pruning) inside this process; ``dashtam serve`` turns it on for the
            embedded default (no Redis), where there is no ``dashtam scheduler``.
    """

    host: str = "127.0.0.1"
    port: int = Field(default=8000, ge=0, le=65535)
    workers: int = Field(default=1, ge=1, le=256)
    cors_origins: list[str] = Field(default_factory=list)
    max_request_bytes: int | None = Field(default=None, ge=1024)
    readiness_timeout_seconds: float = Field(default=2.0, gt=0, le=30)
    hsts: bool = False
    log_level: str = "info"
    inprocess_jobs: bool = False

    @property
    def request_body_limit(self) -> int:
        """The effective request body limit in bytes."""
        if self.max_request_bytes is not None:
            return self.max_request_bytes
        return self.import_max_bytes + 1024 * 1024


__all__ = ["ApiSettings"]
