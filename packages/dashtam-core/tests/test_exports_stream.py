"""The streamed transaction exports against plain-Python oracles, on SQLite and PostgreSQL.

CSV is checked byte for byte against :func:`csv.writer` over the expected cells, JSON against
one ``orjson.dumps`` of the expected API objects, OFX by parsing it: every filter shape and
batch size (keyset batches from 1 row up, over several accounts, with ties on the date), with
text that needs quoting or escaping, security legs, exponent-form decimals, removed rows and
another user's rows. The CSV fast path (a plain join, checked by counting separators) is also
compared with :func:`csv.writer` on arbitrary text.
"""

from __future__ import annotations

import asyncio
import csv
import io
import random
import xml.etree.ElementTree as ET
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncEngine

from dashtam_core.adapters.sqlalchemy.tables_data import transactions
from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWork
from dashtam_core.application import exports
from dashtam_core.application.queries import TransactionFilter
from dashtam_core.application.transaction_pages import ApiRow
from dashtam_core.domain.account import Account, AccountType
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.transaction import TransactionStatus, TransactionType
from dashtam_core.testing.oracles import expected_transactions
from dashtam_core.testing.seeding import seed_connection, seed_user

START = date(2025, 1, 1)
PLAIN = ("Coffee shop", "RENT MARCH", "Payroll")
SPECIAL = (
    "Rent, March",
    'The "best" deli',
    "two\nlines",
    "crlf\r\nend",
    "tab\there <&> é€",
    "ctrl \x01 char\\",
    "  spaced  ",
)
MERCHANTS = (None, "", "Blue Bottle", "A, B & Co", '"Q"')
AMOUNTS = (
    Decimal("-12.34"),
    Decimal("100.10"),
    Decimal("1E+2"),
    Decimal("0.00000001"),
    Decimal("-5000"),
    Decimal("0"),
)
ACCOUNT_TYPES = (AccountType.CHECKING, AccountType.CREDIT_CARD, AccountType.BROKERAGE)


async def _seed(engine: AsyncEngine) -> tuple[UUID, list[UUID], UUID, list[dict[str, Any]]]:
    """Two users; the first has three accounts (bank, card, brokerage), the second one."""
    now = datetime.now(UTC)
    rng = random.Random(5)
    owned: dict[UUID, list[UUID]] = {}
    async with SqlAlchemyUnitOfWork(engine) as uow:
        for index, count in enumerate((3, 1)):
            user = await seed_user(uow)
            conn = await seed_connection(uow, user.id, provider="chase")
            owned[user.id] = []
            for n in range(count):
                account = Account(
                    uuid7(), conn.id, user.id, "chase", f"acct-{index}-{n}", f"Account {n}",
                    ACCOUNT_TYPES[n], "USD", now, balance_current=Decimal("10.50"),
                )  # fmt: skip
                await uow.accounts.add(account)
                owned[user.id].append(account.id)
        await uow.commit()
    (me, mine), (_, theirs) = owned.items()
    rows: list[dict[str, Any]] = []
    pending: UUID | None = None
    for account_id in [*mine, *theirs]:
        for i in range(23):
            leg = rng.random() < 0.3
            ident = uuid7()
            rows.append(
                {
                    "id": ident,
                    "account_id": account_id,
                    "provider_transaction_id": rng.choice((f"p-{i}", f'p-{i}-"q"', f"p-{i},x")),
                    "dedupe_key": f"d-{account_id}-{i}",
                    "date": START + timedelta(days=rng.randrange(5)),  # ties on the date
                    "posted_at": rng.choice(
                        (
                            None,
                            datetime(2025, 1, 2, 3, 4, 5, tzinfo=UTC),
                            now.replace(microsecond=7),
                        )
                    ),
                    "amount": rng.choice(AMOUNTS),
                    "currency": "USD",
                    "description": rng.choice(SPECIAL if rng.random() < 0.15 else PLAIN),
                    "merchant": rng.choice(MERCHANTS if rng.random() < 0.3 else (None,)),
                    "type": str(rng.choice((TransactionType.OTHER, TransactionType.TRANSFER))),
                    "subtype": rng.choice(("other", "purchase", "interest", "deposit")),
                    "status": str(
                        rng.choice((TransactionStatus.POSTED, TransactionStatus.PENDING))
                    ),
                    "pending_transaction_id": pending if rng.random() < 0.2 else None,
                    "security_symbol": "AAPL" if leg else None,
                    "security_quantity": rng.choice((Decimal("1.5"), None)) if leg else None,
                    "security_price": rng.choice((Decimal("0E-8"), Decimal("187.2"))),
                    "content_hash": "0" * 64,
                    "created_at": now,
                    "updated_at": now,
                    "removed_at": now if rng.random() < 0.1 else None,
                }
            )
            pending = ident
    async with engine.begin() as conn:
        await conn.execute(insert(transactions), rows)
    return me, mine, theirs[0], [r for r in rows if r["account_id"] in mine]


def _expected(rows: list[dict[str, Any]], flt: TransactionFilter) -> list[dict[str, Any]]:
    return [dict(r) for r in expected_transactions(rows, flt)]


def _money(value: Decimal | None) -> str | None:
    return None if value is None else format(value, "f")


def _api_object(r: dict[str, Any]) -> dict[str, Any]:
    """The API's transaction object (api.md), built field by field."""
    leg = None
    if r["security_symbol"] is not None:
        leg = {
            "symbol": r["security_symbol"],
            "quantity": _money(r["security_quantity"]),
            "price": _money(r["security_price"]),
        }
    posted = r["posted_at"]
    return {
        "id": str(r["id"]),
        "account_id": str(r["account_id"]),
        "provider_transaction_id": r["provider_transaction_id"],
        "date": r["date"].isoformat(),
        "posted_at": None if posted is None else posted.isoformat().replace("+00:00", "Z"),
        "amount": format(r["amount"], "f"),
        "currency": r["currency"],
        "description": r["description"],
        "merchant": r["merchant"],
        "type": r["type"],
        "subtype": r["subtype"],
        "status": r["status"],
        "pending_transaction_id": (
            None if r["pending_transaction_id"] is None else str(r["pending_transaction_id"])
        ),
        "security": leg,
    }


def _cells(obj: dict[str, Any]) -> list[str]:
    leg = obj["security"] or {}
    return [
        obj["id"],
        obj["account_id"],
        obj["date"],
        obj["posted_at"] or "",
        obj["amount"],
        obj["currency"],
        obj["description"],
        obj["merchant"] or "",
        obj["type"],
        obj["subtype"],
        obj["status"],
        obj["provider_transaction_id"],
        obj["pending_transaction_id"] or "",
        leg.get("symbol") or "",
        leg.get("quantity") or "",
        leg.get("price") or "",
    ]


def _csv_oracle(objects: Sequence[dict[str, Any]]) -> bytes:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(exports.CSV_COLUMNS)
    writer.writerows(_cells(o) for o in objects)
    return buffer.getvalue().encode("utf-8")


async def _body(engine: AsyncEngine, user: UUID, fmt: str, flt: TransactionFilter, n: int) -> bytes:
    chunks = [c async for c in exports.export_stream(engine, user, fmt, flt, batch_rows=n)]
    assert all(isinstance(c, bytes) for c in chunks)
    return b"".join(chunks)


def _filters(mine: list[UUID], foreign: UUID) -> list[TransactionFilter]:
    rng = random.Random(13)
    found = [TransactionFilter(), TransactionFilter(account_id=mine[1])]
    for _ in range(12):
        found.append(
            TransactionFilter(
                account_id=rng.choice([None, None, *mine, foreign]),
                start=rng.choice([None, START + timedelta(days=rng.randrange(5))]),
                end=rng.choice([None, START + timedelta(days=rng.randrange(5))]),
                type=rng.choice([None, TransactionType.OTHER, TransactionType.TRANSFER]),
                status=rng.choice([None, TransactionStatus.POSTED]),
                q=rng.choice([None, None, "rent", '"', "_", "%", "bottle"]),
            )
        )
    return found


@pytest.mark.asyncio
async def test_csv_and_json_match_the_oracles_for_every_filter_and_batch(
    engine: AsyncEngine,
) -> None:
    me, mine, foreign, rows = await _seed(engine)
    rng = random.Random(17)
    for flt in _filters(mine, foreign):
        objects = [_api_object(r) for r in _expected(rows, flt)]
        batch = rng.choice((1, 2, 7, 64, exports.BATCH_ROWS))
        as_json = await _body(engine, me, "json", flt, batch)
        assert as_json == orjson.dumps({"data": objects}), (flt, batch)
        as_csv = await _body(engine, me, "csv", flt, batch)
        assert as_csv == _csv_oracle(objects), (flt, batch)
    # More rows than one chunk, in both formats and with the default batch size.
    assert (await _body(engine, me, "csv", TransactionFilter(), exports.BATCH_ROWS)).count(
        b"\r\n"
    ) >= len(_expected(rows, TransactionFilter()))


@pytest.mark.asyncio
async def test_ofx_has_one_statement_per_account_with_its_rows(engine: AsyncEngine) -> None:
    me, mine, _, rows = await _seed(engine)
    body = await _body(engine, me, "ofx", TransactionFilter(), 3)
    assert body.startswith(b'<?xml version="1.0" encoding="UTF-8" standalone="no"?>\n<?OFX ')
    root = ET.fromstring(body)
    statements = {tag: root.findall(f".//{tag}") for tag in ("STMTRS", "CCSTMTRS", "INVSTMTRS")}
    assert {tag: len(found) for tag, found in statements.items()} == {
        "STMTRS": 1,
        "CCSTMTRS": 1,
        "INVSTMTRS": 1,
    }
    for tag, account_id in zip(("STMTRS", "CCSTMTRS", "INVSTMTRS"), mine, strict=True):
        expected = _expected(rows, TransactionFilter(account_id=account_id))
        found = statements[tag][0].findall(".//STMTTRN")
        assert [t.findtext("FITID") for t in found] == [str(r["id"]) for r in expected]
        assert [t.findtext("TRNAMT") for t in found] == [format(r["amount"], "f") for r in expected]
        assert [t.findtext("DTPOSTED") for t in found] == [f"{r['date']:%Y%m%d}" for r in expected]
        names = [t.findtext("NAME") for t in found]
        assert names == [_ofx_name(r["description"]) for r in expected]
        kinds = [t.findtext("TRNTYPE") for t in found]
        assert kinds == [_ofx_kind(r) for r in expected]
    card = statements["CCSTMTRS"][0]
    assert card.findtext("LEDGERBAL/BALAMT") == "-10.50"  # owed on a card: negative
    one = await _body(engine, me, "ofx", TransactionFilter(account_id=mine[0]), 1000)
    assert ET.fromstring(one).findall(".//CCSTMTRS") == []


def _ofx_name(text: str) -> str:
    """Whitespace runs as one space, no XML-invalid control character, at most 32 characters."""
    kept = "".join(c for c in text if not ("\x00" <= c <= "\x08" or "\x0e" <= c <= "\x1b"))
    return " ".join(kept.split())[:32] or "-"


def _ofx_kind(row: dict[str, Any]) -> str:
    named = {"purchase": "POS", "interest": "INT", "deposit": "DEP"}
    return named.get(row["subtype"]) or ("CREDIT" if row["amount"] >= 0 else "DEBIT")


@pytest.mark.asyncio
async def test_another_users_account_gives_empty_exports(engine: AsyncEngine) -> None:
    me, _, foreign, _ = await _seed(engine)
    flt = TransactionFilter(account_id=foreign)
    assert await _body(engine, me, "json", flt, 10) == b'{"data":[]}'
    assert await _body(engine, me, "csv", flt, 10) == _csv_oracle([])
    assert b"STMTTRN" not in await _body(engine, me, "ofx", flt, 10)


@pytest.mark.asyncio
async def test_closing_the_stream_early_leaves_nothing_running(engine: AsyncEngine) -> None:
    me, _, _, _ = await _seed(engine)
    stream = exports.iter_export_rows(engine, me, batch_rows=2)
    first = await anext(stream)
    assert len(first) == 2
    await stream.aclose()  # a read-ahead was in flight: it finished, its result dropped
    assert asyncio.all_tasks() == {asyncio.current_task()}
    body = exports.export_stream(engine, me, "json", batch_rows=1)
    assert await anext(body) == b'{"data":['
    assert (await anext(body)).startswith(b'{"id":')
    await body.aclose()
    assert asyncio.all_tasks() == {asyncio.current_task()}


def test_unknown_format_is_refused_at_once() -> None:
    with pytest.raises(ValueError, match="unknown export format"):
        exports.export_stream(None, uuid7(), "xlsx")  # type: ignore[arg-type]


TEXT = st.text(alphabet=st.sampled_from(list('ab ,"\r\n\t\x00é€\\;x')), max_size=8)


@settings(max_examples=300, deadline=None)
@given(st.lists(st.tuples(TEXT, TEXT, st.one_of(st.none(), TEXT)), max_size=6))
def test_csv_text_is_the_csv_modules_text(cells: list[tuple[str, str, str | None]]) -> None:
    rows = [
        ApiRow(
            f"id-{i}",
            "acct",
            provider,
            date(2025, 1, 2),
            None,
            "-1.50",
            "USD",
            description,
            merchant,
            "other",
            "other",
            "posted",
            None,
            None,
            None,
            None,
        )
        for i, (provider, description, merchant) in enumerate(cells)
    ]
    expected = [
        [
            f"id-{i}",
            "acct",
            "2025-01-02",
            "",
            "-1.50",
            "USD",
            description,
            merchant or "",
            "other",
            "other",
            "posted",
            provider,
            "",
            "",
            "",
            "",
        ]
        for i, (provider, description, merchant) in enumerate(cells)
    ]
    buffer = io.StringIO()
    csv.writer(buffer, lineterminator="\r\n").writerows(expected)
    assert exports.csv_text(rows) == buffer.getvalue()
