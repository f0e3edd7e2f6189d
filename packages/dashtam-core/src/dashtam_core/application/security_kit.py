"""The security kit: every security component the identity services and the API need, built once.

:func:`build_security_kit` loads the keys from ``DASHTAM_SECRET_DIR`` (or their ``DASHTAM_*``
variables) — generating missing ones on the embedded SQLite default only — and wires the argon2id
hasher, the JWT issuer/verifier, the token HMAC, the audit chain key, the Casbin authorizer on the
``casbin_rule`` table, the rate limiter (Redis when ``DASHTAM_REDIS_URL`` is set, in-process
otherwise), the mail sender and the TOTP verifier.
"""

from __future__ import annotations

import hashlib
import os
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from dashtam_core.adapters.mail.factory import build_mail_sender
from dashtam_core.adapters.memory.rate_limiter import InMemoryRateLimiter
from dashtam_core.adapters.security.authorizer import (
    CasbinAuthorizer,
    PolicyStore,
    SqlAlchemyPolicyStore,
)
from dashtam_core.adapters.security.jwt import JwtIssuer, JwtVerifier
from dashtam_core.adapters.security.keyring import KEYS_FILE, SigningKeyRing
from dashtam_core.adapters.security.keys import generate_all_keys, load_hmac_key
from dashtam_core.adapters.security.passwords import Argon2idHasher
from dashtam_core.adapters.security.refresh_tokens import TokenHasher
from dashtam_core.adapters.security.totp import SqlAlchemyTotpReplayGuard, TotpVerifier
from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.ports.mail import MailSender
from dashtam_core.ports.rate_limit import RateLimiter, RateLimitRule
from dashtam_core.ports.security import PasswordHasher
from dashtam_core.registries.rate_limits import build_rules, parse_overrides
from dashtam_core.settings import CoreSettings

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncEngine

#: Seconds between checks of the signing-key file for a rotation made by ``dashtam keys``.
KEYRING_CHECK_SECONDS = 10.0


@dataclass
class SecurityKit:
    """Process-wide security components (one per API process or CLI command).

    Attributes:
        settings: the settings it was built from.
        engine: the database engine (audit failures, policy store, revocation checks).
        hasher: password hashing (argon2id, off the event loop).
        keyring: the JWT signing key ring.
        issuer: signs access tokens.
        verifier: verifies access tokens.
        token_hasher: HMAC of refresh, verification and reset tokens.
        audit_key: HMAC key of the audit hash chain.
        authorizer: Casbin RBAC, fail closed.
        rate_limiter: GCRA limiter (Redis or in-process).
        rules: the rate-limit rules by name (defaults plus ``DASHTAM_RATE_LIMITS``).
        mailer: SMTP or the outbox directory.
        totp: TOTP verifier with the replay guard in the database (shared by every process).
        vault: encrypts MFA secrets (bound to the user id) and provider credentials.
        login_delay_base: seconds of the progressive login delay after the third consecutive
            failure for one email (doubling per failure, at most ``login_delay_max``).
        login_delay_max: the longest progressive delay.
        send_login_notices: mail a new-sign-in notice on every login.
        revocation_cache_seconds: how long a passed revocation check of one access token is
            trusted without asking the database again (0 disables). Every revocation made in
            this process clears the cache at once; one made by another process (a second
            worker, the CLI) takes effect within this many seconds.
    """

    settings: CoreSettings
    engine: AsyncEngine
    hasher: PasswordHasher
    keyring: SigningKeyRing
    issuer: JwtIssuer
    verifier: JwtVerifier
    token_hasher: TokenHasher
    audit_key: bytes = field(repr=False)
    authorizer: CasbinAuthorizer
    rate_limiter: RateLimiter
    rules: dict[str, RateLimitRule]
    mailer: MailSender
    totp: TotpVerifier
    vault: CredentialVault
    login_delay_base: float = 0.25
    login_delay_max: float = 4.0
    send_login_notices: bool = True
    login_failures: dict[str, int] = field(default_factory=dict, repr=False)
    revocation_cache_seconds: float = 1.0
    _access_ok: dict[tuple[str, str, int], float] = field(default_factory=dict, repr=False)
    _keyring_mtime: float = field(default=0.0, repr=False)
    _keyring_checked: float = field(default=0.0, repr=False)

    def access_recently_checked(self, sid: str, sub: str, iat: int) -> bool:
        """True when this token's revocation check passed less than the cache TTL ago."""
        until = self._access_ok.get((sid, sub, iat))
        return until is not None and until > time.monotonic()

    def remember_access_check(self, sid: str, sub: str, iat: int) -> None:
        """Trust this token's passed revocation check for ``revocation_cache_seconds``."""
        if self.revocation_cache_seconds <= 0:
            return
        if len(self._access_ok) >= 100_000:
            self._access_ok.clear()
        self._access_ok[(sid, sub, iat)] = time.monotonic() + self.revocation_cache_seconds

    def revocation_changed(self) -> None:
        """Forget every cached revocation check (call after revoking anything)."""
        self._access_ok.clear()

    def reload_keyring_if_changed(self) -> bool:
        """Pick up a signing-key rotation written to the secret dir (checked every 10 s).

        Returns:
            True when a new ring was loaded.
        """
        now = time.monotonic()
        if now - self._keyring_checked < KEYRING_CHECK_SECONDS:
            return False
        self._keyring_checked = now
        if os.environ.get("DASHTAM_JWT_SIGNING_KEYS"):
            return False
        path = self.settings.secret_dir / KEYS_FILE
        try:
            mtime = path.stat().st_mtime
        except OSError:
            return False
        if mtime == self._keyring_mtime:
            return False
        ring = SigningKeyRing.load(self.settings.secret_dir)
        self._keyring_mtime = mtime
        self.keyring = ring
        self.issuer.keyring = ring
        self.verifier.keyring = ring
        return True


def _rate_limiter(settings: CoreSettings) -> RateLimiter:
    if settings.redis_url:
        from dashtam_core.adapters.redis.rate_limiter import RedisRateLimiter

        # One namespace per deployment (= database): every process of a deployment shares its
        # counters, while two deployments (or test runs) sharing one Redis never collide.
        digest = hashlib.sha256(settings.database_url.encode()).hexdigest()[:12]
        return RedisRateLimiter.from_url(settings.redis_url, prefix=f"dashtam:rl:{digest}:")
    return InMemoryRateLimiter()


def build_security_kit(
    settings: CoreSettings,
    engine: AsyncEngine,
    *,
    hasher: PasswordHasher | None = None,
    policy_store: PolicyStore | None = None,
    rate_limiter: RateLimiter | None = None,
    mailer: MailSender | None = None,
    vault: CredentialVault | None = None,
    **options: Any,
) -> SecurityKit:
    """Build the kit for ``settings`` on ``engine``.

    Args:
        settings: core (or API) settings.
        engine: the database engine.
        hasher: a password hasher (default argon2id with the production parameters).
        policy_store: where Casbin policies come from (default: the ``casbin_rule`` table).
        rate_limiter: a limiter (default: Redis if configured, else in-process).
        mailer: a mail sender (default: SMTP if configured, else the outbox).
        vault: a credential vault (default: loaded like the container's).
        **options: other :class:`SecurityKit` fields (``login_delay_base``, ...).

    Raises:
        ConfigurationError: keys are missing outside the embedded SQLite default.
    """
    if settings.is_sqlite:
        generate_all_keys(settings.secret_dir)
    keyring = SigningKeyRing.load(settings.secret_dir, max_token_lifetime=3600.0)
    if vault is None:
        from dashtam_core.application.container import load_vault

        vault = load_vault(settings)
    kit = SecurityKit(
        settings=settings,
        engine=engine,
        hasher=hasher or Argon2idHasher(),
        keyring=keyring,
        issuer=JwtIssuer(
            keyring,
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
            ttl_seconds=settings.access_token_ttl_seconds,
        ),
        verifier=JwtVerifier(keyring, issuer=settings.jwt_issuer, audience=settings.jwt_audience),
        token_hasher=TokenHasher(load_hmac_key("token_hmac", settings.secret_dir)),
        audit_key=load_hmac_key("audit_hmac", settings.secret_dir),
        authorizer=CasbinAuthorizer(policy_store or SqlAlchemyPolicyStore(engine)),
        rate_limiter=rate_limiter or _rate_limiter(settings),
        rules=build_rules(parse_overrides(settings.rate_limits)),
        mailer=mailer or build_mail_sender(settings),
        totp=TotpVerifier(SqlAlchemyTotpReplayGuard(engine)),
        vault=vault,
        **options,
    )
    try:
        kit._keyring_mtime = (settings.secret_dir / KEYS_FILE).stat().st_mtime
    except OSError:
        kit._keyring_mtime = 0.0
    kit._keyring_checked = time.monotonic()
    return kit


__all__ = ["KEYRING_CHECK_SECONDS", "SecurityKit", "build_security_kit"]
