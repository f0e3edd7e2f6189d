"""Pytest fixtures that run a test on both databases, each in a database of its own.

Register with ``pytest_plugins = ["dashtam_core.testing.databases"]``. Fixtures:

* ``database_url`` — parametrized over ``sqlite`` (a file in ``tmp_path``) and ``postgresql``
  (a fresh ``dashtam_test_<random>`` database created through ``DASHTAM_TEST_POSTGRES_URL``
  and dropped afterwards). Without that variable the PostgreSQL case is skipped, unless
  ``DASHTAM_TEST_REQUIRE_SERVICES=1``, which turns the skip into a failure.
* ``migrated_url`` — ``database_url`` after ``alembic upgrade heads``.
* ``engine`` — an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` on the migrated database.
* ``uow_factory`` — a :class:`SqlAlchemyUnitOfWorkFactory` on that engine.

:func:`make_postgres_database` is the same throwaway database as an async context manager, for
benchmarks and tests that need one outside the fixtures.
"""

from __future__ import annotations

import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine
from sqlalchemy.pool import NullPool

from dashtam_core.adapters.sqlalchemy.engine import (
    SqlAlchemyUnitOfWorkFactory,
    create_engine,
    normalize_url,
)
from dashtam_core.adapters.sqlalchemy.migrate import upgrade

#: Environment variable with the URL of a PostgreSQL server database to connect through.
POSTGRES_URL_ENV = "DASHTAM_TEST_POSTGRES_URL"
#: Set to ``1`` to fail (not skip) tests whose services are not configured.
REQUIRE_SERVICES_ENV = "DASHTAM_TEST_REQUIRE_SERVICES"
#: The ``database_url`` parameters.
DATABASE_KINDS = ("sqlite", "postgresql")


def services_required() -> bool:
    """Return True when ``DASHTAM_TEST_REQUIRE_SERVICES=1`` (missing services fail tests)."""
    return os.environ.get(REQUIRE_SERVICES_ENV, "").strip() in ("1", "true", "yes")


def postgres_url_or_skip() -> str:
    """Return ``DASHTAM_TEST_POSTGRES_URL`` or skip (fail when services are required)."""
    url = os.environ.get(POSTGRES_URL_ENV, "").strip()
    if url:
        return url
    reason = f"PostgreSQL not configured: set {POSTGRES_URL_ENV}"
    if services_required():
        pytest.fail(f"{reason} ({REQUIRE_SERVICES_ENV}=1)")
    pytest.skip(reason)


@asynccontextmanager
async def make_postgres_database(server_url: str | None = None) -> AsyncIterator[str]:
    """Create a fresh ``dashtam_test_<random>`` database; drop it (WITH FORCE) on exit.

    Args:
        server_url: a URL of any database on the server (default: ``DASHTAM_TEST_POSTGRES_URL``).

    Yields:
        The ``postgresql+asyncpg://`` URL of the new database.
    """
    admin_url = normalize_url(server_url or os.environ[POSTGRES_URL_ENV])
    name = f"dashtam_test_{secrets.token_hex(6)}"
    admin = create_async_engine(admin_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            await conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        try:
            yield admin_url.set(database=name).render_as_string(hide_password=False)
        finally:
            async with admin.connect() as conn:
                await conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.dispose()


def sqlite_url(path: Path) -> str:
    """Return the aiosqlite URL of the database file ``path``."""
    return f"sqlite+aiosqlite:///{path}"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``postgres`` marker (for ``--strict-markers`` outside this repository)."""
    config.addinivalue_line("markers", "postgres: needs PostgreSQL (DASHTAM_TEST_POSTGRES_URL)")


@pytest_asyncio.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own: a SQLite file, or a fresh PostgreSQL database."""
    if request.param == "sqlite":
        yield sqlite_url(tmp_path / "dashtam.db")
        return
    server = postgres_url_or_skip()
    async with make_postgres_database(server) as url:
        yield url


@pytest_asyncio.fixture
async def migrated_url(database_url: str) -> str:
    """``database_url`` upgraded to every migration head."""
    await upgrade(database_url)
    return database_url


@pytest_asyncio.fixture
async def engine(migrated_url: str) -> AsyncIterator[AsyncEngine]:
    """An engine on the migrated database (disposed after the test)."""
    eng = create_engine(migrated_url)
    try:
        yield eng
    finally:
        await eng.dispose()


@pytest_asyncio.fixture
async def uow_factory(engine: AsyncEngine) -> SqlAlchemyUnitOfWorkFactory:
    """A unit-of-work factory on the migrated database."""
    return SqlAlchemyUnitOfWorkFactory(engine)


__all__ = [
    "DATABASE_KINDS",
    "POSTGRES_URL_ENV",
    "REQUIRE_SERVICES_ENV",
    "database_url",
    "engine",
    "make_postgres_database",
    "migrated_url",
    "postgres_url_or_skip",
    "services_required",
    "sqlite_url",
    "uow_factory",
]
