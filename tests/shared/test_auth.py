"""KeyStore: bearer keys verified against the database, one lookup per key at a time."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker, create_async_engine

from omniroute.shared.auth import KeyStore, Role, create_key
from omniroute.shared.db import Base


class CountingSessions:
    """The session factory, counting the sessions opened (one per database lookup)."""

    def __init__(self, sessions: async_sessionmaker[AsyncSession]) -> None:
        self.sessions = sessions
        self.opened = 0
        self.fail = False

    def __call__(self) -> AsyncSession:
        self.opened += 1
        if self.fail:
            raise ConnectionError("the database is down")
        return self.sessions()


@pytest.fixture
async def keys(tmp_path: Path) -> AsyncIterator[tuple[CountingSessions, str]]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        _, key = await create_key(session, Role.INGEST, name="crm")
        await session.commit()
    yield CountingSessions(sessions), key
    await engine.dispose()


def store(sessions: CountingSessions, cache_seconds: float = 30.0) -> KeyStore:
    return KeyStore(sessions, admin_key=None, cache_seconds=cache_seconds)  # type: ignore[arg-type]


async def burst(keystore: KeyStore, key: str, size: int = 32) -> list[Any]:
    return await asyncio.gather(
        *(keystore.verify(key) for _ in range(size)), return_exceptions=True
    )


class TestOneLookupPerKeyAtATime:
    async def test_a_burst_with_a_cold_cache_looks_the_key_up_once(
        self, keys: tuple[CountingSessions, str]
    ) -> None:
        sessions, key = keys
        principals = await burst(store(sessions), key)
        assert sessions.opened == 1
        assert {principal.role for principal in principals} == {Role.INGEST}

    async def test_when_the_cache_expires_a_burst_looks_it_up_once_again(
        self, keys: tuple[CountingSessions, str]
    ) -> None:
        sessions, key = keys
        keystore = store(sessions, cache_seconds=0.0)
        await burst(keystore, key)
        await burst(keystore, key)
        assert sessions.opened == 2

    async def test_an_unknown_key_is_refused_to_every_caller_with_one_lookup(
        self, keys: tuple[CountingSessions, str]
    ) -> None:
        sessions, key = keys
        assert await burst(store(sessions), key + "x") == [None] * 32
        assert sessions.opened == 1

    async def test_a_failed_lookup_fails_its_waiters_and_the_next_call_tries_again(
        self, keys: tuple[CountingSessions, str]
    ) -> None:
        sessions, key = keys
        keystore = store(sessions)
        sessions.fail = True
        results = await burst(keystore, key, size=8)
        assert all(isinstance(result, ConnectionError) for result in results)
        sessions.fail = False
        principal = await keystore.verify(key)
        assert principal is not None
        assert principal.role is Role.INGEST
        assert sessions.opened == 2

    async def test_a_caller_that_gives_up_does_not_cancel_the_others(
        self, keys: tuple[CountingSessions, str]
    ) -> None:
        sessions, key = keys
        keystore = store(sessions)
        first = asyncio.ensure_future(keystore.verify(key))
        others = asyncio.gather(*(keystore.verify(key) for _ in range(4)))
        await asyncio.sleep(0)
        first.cancel()
        principals = await others
        assert {principal.role for principal in principals} == {Role.INGEST}
        assert sessions.opened == 1
