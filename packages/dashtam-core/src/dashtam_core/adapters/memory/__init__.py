"""In-memory adapters: repositories and unit of work (embedded default and tests)."""

from dashtam_core.adapters.memory.repositories import (
    InMemoryAccountRepository,
    InMemoryConnectionRepository,
    InMemoryRefreshTokenRepository,
    InMemorySessionRepository,
    InMemoryStore,
    InMemoryUserRepository,
)
from dashtam_core.adapters.memory.unit_of_work import (
    InMemoryUnitOfWork,
    InMemoryUnitOfWorkFactory,
)

__all__ = [
    "InMemoryAccountRepository",
    "InMemoryConnectionRepository",
    "InMemoryRefreshTokenRepository",
    "InMemorySessionRepository",
    "InMemoryStore",
    "InMemoryUnitOfWork",
    "InMemoryUnitOfWorkFactory",
    "InMemoryUserRepository",
]
