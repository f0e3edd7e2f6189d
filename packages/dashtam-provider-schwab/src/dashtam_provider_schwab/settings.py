"""``SchwabSettings``: the Schwab app's credentials and where the Trader API lives."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

#: App key and secret the built-in sandbox accepts (public, fake values: not secrets).
SANDBOX_CLIENT_ID = "dashtam-sandbox-app-key"
SANDBOX_CLIENT_SECRET = "dashtam-sandbox-app-secret"


class SchwabSettings(BaseSettings):
    """Settings read from ``DASHTAM_SCHWAB_*`` environment variables (or ``.env``).

    Attributes:
        client_id: the app key of the Schwab developer-portal app (unset until configured).
        client_secret: the app secret, sent only in the token request's Basic header.
        redirect_uri: the registered callback; Schwab compares it exactly (trailing slash too).
        api_base_url: Trader API base; ``/accounts/...`` paths are appended.
        auth_base_url: OAuth base; ``/authorize`` and ``/token`` are appended.
        scope: sent as ``scope`` when set (Schwab documents none; tokens come back as ``api``).
        connect_timeout_seconds: TCP/TLS connect timeout per request.
        read_timeout_seconds: read (and write/pool) timeout per request.
        refresh_margin_seconds: an access token this close to expiry counts as expired.
        refresh_token_lifetime_days: life of the refresh grant from the browser login.
        transaction_window_days: longest ``startDate``..``endDate`` span per request (days).
        max_transactions_per_response: Schwab's response cap; a full response is narrowed.
        currency: currency of every amount (Schwab accounts are USD).
    """

    model_config = SettingsConfigDict(
        env_prefix="DASHTAM_SCHWAB_", env_file=".env", extra="ignore", populate_by_name=True
    )

    client_id: str | None = None
    client_secret: SecretStr | None = None
    redirect_uri: str = "https://127.0.0.1:8182"
    api_base_url: str = "https://api.schwabapi.com/trader/v1"
    auth_base_url: str = "https://api.schwabapi.com/v1/oauth"
    scope: str | None = None
    connect_timeout_seconds: float = Field(default=10.0, gt=0)
    read_timeout_seconds: float = Field(default=30.0, gt=0)
    refresh_margin_seconds: int = Field(default=300, ge=0)
    refresh_token_lifetime_days: float = Field(default=7.0, gt=0)
    transaction_window_days: int = Field(default=365, ge=1, le=365)
    max_transactions_per_response: int = Field(default=3000, ge=1)
    currency: str = Field(default="USD", min_length=3, max_length=3)

    def for_sandbox(self, base_url: str) -> SchwabSettings:
        """A copy pointing at a sandbox served at ``base_url`` (``/v1/oauth``, ``/trader/v1``).

        The sandbox's public app key and secret are filled in when none are configured.
        """
        base = base_url.rstrip("/")
        update: dict[str, object] = {
            "api_base_url": f"{base}/trader/v1",
            "auth_base_url": f"{base}/v1/oauth",
        }
        if not self.client_id:
            update["client_id"] = SANDBOX_CLIENT_ID
            update["client_secret"] = SecretStr(SANDBOX_CLIENT_SECRET)
        return self.model_copy(update=update)


__all__ = ["SANDBOX_CLIENT_ID", "SANDBOX_CLIENT_SECRET", "SchwabSettings"]
