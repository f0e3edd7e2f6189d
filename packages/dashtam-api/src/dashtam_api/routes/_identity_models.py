"""Request and response models of the identity routes (explicit inputs: unknown fields refused)."""

from __future__ import annotations

from datetime import datetime
from uuid import UUID

from pydantic import BaseModel, ConfigDict, Field

_PASSWORD = Field(min_length=1, max_length=1024)


class _In(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class RegisterIn(_In):
    """Registration body."""

    email: str = Field(min_length=3, max_length=320)
    password: str = _PASSWORD


class UserCreatedOut(BaseModel):
    """A new account."""

    id: UUID
    email: str
    email_verified: bool


class TokenIn(_In):
    """A one-time token (email verification)."""

    token: str = Field(min_length=1, max_length=512)


class VerifiedOut(BaseModel):
    """Verification result."""

    email_verified: bool


class LoginIn(_In):
    """Login body."""

    email: str = Field(min_length=1, max_length=320)
    password: str = _PASSWORD
    totp_code: str | None = Field(default=None, max_length=16)


class RefreshIn(_In):
    """Refresh body."""

    refresh_token: str = Field(min_length=1, max_length=512)


class TokenPairOut(BaseModel):
    """Access and refresh tokens of a session."""

    access_token: str
    refresh_token: str
    token_type: str = "bearer"
    expires_in: int
    session_id: UUID


class SessionOut(BaseModel):
    """One login session."""

    id: UUID
    created_at: datetime
    last_used_at: datetime
    expires_at: datetime
    user_agent: str | None
    ip: str | None
    current: bool


class SessionList(BaseModel):
    """The caller's sessions."""

    data: list[SessionOut]


class RevokedOut(BaseModel):
    """How many sessions were revoked."""

    revoked: int


class ResetRequestIn(_In):
    """Password-reset request body."""

    email: str = Field(min_length=1, max_length=320)


class AcceptedOut(BaseModel):
    """The request was accepted (whether or not the email exists)."""

    accepted: bool = True


class ResetIn(_In):
    """Password reset with a mailed token."""

    token: str = Field(min_length=1, max_length=512)
    new_password: str = _PASSWORD


class ResetOut(BaseModel):
    """Password reset result."""

    password_reset: bool = True


class MeOut(BaseModel):
    """The caller's profile."""

    id: UUID
    email: str
    email_verified: bool
    roles: list[str]
    mfa_enabled: bool
    created_at: datetime


class PasswordChangeIn(_In):
    """Password change body."""

    current_password: str = _PASSWORD
    new_password: str = _PASSWORD


class MfaStartOut(BaseModel):
    """TOTP enrolment: the secret and the URI for an authenticator app."""

    secret: str
    otpauth_uri: str


class MfaCodeIn(_In):
    """A TOTP code."""

    code: str = Field(min_length=6, max_length=10)


class MfaOut(BaseModel):
    """TOTP status."""

    mfa_enabled: bool


__all__ = [
    "AcceptedOut",
    "LoginIn",
    "MeOut",
    "MfaCodeIn",
    "MfaOut",
    "MfaStartOut",
    "PasswordChangeIn",
    "RefreshIn",
    "RegisterIn",
    "ResetIn",
    "ResetOut",
    "ResetRequestIn",
    "RevokedOut",
    "SessionList",
    "SessionOut",
    "TokenIn",
    "TokenPairOut",
    "UserCreatedOut",
    "VerifiedOut",
]
