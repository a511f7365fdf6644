"""Database base and session helpers shared by every service that keeps state."""

from __future__ import annotations

import asyncio
import contextlib
import weakref
from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from datetime import UTC, datetime
from typing import Any

from sqlalchemy import DateTime, Engine, MetaData, event, text
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)
from sqlalchemy.orm import DeclarativeBase
from sqlalchemy.types import TypeDecorator

from omniroute.shared import sqlite
from omniroute.shared.settings import DatabaseSettings

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(DeclarativeBase):
    metadata = MetaData(naming_convention=NAMING_CONVENTION)


class UTCDateTime(TypeDecorator[datetime]):
    """Timezone-aware UTC timestamps on every database (SQLite stores them naive)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to a UTC column")
        return value.astimezone(UTC)

    def process_result_value(self, value: datetime | None, dialect: Any) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def create_engine(settings: DatabaseSettings) -> AsyncEngine:
    if settings.is_sqlite:
        # Statements run on the event loop's thread (omniroute.shared.sqlite explains why).
        engine = create_async_engine(
            settings.database_url,
            echo=settings.database_echo,
            connect_args=sqlite.connect_args(),
            module=sqlite.inline_dbapi(),
        )

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_connection: Any, _record: Any) -> None:
            # WAL lets readers (long-polls, the gateway's key checks) run beside the writer.
            cursor = dbapi_connection.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.close()

        return engine
    return create_async_engine(
        settings.database_url,
        echo=settings.database_echo,
        pool_size=settings.database_pool_size,
        max_overflow=settings.database_pool_size,
        pool_pre_ping=True,
    )


# Key of a per-process, per-database memo in `session.info`, for facts that never change once
# written (a queue's name and id). async_sessionmaker copies `info` into each session shallowly,
# so every session of one factory shares the one dict seeded here.
PROCESS_MEMO = "omniroute.process_memo"


def create_session_factory(engine: AsyncEngine) -> async_sessionmaker[AsyncSession]:
    return async_sessionmaker(
        engine, expire_on_commit=False, autoflush=False, info={PROCESS_MEMO: {}}
    )


def process_memo(session: AsyncSession) -> dict[Any, Any]:
    """The memo shared by the sessions of this session's factory (its own, if not seeded)."""
    memo: dict[Any, Any] = session.info.setdefault(PROCESS_MEMO, {})
    return memo


# SQLite has one writer. Concurrent write transactions in one process would otherwise wait in
# SQLite's busy handler, which sleeps in growing steps and throttles the whole router; queueing
# them on an asyncio lock hands the database over the moment the previous writer commits.
_sqlite_writers: weakref.WeakKeyDictionary[Engine, asyncio.Lock] = weakref.WeakKeyDictionary()


def write_lock(sessions: async_sessionmaker[AsyncSession]) -> AbstractAsyncContextManager[Any]:
    """Held around every write transaction: a per-engine lock on SQLite, nothing elsewhere."""
    bind = sessions.kw.get("bind")
    if not isinstance(bind, AsyncEngine) or bind.dialect.name != "sqlite":
        return contextlib.nullcontext()
    return _sqlite_writers.setdefault(bind.sync_engine, asyncio.Lock())


@asynccontextmanager
async def transaction(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[AsyncSession]:
    """The boundary's unit of work: commit on success, roll back on error."""
    # The lock covers the transaction, not the session's close (a task, so a turn of the loop).
    async with sessions() as session, write_lock(sessions):
        try:
            yield session
            await session.commit()
        except BaseException:
            await session.rollback()
            raise


async def ping(engine: AsyncEngine) -> bool:
    try:
        async with engine.connect() as connection:
            await connection.execute(text("SELECT 1"))
        return True
    except Exception:
        return False
