"""SQLAlchemy's aiosqlite adapter, with statements run on the event loop's own thread.

aiosqlite runs every call on a thread of its own, and SQLAlchemy's adapter makes four calls per
statement (open a cursor, execute, fetch, close), each a hand-over to that thread and back to
a busy event loop. SQLite itself takes microseconds for our statements (WAL, synchronous=NORMAL:
no fsync on commit), so the hand-overs were the cost: the router holds SQLite's single write
lock for a whole unit of work, and an offer's accept held it for ~5 ms, mostly waiting for the
loop to take the results back. At 200 accepts a second that alone kept the lock busy, and new
contacts queued behind it (the end-to-end bench's "router store" stage took 250-500 ms).

Here a statement, its rows, a commit and a rollback run inline, on the loop's thread: a unit of
work then runs without yielding to the loop, and holds the lock only for its own CPU time.
Where SQLite would wait for another process's write lock (a `keys create` from the CLI, say),
the connection's busy timeout is 0, so it fails at once with SQLITE_BUSY instead of stalling the
loop; that statement is then run again on aiosqlite's thread with the usual patience. A failed
SQLITE_BUSY statement changed nothing, so running it again is safe.

The connection itself is still opened and closed on aiosqlite's thread (hence
`check_same_thread=False`; one connection is never used by two threads at once: every call on it
is awaited in turn, and the adapter's mutex guards the thread path). Server-side cursors keep
aiosqlite's own path. No maintained package does this; it relies on aiosqlite's queue of calls
(`Connection._execute`, `_conn`), as SQLAlchemy's adapter does for its isolation level.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Callable, Sequence
from typing import Any, TypeVar

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util.concurrency import await_

# How long a statement waits for another process's write lock, on aiosqlite's thread.
BUSY_TIMEOUT_MS = 30_000

SQLITE_BUSY = 5
SQLITE_LOCKED = 6

T = TypeVar("T")

# What a statement leaves behind: description, rows, rowcount, lastrowid.
_Outcome = tuple[Any, list[Any] | None, int, int | None]


def connect_args() -> dict[str, Any]:
    """sqlite3.connect() arguments for this adapter: no waiting on the loop's thread."""
    return {"timeout": 0, "check_same_thread": False}


def _run(connection: sqlite3.Connection, operation: str, parameters: Any) -> _Outcome:
    cursor = connection.cursor()
    try:
        if parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else None
        return description, rows, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def _run_many(connection: sqlite3.Connection, operation: str, rows: Sequence[Any]) -> _Outcome:
    cursor = connection.cursor()
    try:
        cursor.executemany(operation, rows)
        return cursor.description, None, cursor.rowcount, cursor.lastrowid
    finally:
        cursor.close()


def is_busy(error: BaseException) -> bool:
    """SQLITE_BUSY or SQLITE_LOCKED, extended codes included: another connection's lock."""
    code = getattr(error, "sqlite_errorcode", None)
    return isinstance(error, sqlite3.OperationalError) and (
        code is not None and code & 0xFF in (SQLITE_BUSY, SQLITE_LOCKED)
    )


def _patiently(connection: sqlite3.Connection, call: Callable[[], T]) -> T:
    """On aiosqlite's thread: the call, allowed to wait for the lock as long as usual."""
    connection.execute(f"PRAGMA busy_timeout={BUSY_TIMEOUT_MS}")
    try:
        return call()
    finally:
        connection.execute("PRAGMA busy_timeout=0")


async def _on_thread(adapted: Any, call: Callable[[sqlite3.Connection], T]) -> T:
    connection: aiosqlite.Connection = adapted._connection
    async with adapted._execute_mutex:
        raw = connection._conn
        result: T = await connection._execute(_patiently, raw, lambda: call(raw))
        return result


async def _inline(adapted: Any, call: Callable[[sqlite3.Connection], T]) -> T:
    """The call on this thread, or on aiosqlite's when it must wait (busy, or mid-call).

    A coroutine that does not suspend on the inline path: awaited through `await_`, it runs
    without handing the loop to another task, and SQLAlchemy sees the await it expects of an
    async driver.
    """
    if adapted._execute_mutex.locked():  # a call of this connection is on the thread now
        return await _on_thread(adapted, call)
    try:
        return call(adapted._connection._conn)
    except sqlite3.OperationalError as error:
        if not is_busy(error):
            raise
    return await _on_thread(adapted, call)


def _call(adapted: Any, call: Callable[[sqlite3.Connection], T]) -> T:
    """From SQLAlchemy's greenlet: the call inline (or on the thread), with errors translated
    as SQLAlchemy's adapter does."""
    try:
        return await_(_inline(adapted, call))
    except Exception as error:
        adapted._handle_exception(error)
        raise  # _handle_exception always raises


class InlineCursor(AsyncAdapt_aiosqlite_cursor):
    """A buffered cursor: each statement is run, fetched and closed in one inline call."""

    __slots__ = ("_description", "_rowcount", "_lastrowid", "_arraysize")

    # Nothing stays open once a statement returns: nothing to close asynchronously.
    _awaitable_cursor_close = False

    def __init__(self, adapt_connection: Any) -> None:
        # The base class opens an aiosqlite cursor here, on the thread: not needed.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None
        self._arraysize = 1

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> Any:
        return self._lastrowid

    @property
    def arraysize(self) -> int:
        return self._arraysize

    @arraysize.setter
    def arraysize(self, value: int) -> None:
        self._arraysize = value

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        self._take(_call(self._adapt_connection, lambda c: _run(c, operation, parameters)))

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        rows = seq_of_parameters
        self._take(_call(self._adapt_connection, lambda c: _run_many(c, operation, rows)))

    def _take(self, outcome: _Outcome) -> None:
        self._description, rows, self._rowcount, self._lastrowid = outcome
        self._rows = collections.deque(rows) if rows is not None else collections.deque()


class InlineConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ()
    _cursor_cls = InlineCursor

    def commit(self) -> None:
        if self._connection._connection:
            _call(self, lambda c: c.commit())

    def rollback(self) -> None:
        if self._connection._connection:
            _call(self, lambda c: c.rollback())


class InlineDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """The DBAPI module for `create_async_engine("sqlite+aiosqlite://...", module=...)`."""

    def connect(self, *arg: Any, **kw: Any) -> InlineConnection:
        adapted = super().connect(*arg, **kw)
        return InlineConnection(self, adapted._connection)


def inline_dbapi() -> InlineDBAPI:
    return InlineDBAPI(aiosqlite, sqlite3)
