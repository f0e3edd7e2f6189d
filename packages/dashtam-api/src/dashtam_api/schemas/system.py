"""Bodies of the system routes (``/health``, ``/health/ready``)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel


class HealthOut(BaseModel):
    """Liveness: the process answers."""

    status: Literal["ok"] = "ok"
    version: str
    sandbox: bool = False


class ReadyOut(BaseModel):
    """Readiness: every dependency answered; ``checks`` names each one."""

    status: Literal["ready"] = "ready"
    checks: dict[str, Literal["ok"]]


__all__ = ["HealthOut", "ReadyOut"]
