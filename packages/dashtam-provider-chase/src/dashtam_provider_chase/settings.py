"""``ChaseSettings``: limits for statement files (read from ``DASHTAM_CHASE_*``)."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ChaseSettings(BaseSettings):
    """Settings read from ``DASHTAM_CHASE_*`` environment variables (or ``.env``).

    Attributes:
        max_file_bytes: largest statement file accepted; bigger files are refused unread.
    """

    model_config = SettingsConfigDict(env_prefix="DASHTAM_CHASE_", env_file=".env", extra="ignore")

    max_file_bytes: int = Field(default=64 * 1024 * 1024, gt=0)


__all__ = ["ChaseSettings"]
