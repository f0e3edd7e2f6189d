"""A hypothesis state machine over provider mutations: whatever the provider does (add, modify,
remove, pending -> posted, failing answers), after a successful sync the stored copy equals the
provider's truth, with no duplicate and nothing lost; a failed sync changes nothing."""

from __future__ import annotations

import asyncio
import shutil
import string
import tempfile
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any
from uuid import UUID

import pluggy
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from pydantic_settings import BaseSettings
from sqlalchemy import select

from dashtam_core.adapters.security.vault import CredentialVault
from dashtam_core.adapters.sqlalchemy.migrate import upgrade
from dashtam_core.adapters.sqlalchemy.tables_data import transactions
from dashtam_core.application.connections import connect_api_key
from dashtam_core.application.container import Container
from dashtam_core.application.syncing import sync_connection
from dashtam_core.domain.account import AccountType
from dashtam_core.domain.connection import AuthType
from dashtam_core.domain.ids import uuid7
from dashtam_core.domain.transaction import TransactionStatus, TransactionSubtype, TransactionType
from dashtam_core.domain.user import User
from dashtam_core.errors import ProviderError, ProviderUnavailable
from dashtam_core.plugins.manager import LoadedPlugins
from dashtam_core.plugins.registry import ProviderRegistry
from dashtam_core.plugins.spec import ProviderSpec
from dashtam_core.ports.provider import (
    Capability,
    Credentials,
    Fetched,
    ProviderAccount,
    ProviderTransaction,
)
from dashtam_core.result import Err, Ok, Result
from dashtam_core.settings import CoreSettings
from dashtam_core.sync.runs import SyncStatus

ACCOUNT = "acct-1"
TODAY = datetime.now(UTC).date()


class FakeSettings(BaseSettings):
    """No settings."""


@dataclass
class FakeProvider:
    """A provider whose truth the state machine mutates."""

    truth: dict[str, ProviderTransaction]
    failing: bool = False

    async def validate_credentials(self, credentials: Credentials) -> Result[None, ProviderError]:
        return Ok(None)

    async def fetch_accounts(
        self, credentials: Credentials
    ) -> Result[Fetched[ProviderAccount], ProviderError]:
        account = ProviderAccount(ACCOUNT, "Fake checking", AccountType.CHECKING, "USD")
        return Ok(Fetched([account]))

    async def fetch_transactions(
        self, credentials: Credentials, provider_account_id: str, start: date, end: date
    ) -> Result[Fetched[ProviderTransaction], ProviderError]:
        if self.failing:  # a page fails half way: the whole answer is an error
            return Err(ProviderUnavailable("page 2 failed"))
        return Ok(Fetched([t for t in self.truth.values() if start <= t.date <= end]))


def _spec() -> ProviderSpec:
    return ProviderSpec(
        slug="fake",
        name="Fake",
        auth_type=AuthType.API_KEY,
        capabilities=frozenset({Capability.ACCOUNTS, Capability.TRANSACTIONS}),
        settings_model=FakeSettings,
        factory=lambda settings, client: FakeProvider({}),
    )


_TEMPLATE: dict[str, Path] = {}


def _template_db() -> Path:
    """One migrated SQLite file, copied for every example (migrations run once)."""
    if "db" not in _TEMPLATE:
        path = Path(tempfile.mkdtemp()) / "template.db"
        asyncio.run(upgrade(f"sqlite+aiosqlite:///{path}"))
        _TEMPLATE["db"] = path
    return _TEMPLATE["db"]


words = st.text(alphabet=string.ascii_uppercase, min_size=10, max_size=10)
amounts = st.decimals(min_value=Decimal("-500"), max_value=Decimal("500"), places=2).filter(
    lambda d: d != 0
)
days = st.integers(min_value=0, max_value=5)  # inside the sync overlap window


class SyncMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.loop = asyncio.new_event_loop()
        self.dir = Path(tempfile.mkdtemp())
        db = self.dir / "d.db"
        shutil.copy(_template_db(), db)
        registry = ProviderRegistry()
        registry.add(_spec())
        plugins = LoadedPlugins(manager=pluggy.PluginManager("dashtam"), providers=registry)
        core = CoreSettings(
            database_url=f"sqlite+aiosqlite:///{db}", secret_dir=self.dir, _env_file=None
        )
        self.c = self.run(
            Container.create(core, plugins=plugins, vault=CredentialVault.generate(), migrate=False)
        )
        self.provider = FakeProvider({})
        self.c.set_provider("fake", self.provider)
        self.counter = 0
        self.synced = False
        self.connection_id: UUID | None = None
        self.last_stored: dict[str, tuple[Any, ...]] = {}

    def run(self, coro: Any) -> Any:
        return self.loop.run_until_complete(coro)

    def teardown(self) -> None:
        self.run(self.c.aclose())
        self.loop.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    @initialize()
    def connect(self) -> None:
        user = User(
            id=uuid7(), email="m@example.com", password_hash="x", created_at=datetime.now(UTC)
        )

        async def go() -> UUID:
            async with self.c.uow_factory() as uow:
                (await uow.users.add(user)).unwrap()
                await uow.commit()
            return (await connect_api_key(self.c, user.id, "fake", {"k": "v"})).unwrap().id

        self.connection_id = self.run(go())

    def _new(self, amount: Decimal, day: int, word: str, status: TransactionStatus) -> str:
        self.counter += 1
        pid = f"tx-{self.counter}"
        self.provider.truth[pid] = ProviderTransaction(
            provider_account_id=ACCOUNT,
            provider_transaction_id=pid,
            dedupe_key=pid,
            date=TODAY - timedelta(days=day),
            amount=amount,
            currency="USD",
            description=f"{word} {self.counter}",
            type=TransactionType.OTHER,
            subtype=TransactionSubtype.PURCHASE,
            status=status,
        )
        return pid

    @rule(amount=amounts, day=days, word=words, pending=st.booleans())
    def add(self, amount: Decimal, day: int, word: str, pending: bool) -> None:
        status = TransactionStatus.PENDING if pending else TransactionStatus.POSTED
        self._new(amount, day, word, status)

    @precondition(lambda self: bool(self.provider.truth))
    @rule(data=st.data(), amount=amounts, word=words)
    def modify(self, data: st.DataObject, amount: Decimal, word: str) -> None:
        pid = data.draw(st.sampled_from(sorted(self.provider.truth)))
        old = self.provider.truth[pid]
        self.provider.truth[pid] = replace(old, amount=amount, description=f"{word} m")

    # The provider withdraws a transaction. It keeps at least one: a wholly empty answer is the
    # engine's "suspicious" case (it removes nothing), tested with the engine itself.
    @precondition(lambda self: len(self.provider.truth) >= 2)
    @rule(data=st.data())
    def remove(self, data: st.DataObject) -> None:
        pid = data.draw(st.sampled_from(sorted(self.provider.truth)))
        del self.provider.truth[pid]

    @precondition(
        lambda self: any(
            t.status == TransactionStatus.PENDING for t in self.provider.truth.values()
        )
    )
    @rule(data=st.data(), day=st.integers(min_value=0, max_value=2))
    def post_pending(self, data: st.DataObject, day: int) -> None:
        pending = sorted(
            p for p, t in self.provider.truth.items() if t.status == TransactionStatus.PENDING
        )
        pid = data.draw(st.sampled_from(pending))
        old = self.provider.truth.pop(pid)
        new = self._new(
            old.amount, min(day, (TODAY - old.date).days), "POSTED", TransactionStatus.POSTED
        )
        self.provider.truth[new] = replace(self.provider.truth[new], pending_link=pid)

    @rule()
    def fail_next(self) -> None:
        self.provider.failing = True

    @rule()
    def sync(self) -> None:
        assert self.connection_id is not None
        failing = self.provider.failing
        before = self._stored()
        run = self.run(sync_connection(self.c, self.connection_id)).unwrap()
        self.provider.failing = False
        if failing:
            assert run.status == SyncStatus.FAILED
            assert self._stored() == before  # a failed sync changes nothing
            return
        assert run.status == SyncStatus.SUCCEEDED, run.error
        self.synced = True
        self.last_stored = self._stored()
        expected = {
            pid: (t.amount, t.description, str(t.status), t.date)
            for pid, t in self.provider.truth.items()
        }
        assert self.last_stored == expected

    def _stored(self) -> dict[str, tuple[Any, ...]]:
        async def go() -> dict[str, tuple[Any, ...]]:
            t = transactions
            async with self.c.engine.connect() as db:
                rows = (
                    await db.execute(
                        select(
                            t.c.provider_transaction_id,
                            t.c.amount,
                            t.c.description,
                            t.c.status,
                            t.c.date,
                        ).where(t.c.removed_at.is_(None))
                    )
                ).all()
            out: dict[str, tuple[Any, ...]] = {}
            for r in rows:
                assert r[0] not in out, f"duplicate live row {r[0]}"
                out[r[0]] = tuple(r[1:])
            return out

        result: dict[str, tuple[Any, ...]] = self.run(go())
        return result

    @invariant()
    def no_duplicates(self) -> None:
        if self.connection_id is not None:
            self._stored()


SyncMachine.TestCase.settings = settings(
    max_examples=25,
    stateful_step_count=15,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestSyncMachine = SyncMachine.TestCase
