"""Pytest fixtures that run a test on both databases, each in a database of its own.

Register with ``pytest_plugins = ["dashtam_core.testing.databases"]``. Fixtures:

* ``database_url`` — parametrized over ``sqlite`` (a file in ``tmp_path``) and ``postgresql``
  (a fresh ``dashtam_test_<random>`` database created through ``DASHTAM_TEST_POSTGRES_URL``
  and dropped afterwards). Without that variable the PostgreSQL case is skipped, unless
  ``DASHTAM_TEST_REQUIRE_SERVICES=1``, which turns the skip into a failure.
* ``database_kind`` — the parameter itself (``"sqlite"`` / ``"postgresql"``).
* ``migrated_url`` — a database of its own at ``alembic upgrade heads`` (PostgreSQL: copied
  from a template database migrated once per session, dropped at session end).
* ``engine`` — an :class:`~sqlalchemy.ext.asyncio.AsyncEngine` on the migrated database.
* ``uow_factory`` — a :class:`SqlAlchemyUnitOfWorkFactory` on that engine.

:func:`make_postgres_database` is the same throwaway database as an async context manager, for
benchmarks and tests that need one outside the fixtures.
"""

from __future__ import annotations

import asyncio
import os
import secrets
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
import pytest_asyncio
from sqlalchemy.engine import URL
from sqlalchemy.exc import DBAPIError
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


async def _execute_on_server(server_url: URL, *statements: str) -> None:
    admin = create_async_engine(server_url, isolation_level="AUTOCOMMIT", poolclass=NullPool)
    try:
        async with admin.connect() as conn:
            for statement in statements:
                await conn.exec_driver_sql(statement)
    finally:
        await admin.dispose()


def _database_url(server_url: URL, name: str) -> str:
    return server_url.set(database=name).render_as_string(hide_password=False)


@asynccontextmanager
async def make_postgres_database(
    server_url: str | None = None, *, template: str | None = None
) -> AsyncIterator[str]:
    """Create a fresh ``dashtam_test_<random>`` database; drop it (WITH FORCE) on exit.

    Args:
        server_url: a URL of any database on the server (default: ``DASHTAM_TEST_POSTGRES_URL``).
        template: copy this database (``CREATE DATABASE ... TEMPLATE``) instead of ``template1``.

    Yields:
        The ``postgresql+asyncpg://`` URL of the new database.
    """
    admin_url = normalize_url(server_url or os.environ[POSTGRES_URL_ENV])
    name = f"dashtam_test_{secrets.token_hex(6)}"
    suffix = f' TEMPLATE "{template}"' if template else ""
    for attempt in range(50):
        try:
            await _execute_on_server(admin_url, f'CREATE DATABASE "{name}"{suffix}')
            break
        except DBAPIError as exc:
            # A template's last session may still be exiting on the server; wait for it.
            if not template or "being accessed by other users" not in str(exc) or attempt == 49:
                raise
            await asyncio.sleep(0.1)
    try:
        yield _database_url(admin_url, name)
    finally:
        await _execute_on_server(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


#: Per-process migrated template databases, by server URL (dropped at session end).
_TEMPLATES: dict[str, str] = {}


async def migrated_postgres_template(server_url: str) -> str:
    """Return the name of this process's migrated template database on ``server_url``.

    It is created and upgraded to the heads once per test session, so each test's database is
    a quick ``CREATE DATABASE ... TEMPLATE`` copy instead of a full migration.
    """
    name = _TEMPLATES.get(server_url)
    if name is not None:
        return name
    admin_url = normalize_url(server_url)
    name = f"dashtam_test_tmpl_{secrets.token_hex(6)}"
    await _execute_on_server(admin_url, f'CREATE DATABASE "{name}"')
    try:
        await upgrade(_database_url(admin_url, name))
    except BaseException:
        await _execute_on_server(admin_url, f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        raise
    _TEMPLATES[server_url] = name
    return name


async def drop_postgres_templates() -> None:
    """Drop the template databases made by :func:`migrated_postgres_template`."""
    while _TEMPLATES:
        server_url, name = _TEMPLATES.popitem()
        await _execute_on_server(
            normalize_url(server_url), f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'
        )


def sqlite_url(path: Path) -> str:
    """Return the aiosqlite URL of the database file ``path``."""
    return f"sqlite+aiosqlite:///{path}"


def pytest_configure(config: pytest.Config) -> None:
    """Declare the ``postgres`` marker (for ``--strict-markers`` outside this repository)."""
    config.addinivalue_line("markers", "postgres: needs PostgreSQL (DASHTAM_TEST_POSTGRES_URL)")


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    """Drop this process's PostgreSQL template databases."""
    if _TEMPLATES:
        asyncio.run(drop_postgres_templates())


@pytest.fixture(
    params=[
        pytest.param("sqlite", id="sqlite"),
        pytest.param("postgresql", id="postgresql", marks=pytest.mark.postgres),
    ]
)
def database_kind(request: pytest.FixtureRequest) -> str:
    """``"sqlite"`` or ``"postgresql"``: the database under test (parametrizes its users)."""
    kind: str = request.param
    return kind


@pytest_asyncio.fixture
async def database_url(database_kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """An empty database of its own: a SQLite file, or a fresh PostgreSQL database."""
    if database_kind == "sqlite":
        yield sqlite_url(tmp_path / "dashtam.db")
        return
    async with make_postgres_database(postgres_url_or_skip()) as url:
        yield url


@pytest_asyncio.fixture
async def migrated_url(database_kind: str, tmp_path: Path) -> AsyncIterator[str]:
    """A database of its own at every migration head.

    SQLite: a file in ``tmp_path`` upgraded with ``alembic upgrade heads``. PostgreSQL: a copy
    of a template database migrated once per session. It is not the ``database_url`` database:
    a test uses one or the other.
    """
    if database_kind == "sqlite":
        url = sqlite_url(tmp_path / "dashtam.db")
        await upgrade(url)
        yield url
        return
    server = postgres_url_or_skip()
    template = await migrated_postgres_template(server)
    async with make_postgres_database(server, template=template) as url:
        yield url


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
    "database_kind",
    "database_url",
    "drop_postgres_templates",
    "engine",
    "make_postgres_database",
    "migrated_postgres_template",
    "migrated_url",
    "postgres_url_or_skip",
    "services_required",
    "sqlite_url",
    "uow_factory",
]
