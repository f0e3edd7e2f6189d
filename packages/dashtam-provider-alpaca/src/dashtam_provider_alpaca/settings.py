"""``AlpacaSettings``: where the Alpaca Trading API lives and how the client talks to it."""

from __future__ import annotations

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

#: Alpaca's documented maximum ``page_size`` for account activities (without ``date``).
MAX_PAGE_SIZE = 100


class AlpacaSettings(BaseSettings):
    """Settings read from ``DASHTAM_ALPACA_*`` environment variables (or ``.env``).

    Attributes:
        paper_base_url: paper-trading host; ``/v2/...`` paths are appended.
        live_base_url: live-trading host; ``/v2/...`` paths are appended.
        connect_timeout_seconds: TCP/TLS connect timeout per request.
        read_timeout_seconds: read (and write/pool) timeout per request.
        page_size: account activities per page (Alpaca allows at most 100).
        currency: currency of amounts when a response does not name one (Alpaca is USD).
    """

    model_config = SettingsConfigDict(
        env_prefix="DASHTAM_ALPACA_", env_file=".env", extra="ignore", populate_by_name=True
    )

    paper_base_url: str = "https://paper-api.alpaca.markets"
    live_base_url: str = "https://api.alpaca.markets"
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=30.0, gt=0)
    page_size: int = Field(default=MAX_PAGE_SIZE, ge=1, le=MAX_PAGE_SIZE)
    currency: str = Field(default="USD", min_length=3, max_length=3)

    def base_url(self, environment: str) -> str:
        """The host for ``environment`` (``paper`` or ``live``), without a trailing slash."""
        url = self.live_base_url if environment == "live" else self.paper_base_url
        return url.rstrip("/")

    def for_sandbox(self, base_url: str) -> AlpacaSettings:
        """A copy whose paper and live hosts both point at a sandbox served at ``base_url``."""
        return self.model_copy(update={"paper_base_url": base_url, "live_base_url": base_url})


__all__ = ["MAX_PAGE_SIZE", "AlpacaSettings"]
