"""Alembic environment for Dashtam (async-capable, no alembic.ini needed).

:mod:`dashtam_core.adapters.sqlalchemy.migrate` runs migrations programmatically: it opens an
async connection and passes its sync facade in ``config.attributes["connection"]``. When that
is absent (``alembic -x url=... upgrade heads`` with a hand-written ini), this script opens its
own async engine from ``sqlalchemy.url`` and runs the migrations through ``run_sync``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from dashtam_core.adapters.sqlalchemy.migrate import target_metadata

config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata(),
        compare_type=True,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_async(url: str) -> None:
    from dashtam_core.adapters.sqlalchemy.engine import create_engine

    engine = create_engine(url)
    try:
        async with engine.begin() as conn:
            await conn.run_sync(_run)
    finally:
        await engine.dispose()


def _run_offline(url: str) -> None:
    context.configure(url=url, target_metadata=target_metadata(), literal_binds=True)
    with context.begin_transaction():
        context.run_migrations()


def main() -> None:
    """Run the migrations alembic asked for."""
    connection = config.attributes.get("connection")
    url = config.get_main_option("sqlalchemy.url") or ""
    if context.is_offline_mode():
        _run_offline(url)
    elif connection is not None:
        _run(connection)
    else:
        asyncio.run(_run_async(url))


main()
