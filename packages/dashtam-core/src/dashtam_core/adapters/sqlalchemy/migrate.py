"""Run the Alembic migrations shipped inside dashtam-core (no ``alembic.ini`` needed).

Revisions live in ``dashtam_core/adapters/sqlalchemy/migrations/versions`` and form one chain
(``0001_initial`` → ``0002_financial_data`` → ...). Upgrades use ``heads`` semantics so a
library user's extra branch is applied too.

Example:
    >>> import asyncio
    >>> from dashtam_core.adapters.sqlalchemy.migrate import upgrade
    >>> asyncio.run(upgrade("sqlite+aiosqlite:///var/dashtam.db"))  # doctest: +SKIP
"""

from __future__ import annotations

import asyncio
import importlib
import pkgutil
import threading
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import MetaData, text
from sqlalchemy.engine import URL, Connection

from dashtam_core.adapters.sqlalchemy.base import metadata
from dashtam_core.adapters.sqlalchemy.engine import create_engine, normalize_url

#: The directory holding env.py, script.py.mako and versions/.
MIGRATIONS_DIR = Path(__file__).resolve().parent / "migrations"

#: The package whose ``tables*`` modules define the schema (``tables``, ``tables_data``, ...).
TABLES_PACKAGE = "dashtam_core.adapters.sqlalchemy"


def table_modules() -> list[str]:
    """Return the names of every ``tables*`` module of :data:`TABLES_PACKAGE`, sorted."""
    package = importlib.import_module(TABLES_PACKAGE)
    return sorted(
        f"{TABLES_PACKAGE}.{info.name}"
        for info in pkgutil.iter_modules(package.__path__)
        if info.name.startswith("tables")
    )


def target_metadata() -> MetaData:
    """Import every table module and return the shared metadata (Alembic's target)."""
    for name in table_modules():
        importlib.import_module(name)
    return metadata


def alembic_config(database_url: str | URL | None = None) -> Config:
    """Build the Alembic :class:`Config` for the shipped migrations.

    Args:
        database_url: put into ``sqlalchemy.url`` (with the async driver) when given.
    """
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS_DIR))
    cfg.set_main_option("path_separator", "os")
    if database_url is not None:
        url = normalize_url(database_url).render_as_string(hide_password=False)
        cfg.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return cfg


def heads() -> list[str]:
    """Return the head revision ids of the shipped migrations, sorted."""
    return sorted(ScriptDirectory.from_config(alembic_config()).get_heads())


#: Key of the PostgreSQL advisory lock that serializes migrations across processes.
MIGRATION_LOCK_KEY = 0x64617368_74616D  # "dashtam"


#: Alembic keeps its running context in module globals, so one process runs one command at a time.
_PROCESS_LOCK = threading.Lock()


async def _run(
    database_url: str | URL, action: str, revision: str, *, only_if_behind: bool = False
) -> bool:
    """Run one Alembic command in one transaction, serialized within and across processes.

    The command runs in a worker thread with its own event loop, under a process-wide lock
    (Alembic's context is global). Across processes, PostgreSQL takes a transaction-scoped
    advisory lock and SQLite's ``BEGIN IMMEDIATE`` (see :mod:`.engine`) holds the write lock.
    With ``only_if_behind`` the current revision is read under those locks, so concurrent
    starters migrate once.
    """
    cfg = alembic_config(database_url)
    targets = heads() if only_if_behind else []

    def _apply(connection: Connection) -> bool:
        if connection.dialect.name == "postgresql":
            lock = text("SELECT pg_advisory_xact_lock(:key)")
            connection.execute(lock, {"key": MIGRATION_LOCK_KEY})
        if only_if_behind:
            at = sorted(MigrationContext.configure(connection).get_current_heads())
            if at == targets:
                return False
        cfg.attributes["connection"] = connection
        if action == "upgrade":
            command.upgrade(cfg, revision)
        else:
            command.downgrade(cfg, revision)
        return True

    async def _in_own_loop() -> bool:
        engine = create_engine(database_url)
        try:
            async with engine.begin() as conn:
                return await conn.run_sync(_apply)
        finally:
            await engine.dispose()

    def _serialized() -> bool:
        with _PROCESS_LOCK:
            return asyncio.run(_in_own_loop())

    return await asyncio.to_thread(_serialized)


async def upgrade(database_url: str | URL, revision: str = "heads") -> None:
    """Upgrade the database to ``revision`` (default: every head), in one transaction.

    Args:
        database_url: SQLite or PostgreSQL URL.
        revision: the target revision.
    """
    await _run(database_url, "upgrade", revision)


async def downgrade(database_url: str | URL, revision: str = "base") -> None:
    """Downgrade the database to ``revision`` (default: drop everything the migrations made).

    Args:
        database_url: SQLite or PostgreSQL URL.
        revision: the target revision.
    """
    await _run(database_url, "downgrade", revision)


async def current(database_url: str | URL) -> list[str]:
    """Return the revision ids the database is at (empty if never migrated), sorted."""
    engine = create_engine(database_url)

    def _heads(connection: Connection) -> list[str]:
        return sorted(MigrationContext.configure(connection).get_current_heads())

    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_heads)
    finally:
        await engine.dispose()


async def ensure_schema(database_url: str | URL) -> bool:
    """Upgrade to the heads unless the database is already there (safe to race).

    Returns:
        True if migrations ran.
    """
    if await current(database_url) == heads():
        return False
    return await _run(database_url, "upgrade", "heads", only_if_behind=True)


__all__ = [
    "MIGRATIONS_DIR",
    "MIGRATION_LOCK_KEY",
    "TABLES_PACKAGE",
    "alembic_config",
    "current",
    "downgrade",
    "ensure_schema",
    "heads",
    "table_modules",
    "target_metadata",
    "upgrade",
]
