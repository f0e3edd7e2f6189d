"""PostgreSQL bulk rows as arrays: ``INSERT ... SELECT * FROM unnest($1::uuid[], $2::text[], ...)``.

One statement carries a whole batch in one parameter per column, so the server parses a short
statement once and the driver encodes each column as one binary array (the closest thing to
``COPY`` that still allows ``ON CONFLICT`` and ``RETURNING``). Values must already be in the
column's native form (UUID, Decimal, date, aware datetime, str).

:func:`copy_rows` is the bulk path without ``RETURNING``: binary ``COPY`` through the asyncpg
driver, inside a savepoint of the caller's transaction.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any
from uuid import UUID

from sqlalchemy import Date, Integer, Numeric, Select, Table, Text, bindparam, func, select
from sqlalchemy.dialects import postgresql
from sqlalchemy.ext.asyncio import AsyncConnection
from sqlalchemy.types import TypeEngine

from dashtam_core.adapters.sqlalchemy.base import ExactDecimal, UTCDateTime, UUIDType


def _element_type(column_type: TypeEngine[Any]) -> TypeEngine[Any]:
    if isinstance(column_type, UUIDType):
        return postgresql.UUID(as_uuid=True)
    if isinstance(column_type, ExactDecimal):
        return Numeric(asdecimal=True)
    if isinstance(column_type, UTCDateTime):
        return postgresql.TIMESTAMP(timezone=True)
    if isinstance(column_type, Date):
        return Date()
    if isinstance(column_type, Integer):
        return postgresql.BIGINT()
    return Text()


def unnest_select(
    table: Table, columns: Sequence[str], rows: Sequence[dict[str, Any]]
) -> Select[Any]:
    """A ``SELECT`` of ``rows`` (dicts with every key in ``columns``) from one array per column.

    Args:
        table: the target table (for the column types).
        columns: the columns to select, in order.
        rows: the values.

    Returns:
        ``SELECT c1, c2, ... FROM unnest(:c1, :c2, ...) AS src(c1, c2, ...)``, ready for
        ``insert(table).from_select(columns, ...)``.
    """
    params = [
        bindparam(
            f"arr_{name}",
            [row[name] for row in rows],
            type_=postgresql.ARRAY(_element_type(table.c[name].type)),
        )
        for name in columns
    ]
    src = func.unnest(*params).table_valued(*columns).render_derived(name="src")
    return select(*(src.c[name] for name in columns))


async def copy_rows(
    conn: AsyncConnection,
    table: str,
    columns: Sequence[str],
    rows: Iterable[tuple[Any, ...]],
) -> bool:
    """``COPY`` ``rows`` into ``table`` inside a savepoint of the caller's transaction.

    Args:
        conn: a PostgreSQL (asyncpg) connection inside an open transaction that has already
            executed a statement (the engine's advisory lock), so the driver is in it.
        table: the table name.
        columns: the column names, in tuple order.
        rows: the tuples (any iterable; consumed while the data streams).

    Returns:
        True when copied; False on a unique-key conflict (savepoint rolled back).

    Raises:
        Rejected: when ``rows`` raised it (savepoint rolled back). Other errors propagate
        after the savepoint is rolled back.
    """
    from asyncpg.exceptions import UniqueViolationError  # PostgreSQL only: lazy import

    raw = await conn.get_raw_connection()
    driver: Any = raw.driver_connection
    savepoint = await conn.begin_nested()
    try:
        await driver.copy_records_to_table(table, records=rows, columns=list(columns))
    except UniqueViolationError:
        await savepoint.rollback()
        return False
    except BaseException:
        await savepoint.rollback()
        raise
    await savepoint.commit()
    return True


def driver_uuid(value: UUID) -> UUID:
    """``value`` as asyncpg's own UUID type (encoded without a Python call), when available.

    Worth it for a value repeated on every row of a ``COPY``.
    """
    try:
        from asyncpg.pgproto.pgproto import UUID as DriverUUID  # noqa: N811
    except ImportError:  # pragma: no cover - asyncpg is the PostgreSQL driver
        return value
    converted: UUID = DriverUUID(value.bytes)
    return converted


__all__ = ["copy_rows", "driver_uuid", "unnest_select"]
