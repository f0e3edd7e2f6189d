"""Engine construction for both deployment shapes.

* SQLite (embedded default, ``sqlite+aiosqlite:///path``): the parent directory is created, the
  database runs in WAL mode with ``foreign_keys=ON`` and a ``busy_timeout``; transactions start
  with ``BEGIN IMMEDIATE`` so concurrent writers queue on the write lock instead of failing
  with "database is locked" when a reader upgrades (and SAVEPOINT works).
* PostgreSQL (scaled, ``postgresql+asyncpg://``): an asyncpg connection pool with pre-ping.

Plain ``sqlite://`` and ``postgresql://`` / ``postgres://`` URLs get the async driver added.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Any

from sqlalchemy import event
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWorkFactory

#: Milliseconds a SQLite connection waits for the write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000


def normalize_url(url: str | URL) -> URL:
    """Return ``url`` with the async driver (aiosqlite / asyncpg) filled in.

    Args:
        url: a database URL such as ``sqlite:///var/dashtam.db`` or ``postgresql://u@h/db``.

    Raises:
        ValueError: for a database other than SQLite or PostgreSQL.
    """
    parsed = make_url(url)
    backend = parsed.get_backend_name()
    if backend == "sqlite":
        return parsed.set(drivername="sqlite+aiosqlite")
    if backend in ("postgresql", "postgres"):
        return parsed.set(drivername="postgresql+asyncpg")
    raise ValueError(f"unsupported database {backend!r}: use sqlite or postgresql")


def _sqlite_path(url: URL) -> Path | None:
    database = url.database
    if not database or database == ":memory:" or database.startswith("file:"):
        return None
    return Path(database)


def _configure_sqlite(engine: AsyncEngine) -> None:
    @event.listens_for(engine.sync_engine, "connect")
    def _on_connect(dbapi_connection: Any, _record: Any) -> None:
        # Let SQLAlchemy (not the driver) decide where transactions begin.
        dbapi_connection.isolation_level = None
        cursor = dbapi_connection.cursor()
        cursor.execute(f"PRAGMA busy_timeout={SQLITE_BUSY_TIMEOUT_MS}")
        cursor.execute("PRAGMA foreign_keys=ON")
        cursor.execute("PRAGMA journal_mode")
        if str(cursor.fetchone()[0]).lower() != "wal":
            # WAL is persistent in the file, so this runs once per database. Switching needs
            # an exclusive lock and SQLite may refuse at once (no busy wait) while another
            # connection opens the file; then a later connection makes the switch.
            try:
                cursor.execute("PRAGMA journal_mode=WAL")
            except sqlite3.OperationalError as exc:
                if "locked" not in str(exc):
                    raise
        cursor.execute("PRAGMA synchronous=NORMAL")
        cursor.close()

    @event.listens_for(engine.sync_engine, "begin")
    def _on_begin(connection: Any) -> None:
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def create_engine(
    url: str | URL,
    *,
    echo: bool = False,
    pool_size: int = 10,
    max_overflow: int = 10,
) -> AsyncEngine:
    """Create the async engine for ``url`` (SQLite via aiosqlite or PostgreSQL via asyncpg).

    Args:
        url: the database URL (see :func:`normalize_url`).
        echo: log every statement (debugging).
        pool_size: PostgreSQL pool size.
        max_overflow: PostgreSQL connections allowed beyond ``pool_size``.

    Returns:
        The engine; dispose it with ``await engine.dispose()``.
    """
    parsed = normalize_url(url)
    if parsed.get_backend_name() == "sqlite":
        path = _sqlite_path(parsed)
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
        engine = create_async_engine(parsed, echo=echo)
        _configure_sqlite(engine)
        return engine
    return create_async_engine(
        parsed,
        echo=echo,
        pool_size=pool_size,
        max_overflow=max_overflow,
        pool_pre_ping=True,
    )


__all__ = [
    "SQLITE_BUSY_TIMEOUT_MS",
    "SqlAlchemyUnitOfWorkFactory",
    "create_engine",
    "normalize_url",
]
