"""``CoreSettings``: configuration read from ``DASHTAM_*`` environment variables or ``.env``."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class CoreSettings(BaseSettings):
    """Settings shared by the library, the service and the CLI (api.md, "Settings")."""

    model_config = SettingsConfigDict(
        env_prefix="DASHTAM_", env_file=".env", extra="ignore", populate_by_name=True
    )

    database_url: str = "sqlite+aiosqlite:///./var/dashtam.db"
    redis_url: str | None = None
    mail_outbox: Path = Path("./var/outbox")
    smtp_url: SecretStr | None = None
    mail_from: str = "Dashtam <no-reply@dashtam.local>"
    secret_dir: Path = Path("./var/keys")
    archive_dir: Path = Path("./var/archive")
    sandbox: bool = False
    load_plugins: str | None = None
    public_base_url: str = "http://127.0.0.1:8000"
    environment: str = "development"
    sync_overlap_days: int = Field(default=7, ge=0, le=60)
    sync_history_days: int = Field(default=730, ge=1)
    access_token_ttl_seconds: int = Field(default=900, ge=60, le=3600)
    refresh_idle_days: int = 7
    refresh_absolute_days: int = 30
    max_sessions_per_user: int = 10
    require_admin_mfa: bool = False
    import_max_bytes: int = 20 * 1024 * 1024
    jwt_issuer: str = "dashtam"
    jwt_audience: str = "dashtam-api"
    rate_limits: str | None = None  # overrides, e.g. "login_ip=20/min,read_user=600/min"
    # Dispatched outbox events are kept this long for SSE Last-Event-ID resume (at least 2 days:
    # the connection expiry warnings look back into the outbox so as not to warn twice).
    event_retention_days: int = Field(default=7, ge=2, le=3650)

    @property
    def is_sqlite(self) -> bool:
        """True on the embedded SQLite default."""
        return self.database_url.startswith("sqlite")


__all__ = ["CoreSettings"]
