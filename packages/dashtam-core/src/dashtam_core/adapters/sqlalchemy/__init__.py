"""SQLAlchemy 2 async adapters: tables, mapping, repositories, unit of work, migrations.

Typical use::

    from dashtam_core.adapters.sqlalchemy import SqlAlchemyUnitOfWorkFactory, create_engine
    from dashtam_core.adapters.sqlalchemy.migrate import ensure_schema

    await ensure_schema(url)
    engine = create_engine(url)
    uow_factory = SqlAlchemyUnitOfWorkFactory(engine)
"""

from dashtam_core.adapters.sqlalchemy.base import metadata
from dashtam_core.adapters.sqlalchemy.engine import create_engine, normalize_url
from dashtam_core.adapters.sqlalchemy.repositories import (
    SqlAlchemyAccountRepository,
    SqlAlchemyConnectionRepository,
    SqlAlchemyRefreshTokenRepository,
    SqlAlchemySessionRepository,
    SqlAlchemyUserRepository,
)
from dashtam_core.adapters.sqlalchemy.unit_of_work import (
    SqlAlchemyUnitOfWork,
    SqlAlchemyUnitOfWorkFactory,
)

__all__ = [
    "SqlAlchemyAccountRepository",
    "SqlAlchemyConnectionRepository",
    "SqlAlchemyRefreshTokenRepository",
    "SqlAlchemySessionRepository",
    "SqlAlchemyUnitOfWork",
    "SqlAlchemyUnitOfWorkFactory",
    "SqlAlchemyUserRepository",
    "create_engine",
    "metadata",
    "normalize_url",
]
