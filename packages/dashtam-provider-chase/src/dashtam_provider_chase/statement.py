"""OFX statement → :class:`~dashtam_core.ports.provider.ParsedStatement` (validated records).

Records are built while the reader streams, so the reader's per-transaction state is dropped
as soon as each ``STMTTRN`` closes.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, time
from functools import lru_cache

from dashtam_core.domain.account import AccountType
from dashtam_core.domain.transaction import TransactionStatus, TransactionSubtype, TransactionType
from dashtam_core.errors import StatementParseError
from dashtam_core.ports.provider import ParsedStatement, ProviderAccount, ProviderTransaction
from dashtam_core.result import Err, Ok, Result
from dashtam_provider_chase.mapping import (
    ACCOUNT_TYPES,
    RepeatFinder,
    assign_dedupe_keys,
    classify_ofx_sign,
    collapse,
)
from dashtam_provider_chase.ofx import (
    OfxAccount,
    OfxBalance,
    OfxReader,
    OfxStatementEnd,
    OfxTransaction,
)

_LABELS = {
    AccountType.CHECKING: "Checking",
    AccountType.SAVINGS: "Savings",
    AccountType.MONEY_MARKET: "Money market",
    AccountType.LINE_OF_CREDIT: "Credit line",
    AccountType.CD: "CD",
    AccountType.CREDIT_CARD: "Credit card",
}
_POSTED = TransactionStatus.POSTED
_MERCHANT_SUBTYPES = frozenset({TransactionSubtype.PURCHASE, TransactionSubtype.REFUND})


def account_mask(acctid: str) -> str | None:
    """Last four letters/digits of an account id (``637194402-9876`` → ``9876``)."""
    tail = "".join(ch for ch in acctid if ch.isalnum())[-4:]
    return tail or None


def _as_of(balance: OfxBalance) -> datetime:
    return balance.as_of or datetime.combine(balance.date, time(0), tzinfo=UTC)


def _account(account: OfxAccount, end: OfxStatementEnd) -> ProviderAccount:
    if account.kind == "creditcard":
        kind = AccountType.CREDIT_CARD
        subtype = "credit_card"
    else:
        kind = ACCOUNT_TYPES[account.accttype or "CHECKING"]
        subtype = (account.accttype or "checking").lower()
    mask = account_mask(account.acctid)
    current = available = None
    as_of = None
    if end.ledger is not None:
        current = -end.ledger.amount if kind.is_liability else end.ledger.amount
        current = current + 0  # turns -0.00 into 0.00
        as_of = _as_of(end.ledger)
    if end.available is not None and not kind.is_liability:
        available = end.available.amount
        as_of = as_of or _as_of(end.available)
    return ProviderAccount(
        provider_account_id=account.acctid,
        name=f"Chase {_LABELS[kind]} ...{mask}" if mask else f"Chase {_LABELS[kind]}",
        type=kind,
        currency=account.currency,
        subtype=subtype,
        mask=mask,
        balance_current=current,
        balance_available=available,
        balance_as_of=as_of,
    )


def describe(name: str, memo: str) -> str:
    """Description of an OFX transaction: NAME, or MEMO when it is NAME's untruncated form.

    Chase cuts NAME at 32 characters and puts the full text in MEMO; an unrelated MEMO is
    appended after `` / ``.
    """
    if not memo or memo == name:
        return name or memo
    if not name or memo.startswith(name) or collapse(memo).startswith(collapse(name)):
        return memo
    return f"{name} / {memo}"


@lru_cache(maxsize=8192)
def _presentation(
    trntype: str, inflow: bool, name: str, memo: str, has_checknum: bool, card: bool
) -> tuple[TransactionType, TransactionSubtype, str, str | None]:
    # Cached: statements repeat payees, and these are the only inputs of the rules.
    text = f"{name} {memo}" if memo else name
    kind, subtype = classify_ofx_sign(trntype, inflow, text, has_checknum, card=card)
    merchant = (name or None) if subtype in _MERCHANT_SUBTYPES else None
    return kind, subtype, describe(name, memo), merchant


def transaction(account: OfxAccount, trn: OfxTransaction) -> ProviderTransaction:
    """Map one OFX transaction (dedupe key = FITID; see ``assign_dedupe_keys``)."""
    kind, subtype, description, merchant = _presentation(
        trn.trntype,
        trn.amount > 0,
        trn.name,
        trn.memo,
        bool(trn.checknum),
        account.kind == "creditcard",
    )
    return ProviderTransaction(
        account.acctid,
        trn.fitid,
        trn.fitid,
        trn.date,
        trn.amount,
        trn.currency,
        description,
        kind,
        subtype,
        _POSTED,
        trn.posted_at,
        merchant,
        None,
        None,
        None,
    )


def parse_ofx_statement(data: bytes) -> Result[ParsedStatement, StatementParseError]:
    """Parse an OFX 1.x/2.x file (one or more statements) into validated records.

    Args:
        data: the file's bytes.

    Returns:
        ``Ok(ParsedStatement)`` (format ``ofx-sgml`` or ``ofx-xml``) or ``Err`` naming the
        line/element of the first defect.
    """
    accounts: dict[str, ProviderAccount] = {}
    transactions: list[ProviderTransaction] = []
    starts: list[date] = []
    ends: list[date] = []
    try:
        reader = OfxReader(data)
        account: OfxAccount | None = None
        first = 0  # index of the current statement's first transaction
        repeats = RepeatFinder()
        append = transactions.append
        for event in reader.events():
            if isinstance(event, OfxTransaction):
                if account is None:  # pragma: no cover - the reader yields the account first
                    return Err(StatementParseError("transaction outside a statement"))
                record = transaction(account, event)
                repeats.add(record.provider_transaction_id)
                append(record)
            elif isinstance(event, OfxAccount):
                account = event
                first = len(transactions)
                repeats = RepeatFinder()
            else:
                assign_dedupe_keys(transactions, first, repeats.repeated(transactions, first))
                repeats = RepeatFinder()
                record_account = _account(event.account, event)
                previous = accounts.get(record_account.provider_account_id)
                if previous is None or _newer(record_account, previous):
                    accounts[record_account.provider_account_id] = record_account
                if event.start is not None:
                    starts.append(event.start)
                if event.end is not None:
                    ends.append(event.end)
    except StatementParseError as error:
        return Err(error)
    if not accounts:
        return Err(StatementParseError("no bank or credit-card statement in the file"))
    return Ok(
        ParsedStatement(
            accounts=list(accounts.values()),
            transactions=transactions,
            format=reader.format,
            start=min(starts) if starts else None,
            end=max(ends) if ends else None,
        )
    )


def _newer(record: ProviderAccount, previous: ProviderAccount) -> bool:
    if record.balance_as_of is None:
        return False
    return previous.balance_as_of is None or record.balance_as_of >= previous.balance_as_of


__all__ = ["account_mask", "describe", "parse_ofx_statement", "transaction"]
