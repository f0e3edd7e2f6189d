"""Engine construction for both deployment shapes.

* SQLite (embedded default, ``sqlite+aiosqlite:///path``): the parent directory is created, the
  database runs in WAL mode with ``foreign_keys=ON`` and a ``busy_timeout``; transactions start
  with ``BEGIN IMMEDIATE`` so concurrent writers queue on the write lock instead of failing
  with "database is locked" when a reader upgrades (and SAVEPOINT works).
* PostgreSQL (scaled, ``postgresql+asyncpg://``): an asyncpg connection pool. A connection that
  sat idle in the pool for more than :data:`PING_AFTER_IDLE_SECONDS` is pinged before use (a dead
  one is replaced transparently); a busy pool hands connections out without the extra round trips
  of a ping on every checkout.

:func:`read_engine` gives the same pool in autocommit mode for single-statement reads: no
``BEGIN``/``ROLLBACK`` round trips on PostgreSQL, and no write lock on SQLite.

Plain ``sqlite://`` and ``postgresql://`` / ``postgres://`` URLs get the async driver added.
"""

from __future__ import annotations

import sqlite3
import time
from pathlib import Path
from typing import Any

from sqlalchemy import event, exc
from sqlalchemy.engine import URL, make_url
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from dashtam_core.adapters.sqlalchemy.unit_of_work import SqlAlchemyUnitOfWorkFactory

#: Milliseconds a SQLite connection waits for the write lock before giving up.
SQLITE_BUSY_TIMEOUT_MS = 30_000
#: A pooled PostgreSQL connection idle for longer than this is pinged before it is handed out.
PING_AFTER_IDLE_SECONDS = 5.0
_AUTOCOMMIT = "AUTOCOMMIT"


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
        if connection.get_execution_options().get("isolation_level") == _AUTOCOMMIT:
            return  # a read_engine() connection: each statement is its own read transaction
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _configure_idle_ping(engine: AsyncEngine, idle_seconds: float) -> None:
    """Ping a pooled connection on checkout only when it has been idle for ``idle_seconds``."""

    @event.listens_for(engine.sync_engine, "checkin")
    def _on_checkin(_dbapi_connection: Any, record: Any) -> None:
        record.info["idle_since"] = time.monotonic()

    @event.listens_for(engine.sync_engine, "checkout")
    def _on_checkout(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        since = record.info.get("idle_since")
        if since is None or time.monotonic() - since <= idle_seconds:
            return
        try:
            engine.sync_engine.dialect.do_ping(dbapi_connection)
        except Exception as error:  # the server went away: the pool replaces this connection
            raise exc.DisconnectionError(str(error)) from error


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
    engine = create_async_engine(parsed, echo=echo, pool_size=pool_size, max_overflow=max_overflow)
    _configure_idle_ping(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def read_engine(engine: AsyncEngine) -> AsyncEngine:
    """``engine`` in autocommit mode, sharing its pool: for reads of one statement.

    Each statement runs in its own implicit transaction, so a read costs exactly its own round
    trip on PostgreSQL (no ``BEGIN``/``ROLLBACK``) and takes no write lock on SQLite. Reads of
    several statements that must see one snapshot keep using ``engine`` itself.

    Args:
        engine: an engine from :func:`create_engine`.

    Returns:
        The autocommit view of ``engine`` (build it once and keep it).
    """
    return engine.execution_options(isolation_level=_AUTOCOMMIT)


__all__ = [
    "PING_AFTER_IDLE_SECONDS",
    "SQLITE_BUSY_TIMEOUT_MS",
    "SqlAlchemyUnitOfWorkFactory",
    "create_engine",
    "normalize_url",
    "read_engine",
]
