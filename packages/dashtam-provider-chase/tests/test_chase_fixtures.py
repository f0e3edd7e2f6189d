"""The four Chase sample files reproduce every figure of the fixtures README."""

from __future__ import annotations

from collections import Counter
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

from dashtam_core.domain.account import AccountType
from dashtam_core.domain.transaction import TransactionSubtype as S
from dashtam_core.domain.transaction import TransactionType as T
from dashtam_core.ports.provider import ParsedStatement
from dashtam_provider_chase import ChaseProvider, read_ofx

FIXTURES = Path(__file__).parent / "fixtures"


def parse(name: str, filename: str | None = None) -> ParsedStatement:
    data = (FIXTURES / name).read_bytes()
    return ChaseProvider().parse_statement(data, filename or name).unwrap()


def test_checking_qfx_account_balances_and_sum() -> None:
    statement = parse("checking.qfx")
    assert statement.format == "ofx-sgml"
    assert (statement.start, statement.end) == (date(2025, 3, 1), date(2025, 4, 30))
    [account] = statement.accounts
    assert account.provider_account_id == "9876543210"
    assert account.type is AccountType.CHECKING
    assert account.mask == "3210"
    assert account.currency == "USD"
    assert account.balance_current == Decimal("7623.24")
    assert account.balance_available == Decimal("7581.06")
    assert account.balance_as_of == datetime(2025, 4, 30, 12, tzinfo=UTC)
    assert len(statement.transactions) == 25
    total = sum((t.amount for t in statement.transactions), Decimal(0))
    assert total == Decimal("4141.07")
    # opening 3482.17 + 25 amounts = LEDGERBAL; AVAILBAL = ledger - 42.18 pending hold
    assert Decimal("3482.17") + total == account.balance_current
    assert account.balance_current - Decimal("42.18") == account.balance_available


def test_checking_qfx_dates_types_and_keys() -> None:
    statement = parse("checking.qfx")
    txns = statement.transactions
    assert [t.date for t in txns] == sorted((t.date for t in txns), reverse=True)
    assert txns[0].date == date(2025, 4, 28)
    assert txns[0].posted_at == datetime(2025, 4, 28, 12, tzinfo=UTC)
    assert txns[-1].date == date(2025, 3, 1)
    assert all(t.dedupe_key == t.provider_transaction_id for t in txns)
    assert len({t.dedupe_key for t in txns}) == 25
    kinds = {(t.type, t.subtype) for t in txns}
    assert (T.INCOME, S.PAYROLL) in kinds
    checks = [t for t in txns if t.subtype is S.CHECK]
    assert [t.description for t in checks] == ["CHECK 1043", "CHECK 1042"]
    assert all(t.amount == Decimal("-1650.00") for t in checks)
    payroll = [t for t in txns if t.subtype is S.PAYROLL]
    assert len(payroll) == 4
    assert all(t.amount == Decimal("2845.16") for t in payroll)
    [atm] = [t for t in txns if t.subtype is S.ATM]
    assert atm.amount == Decimal("-100.00")
    [fee] = [t for t in txns if t.type is T.FEE]
    assert (fee.date, fee.amount) == (date(2025, 3, 31), Decimal("-12.00"))
    [card_payment] = [t for t in txns if t.amount == Decimal("-1204.37")]
    assert (card_payment.type, card_payment.subtype) == (T.TRANSFER, S.PAYMENT)
    assert card_payment.description == "Payment to Chase card ending in 9876 03/19"
    whole_foods = txns[0]
    assert whole_foods.description == "WHOLE FOODS PDX 10243 PORTLAND OR 04/27"  # MEMO: untruncated
    assert (whole_foods.type, whole_foods.subtype) == (T.OTHER, S.PURCHASE)
    assert whole_foods.merchant == "WHOLE FOODS PDX 10243 PORTLAND O"


def test_credit_card_qfx() -> None:
    statement = parse("credit_card.qfx")
    [account] = statement.accounts
    assert account.provider_account_id == "637194402-9876"
    assert account.mask == "9876"
    assert account.type is AccountType.CREDIT_CARD
    assert account.balance_current == Decimal("136.32")  # LEDGERBAL -136.32: owed, positive
    assert account.balance_available is None  # Chase card AVAILBAL 0.00 is not available credit
    txns = statement.transactions
    assert len(txns) == 15
    assert sum((t.amount for t in txns), Decimal(0)) == Decimal("217.70")
    [payment] = [t for t in txns if t.subtype is S.PAYMENT]
    assert (payment.date, payment.amount) == (date(2025, 4, 17), Decimal("850.00"))
    assert payment.description == "AUTOMATIC PAYMENT - THANK"
    assert payment.provider_transaction_id == "GEN20250417AUTOMATIC_PAYME00000"
    [refund] = [t for t in txns if t.subtype is S.REFUND]
    assert (refund.date, refund.amount) == (date(2025, 4, 7), Decimal("64.19"))
    [fee] = [t for t in txns if t.type is T.FEE]
    assert fee.amount == Decimal("-95.00")
    purchases = [t for t in txns if t.subtype is S.PURCHASE]
    assert len(purchases) == 12
    assert all(t.amount < 0 for t in purchases)
    assert all(len(t.provider_transaction_id) == 31 for t in purchases)
    assert Counter(t.provider_transaction_id for t in txns).most_common(1)[0][1] == 1


def test_checking_csv_chains_to_the_qfx_ledger() -> None:
    statement = parse("checking.csv", "Chase9876_Activity_20250430.CSV")
    assert statement.format == "csv-checking"
    [account] = statement.accounts
    assert account.provider_account_id == "csv:checking:9876"
    assert account.type is AccountType.CHECKING
    assert account.balance_current == Decimal("7623.24")
    txns = statement.transactions
    assert len(txns) == 20
    assert (statement.start, statement.end) == (date(2025, 3, 12), date(2025, 4, 28))
    # the 20 CSV rows are the newest 20 of the 25 QFX transactions: same dates and amounts
    qfx = parse("checking.qfx").transactions[:20]
    assert [(t.date, t.amount) for t in txns] == [(t.date, t.amount) for t in qfx]
    assert [t.subtype for t in txns] == [t.subtype for t in qfx]
    rows = [
        line.split(",") for line in (FIXTURES / "checking.csv").read_text().splitlines()[1:] if line
    ]
    balances = [Decimal(row[-3]) for row in rows]
    for index in range(len(txns) - 1):  # newest first: balance[i] = balance[i+1] + amount[i]
        assert balances[index] == balances[index + 1] + txns[index].amount
    assert txns[0].description == "WHOLE FOODS PDX 10243 PORTLAND OR 04/27"  # padding collapsed
    assert len({t.dedupe_key for t in txns}) == 20
    assert all(t.dedupe_key.startswith("csv:") for t in txns)


def test_credit_card_csv_sum_reaches_the_ledger() -> None:
    statement = parse("credit_card.csv", "Chase9876_Activity20250430.CSV")
    assert statement.format == "csv-card"
    [account] = statement.accounts
    assert account.provider_account_id == "csv:card:9876"
    assert account.type is AccountType.CREDIT_CARD
    assert account.balance_current is None  # the card CSV has no balance column
    txns = statement.transactions
    assert len(txns) == 20
    total = sum((t.amount for t in txns), Decimal(0))
    assert total == Decimal("1068.05")
    assert Decimal("-1204.37") + total == Decimal("-136.32")  # the QFX LEDGERBAL
    payments = [t for t in txns if t.subtype is S.PAYMENT]
    assert [t.amount for t in payments] == [Decimal("850.00"), Decimal("1204.37")]
    [refund] = [t for t in txns if t.subtype is S.REFUND]
    assert (refund.date, refund.amount) == (date(2025, 4, 6), Decimal("64.19"))  # transaction date
    # the 15 QFX items are in the CSV (matched by amount; dates differ: post vs transaction date)
    qfx_amounts = Counter(t.amount for t in parse("credit_card.qfx").transactions)
    assert not qfx_amounts - Counter(t.amount for t in txns)


def test_read_ofx_keeps_raw_fields() -> None:
    [statement] = read_ofx((FIXTURES / "checking.qfx").read_bytes()).unwrap()
    assert statement.account.bankid == "021000021"
    assert statement.account.accttype == "CHECKING"
    checks = [t for t in statement.transactions if t.trntype == "CHECK"]
    assert [t.checknum for t in checks] == ["1043", "1042"]
    assert statement.end is not None
    assert statement.end.ledger is not None
    assert statement.end.ledger.amount == Decimal("7623.24")
    names = [t.name for t in statement.transactions]
    assert all(len(name) <= 32 for name in names)
