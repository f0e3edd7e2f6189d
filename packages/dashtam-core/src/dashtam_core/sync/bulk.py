"""PostgreSQL bulk rows as arrays: ``INSERT ... SELECT * FROM unnest($1::uuid[], $2::text[], ...)``.

One statement carries a whole batch in one parameter per column, so the server parses a short
statement once and the driver encodes each column as one binary array (the closest thing to
``COPY`` that still allows ``ON CONFLICT`` and ``RETURNING``). Values must already be in the
column's native form (UUID, Decimal, date, aware datetime, str).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import Date, Integer, Numeric, Select, Table, Text, bindparam, func, select
from sqlalchemy.dialects import postgresql
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


__all__ = ["unnest_select"]
