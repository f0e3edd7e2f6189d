"""The provider port: normalized records and the protocols a provider plugin implements.

Providers never touch the database: they fetch wire data, map it to the normalized records
below, keep the raw payloads (for the archive) and return ``Result`` values whose errors are
:class:`~dashtam_core.errors.ProviderError` subclasses.

Sign convention: ``amount`` > 0 is money into the account; < 0 is money out.
Money is always ``Decimal`` with an ISO 4217 ``currency``; quantities are signed (short < 0).
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from decimal import Decimal
from enum import StrEnum
from typing import Generic, Protocol, TypeVar, runtime_checkable

from dashtam_core.domain.account import AccountType
from dashtam_core.domain.holding import AssetType, CostBasis
from dashtam_core.domain.transaction import (
    SecurityLeg,
    TransactionStatus,
    TransactionSubtype,
    TransactionType,
)
from dashtam_core.errors import ProviderError, StatementParseError
from dashtam_core.result import Result


class Capability(StrEnum):
    """What a provider can deliver; each maps to a protocol method (see ``CAPABILITY_METHODS``)."""

    ACCOUNTS = "accounts"
    BALANCES = "balances"
    HOLDINGS = "holdings"
    TRANSACTIONS = "transactions"
    INVESTMENT_TRANSACTIONS = "investment_transactions"
    BALANCE_HISTORY = "balance_history"


#: The method a provider must implement for each capability.
CAPABILITY_METHODS: dict[Capability, str] = {
    Capability.ACCOUNTS: "fetch_accounts",
    Capability.BALANCES: "fetch_accounts",
    Capability.HOLDINGS: "fetch_holdings",
    Capability.TRANSACTIONS: "fetch_transactions",
    Capability.INVESTMENT_TRANSACTIONS: "fetch_transactions",
    Capability.BALANCE_HISTORY: "fetch_accounts",
}


class Credentials(Mapping[str, str]):
    """Provider secrets (API keys, OAuth tokens). Never shows its values in repr/str.

    Behaves as a read-only mapping; ``expires_at`` is the access token's expiry and
    ``refresh_expires_at`` the refresh grant's death (Schwab: 7 days after login).
    """

    __slots__ = ("_values", "expires_at", "refresh_expires_at")

    def __init__(
        self,
        values: Mapping[str, str],
        *,
        expires_at: datetime | None = None,
        refresh_expires_at: datetime | None = None,
    ) -> None:
        self._values = dict(values)
        self.expires_at = expires_at
        self.refresh_expires_at = refresh_expires_at

    def __getitem__(self, key: str) -> str:
        return self._values[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self._values)

    def __len__(self) -> int:
        return len(self._values)

    def __repr__(self) -> str:
        return f"Credentials(fields={sorted(self._values)}, expires_at={self.expires_at})"

    __str__ = __repr__

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Credentials):
            return NotImplemented
        return (
            self._values == other._values
            and self.expires_at == other.expires_at
            and self.refresh_expires_at == other.refresh_expires_at
        )

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._values)))

    def secret_values(self) -> list[str]:
        """All secret values (for redaction filters and leak tests)."""
        return [v for v in self._values.values() if v]


@dataclass(frozen=True, slots=True)
class RawPayload:
    """One provider response page or imported file, archived for re-normalization."""

    kind: str  # e.g. "accounts", "transactions", "statement"
    content: bytes
    content_type: str
    fetched_at: datetime
    request: str = ""  # method + path + non-secret query, never credentials
    account_id: str | None = None  # provider account id when the page is per account


@dataclass(frozen=True, slots=True)
class ProviderAccount:
    """An account as the provider reports it, with its current balance.

    For investment accounts ``balance_current`` is the total value (cash + positions) and
    ``balance_available`` the uninvested cash. For liabilities (cards, loans)
    ``balance_current`` is the amount owed as a positive number.
    """

    provider_account_id: str
    name: str
    type: AccountType
    currency: str
    subtype: str | None = None
    mask: str | None = None
    balance_current: Decimal | None = None
    balance_available: Decimal | None = None
    balance_as_of: datetime | None = None


@dataclass(frozen=True, slots=True)
class ProviderTransaction:
    """A transaction as the provider reports it.

    ``dedupe_key`` is the natural key inside the account: the provider id plus, where the
    provider reuses ids, a documented disambiguator. ``pending_link`` is the provider's own
    id of the pending transaction this posted one settles, when the provider says so.
    """

    provider_account_id: str
    provider_transaction_id: str
    dedupe_key: str
    date: date
    amount: Decimal
    currency: str
    description: str
    type: TransactionType
    subtype: TransactionSubtype
    status: TransactionStatus = TransactionStatus.POSTED
    posted_at: datetime | None = None
    merchant: str | None = None
    security: SecurityLeg | None = None
    fees: Decimal | None = None
    pending_link: str | None = None


@dataclass(frozen=True, slots=True)
class ProviderHolding:
    """A position. ``instrument_id`` is stable (CUSIP, asset id, OCC symbol, ...)."""

    provider_account_id: str
    instrument_id: str
    symbol: str
    asset_type: AssetType
    quantity: Decimal
    currency: str
    as_of: datetime
    name: str | None = None
    cost_basis: CostBasis | None = None
    price: Decimal | None = None
    market_value: Decimal | None = None


T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Fetched(Generic[T]):
    """Records plus the raw pages they came from."""

    records: list[T]
    raw: list[RawPayload] = field(default_factory=list)


@dataclass(frozen=True, slots=True)
class ParsedStatement:
    """A whole statement file: accounts (with balances) and their transactions."""

    accounts: list[ProviderAccount]
    transactions: list[ProviderTransaction]
    holdings: list[ProviderHolding] = field(default_factory=list)
    format: str = ""  # "ofx-sgml", "ofx-xml", "csv-checking", "csv-card"
    start: date | None = None
    end: date | None = None


@dataclass(frozen=True, slots=True)
class AuthorizationRequest:
    """What the OAuth flow needs to send the browser to the provider."""

    url: str
    state: str
    code_verifier: str


@runtime_checkable
class AccountsProvider(Protocol):
    """Capability ``accounts`` / ``balances``."""

    async def fetch_accounts(
        self, credentials: Credentials
    ) -> Result[Fetched[ProviderAccount], ProviderError]:
        """Every account of the credential's owner, with current balances."""
        ...


@runtime_checkable
class HoldingsProvider(Protocol):
    """Capability ``holdings``."""

    async def fetch_holdings(
        self, credentials: Credentials, provider_account_id: str
    ) -> Result[Fetched[ProviderHolding], ProviderError]:
        """The account's current positions (all of them: an empty list means no positions)."""
        ...


@runtime_checkable
class TransactionsProvider(Protocol):
    """Capability ``transactions`` / ``investment_transactions``."""

    async def fetch_transactions(
        self, credentials: Credentials, provider_account_id: str, start: date, end: date
    ) -> Result[Fetched[ProviderTransaction], ProviderError]:
        """Transactions dated in ``[start, end]`` (inclusive), all pages fetched."""
        ...


@runtime_checkable
class ApiKeyAuth(Protocol):
    """Providers authenticated by API keys validate them before anything is stored."""

    async def validate_credentials(self, credentials: Credentials) -> Result[None, ProviderError]:
        """``Ok(None)`` if the keys work; ``Err(InvalidCredentials)`` if refused."""
        ...


@runtime_checkable
class OAuth2Auth(Protocol):
    """Authorization-code flow with ``state`` and PKCE (S256)."""

    def authorization_request(self, state: str) -> AuthorizationRequest:
        """Build the browser URL (with a fresh PKCE verifier) for ``state``."""
        ...

    async def exchange_code(
        self, code: str, code_verifier: str
    ) -> Result[Credentials, ProviderError]:
        """Trade the authorization code for tokens (``expires_at``/``refresh_expires_at`` set)."""
        ...

    async def refresh(self, credentials: Credentials) -> Result[Credentials, ProviderError]:
        """Refresh the access token; the result replaces the stored credentials."""
        ...


@runtime_checkable
class StatementParser(Protocol):
    """File-import providers turn statement bytes into records."""

    def sniff(self, filename: str, head: bytes) -> bool:
        """True when this provider recognises the file (by content first, then name)."""
        ...

    def parse_statement(
        self, data: bytes, filename: str
    ) -> Result[ParsedStatement, StatementParseError]:
        """Parse a whole file; any defect is an ``Err`` naming the line or element."""
        ...


@dataclass(frozen=True, slots=True)
class Remapped:
    """Records re-derived from archived raw pages (see :class:`Remappable`)."""

    accounts: list[ProviderAccount] = field(default_factory=list)
    transactions: list[ProviderTransaction] = field(default_factory=list)
    holdings: list[ProviderHolding] = field(default_factory=list)


@runtime_checkable
class Remappable(Protocol):
    """Optional: API providers that can re-map archived pages without calling the network.

    ``dashtam reprocess CONNECTION_ID`` hands every archived :class:`RawPayload` of a
    connection (newest first; ``kind``, ``request`` and ``account_id`` as the provider set them
    when fetching) to :meth:`remap`, which must run the same pure mapping functions the fetch
    methods use. A provider that does not implement it cannot be reprocessed (file-import
    providers are reprocessed by parsing the archived files again).
    """

    def remap(self, payloads: Sequence[RawPayload]) -> Result[Remapped, ProviderError]:
        """Re-derive normalized records from archived pages (pure, no I/O)."""
        ...


__all__ = [
    "CAPABILITY_METHODS",
    "AccountsProvider",
    "ApiKeyAuth",
    "AuthorizationRequest",
    "Capability",
    "Credentials",
    "Fetched",
    "HoldingsProvider",
    "OAuth2Auth",
    "ParsedStatement",
    "ProviderAccount",
    "ProviderHolding",
    "ProviderTransaction",
    "RawPayload",
    "Remappable",
    "Remapped",
    "StatementParser",
    "TransactionsProvider",
]
