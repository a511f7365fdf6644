"""The SQLite adapter: statements inline on the loop's thread, the thread only when it must wait."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from sqlalchemy import Column, Integer, MetaData, String, Table, insert, select, text, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncEngine

from omniroute.shared import db
from omniroute.shared.settings import DatabaseSettings

metadata = MetaData()
items = Table(
    "items",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("name", String, unique=True, nullable=False),
)


@pytest.fixture
async def engine(tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    engine = db.create_engine(DatabaseSettings(database_url=f"sqlite:///{tmp_path / 'x.db'}"))
    async with engine.begin() as connection:
        await connection.run_sync(metadata.create_all)
    yield engine
    await engine.dispose()


class Ticker:
    """Counts the event loop's turns while it runs: how often other tasks got the loop."""

    def __init__(self) -> None:
        self.ticks = 0
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        while True:
            self.ticks += 1
            await asyncio.sleep(0)

    async def __aenter__(self) -> Ticker:
        self._task = asyncio.create_task(self._run())
        await asyncio.sleep(0)
        self.ticks = 0
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._task is not None
        self._task.cancel()


async def test_a_unit_of_work_runs_without_handing_the_loop_to_other_tasks(
    engine: AsyncEngine,
) -> None:
    sessions = db.create_session_factory(engine)
    async with sessions() as session:  # the pool's connection is open before counting
        await session.execute(text("SELECT 1"))
    async with Ticker() as ticker:
        async with db.transaction(sessions) as session:
            for index in range(50):
                await session.execute(insert(items).values(name=f"item {index}"))
            names = (await session.execute(select(items.c.name))).scalars().all()
        # aiosqlite's thread would hand the loop over several times per statement (200+ here);
        # what is left is the session's close, which SQLAlchemy runs as a task of its own.
        assert ticker.ticks < 10
    assert len(names) == 50


async def test_results_rowcounts_returning_and_executemany(engine: AsyncEngine) -> None:
    async with engine.begin() as connection:  # AsyncConnection.execute requires an await
        inserted = await connection.execute(insert(items).values(name="a"))
        assert inserted.inserted_primary_key == (1,)
        await connection.execute(insert(items), [{"name": "b"}, {"name": "c"}, {"name": "d"}])
        renamed = await connection.execute(
            update(items).where(items.c.name.in_(["b", "c"])).values(name=items.c.name + "!")
        )
        assert renamed.rowcount == 2
        returned = await connection.execute(
            update(items).where(items.c.id == 4).values(name="z").returning(items.c.id)
        )
        assert returned.scalars().all() == [4]
        rows = (await connection.execute(select(items.c.name).order_by(items.c.id))).all()
        assert [row.name for row in rows] == ["a", "b!", "c!", "z"]
        empty = await connection.execute(select(items).where(items.c.id == 99))
        assert empty.first() is None


async def test_errors_are_sqlalchemy_errors_and_roll_back(engine: AsyncEngine) -> None:
    sessions = db.create_session_factory(engine)

    async def twice() -> None:
        async with db.transaction(sessions) as session:
            await session.execute(insert(items).values(name="once"))
            await session.execute(insert(items).values(name="once"))

    with pytest.raises(IntegrityError):
        await twice()
    async with sessions() as session:
        assert (await session.execute(select(items))).all() == []


async def test_another_process_write_lock_is_waited_for_off_the_loop(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    """A writer elsewhere (the CLI making a key) holds the lock: the statement waits on
    aiosqlite's thread, the loop goes on serving, and the write lands once the lock is free."""
    holding, release = threading.Event(), threading.Event()

    def other_writer() -> None:
        connection = sqlite3.connect(tmp_path / "x.db", isolation_level=None)
        connection.execute("BEGIN IMMEDIATE")
        connection.execute("INSERT INTO items (name) VALUES ('theirs')")
        holding.set()
        release.wait(10)
        connection.execute("COMMIT")
        connection.close()

    thread = threading.Thread(target=other_writer)
    thread.start()
    assert await asyncio.to_thread(holding.wait, 10)
    sessions = db.create_session_factory(engine)
    async with Ticker() as ticker:
        write = asyncio.create_task(_insert(sessions, "ours"))
        await asyncio.sleep(0.3)
        assert not write.done()  # waiting for the lock...
        assert ticker.ticks > 10  # ...while the loop serves other tasks
        release.set()
        await asyncio.wait_for(write, 10)
    thread.join()
    async with sessions() as session:
        names = (await session.execute(select(items.c.name).order_by(items.c.id))).scalars()
        assert list(names) == ["theirs", "ours"]


async def _insert(sessions: db.async_sessionmaker[db.AsyncSession], name: str) -> None:
    async with db.transaction(sessions) as session:
        await session.execute(insert(items).values(name=name))


def test_busy_is_told_from_other_errors() -> None:
    connection = sqlite3.connect(":memory:")
    with pytest.raises(sqlite3.OperationalError) as caught:
        connection.execute("SELECT * FROM nowhere")
    from omniroute.shared.sqlite import is_busy

    assert not is_busy(caught.value)
    busy = sqlite3.OperationalError("database is locked")
    busy.sqlite_errorcode = 5  # type: ignore[attr-defined]
    assert is_busy(busy)
    busy.sqlite_errorcode = 517  # SQLITE_BUSY_SNAPSHOT  # type: ignore[attr-defined]
    assert is_busy(busy)
