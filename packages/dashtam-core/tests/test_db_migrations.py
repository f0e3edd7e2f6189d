"""The shipped Alembic migrations: they match the models (no drift) and go down cleanly."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import Column, Integer, MetaData, inspect
from sqlalchemy.engine import Connection

import dashtam_core
from dashtam_core.adapters.sqlalchemy import migrate
from dashtam_core.adapters.sqlalchemy.engine import create_engine
from dashtam_core.adapters.sqlalchemy.tables import IDENTITY_TABLES


def _diff(connection: Connection, metadata: MetaData) -> list[Any]:
    context = MigrationContext.configure(
        connection, opts={"compare_type": True, "compare_server_default": True}
    )
    return list(compare_metadata(context, metadata))


async def _compare(url: str, metadata: MetaData) -> list[Any]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return await conn.run_sync(_diff, metadata)
    finally:
        await engine.dispose()


async def _table_names(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        async with engine.connect() as conn:
            return set(await conn.run_sync(lambda c: inspect(c).get_table_names()))
    finally:
        await engine.dispose()


async def test_models_and_migrations_do_not_drift(database_url: str) -> None:
    assert await migrate.current(database_url) == []
    await migrate.upgrade(database_url)
    assert await migrate.current(database_url) == migrate.heads()
    metadata = migrate.target_metadata()
    assert await _compare(database_url, metadata) == []

    # The comparison is real: an extra model column is reported as drift.
    altered = MetaData(naming_convention=metadata.naming_convention)
    for table in metadata.sorted_tables:
        table.to_metadata(altered)
    altered.tables["users"].append_column(Column("nickname", Integer(), nullable=True))
    diff = await _compare(database_url, altered)
    assert [d[0] for d in diff] == ["add_column"]
    assert diff[0][3].name == "nickname"


async def test_downgrade_to_base_and_back(database_url: str) -> None:
    await migrate.upgrade(database_url)
    assert {t.name for t in IDENTITY_TABLES} <= await _table_names(database_url)
    await migrate.downgrade(database_url, "base")
    assert await migrate.current(database_url) == []
    assert await _table_names(database_url) <= {"alembic_version"}
    await migrate.upgrade(database_url, "0001_initial")
    assert await migrate.current(database_url) == ["0001_initial"]
    assert await _table_names(database_url) - {"alembic_version"} == {
        t.name for t in IDENTITY_TABLES
    }


async def test_concurrent_ensure_schema_migrates_once(database_url: str) -> None:
    results = await asyncio.gather(*(migrate.ensure_schema(database_url) for _ in range(4)))
    assert sorted(results) == [False, False, False, True]
    assert await migrate.current(database_url) == migrate.heads()


async def test_ensure_schema_migrates_once(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'var' / 'dashtam.db'}"
    assert await migrate.ensure_schema(url) is True
    assert await migrate.ensure_schema(url) is False
    assert await migrate.current(url) == migrate.heads()


def test_revision_chain_starts_at_0001_initial() -> None:
    script = ScriptDirectory.from_config(migrate.alembic_config())
    base = script.get_revision("0001_initial")
    assert base is not None
    assert base.down_revision is None
    assert script.get_bases() == ["0001_initial"]
    assert migrate.heads()
    for head in migrate.heads():
        chain = [rev.revision for rev in script.iterate_revisions(head, "base")]
        assert chain[-1] == "0001_initial"


def test_migrations_ship_inside_the_package() -> None:
    package_dir = Path(dashtam_core.__file__).resolve().parent
    assert migrate.MIGRATIONS_DIR.is_relative_to(package_dir)
    for name in ("env.py", "script.py.mako", "versions/0001_initial.py"):
        assert (migrate.MIGRATIONS_DIR / name).is_file(), name
    cfg = migrate.alembic_config("sqlite:///x.db")
    assert cfg.get_main_option("sqlalchemy.url") == "sqlite+aiosqlite:///x.db"
