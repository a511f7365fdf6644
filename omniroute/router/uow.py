"""The unit of work: one transaction, plus the side effects that may only follow its commit."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import insert
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from omniroute.router.models import ConversationEvent
from omniroute.shared.db import write_lock
from omniroute.shared.events import RoutingEvent, RoutingEventType, utcnow

AfterCommit = Callable[["UnitOfWork"], Awaitable[None]]


@dataclass
class UnitOfWork:
    session: AsyncSession
    events: list[RoutingEvent] = field(default_factory=list)
    offered_agents: set[uuid.UUID] = field(default_factory=set)
    needs_dispatch: bool = False
    pending_log: list[dict[str, Any]] = field(default_factory=list)

    async def flush_log(self) -> None:
        """Write the recorded events now (before commit, or before reading the log back).

        A Core INSERT with a list of rows is one executemany: through the ORM each row would be
        a statement of its own, as the autoincrement key is read back row by row.
        """
        if self.pending_log:
            rows, self.pending_log = self.pending_log, []
            await self.session.execute(insert(ConversationEvent), rows)

    def record(
        self,
        conversation_id: uuid.UUID,
        type_: RoutingEventType,
        data: dict[str, Any] | None = None,
        *,
        actor: str | None = None,
    ) -> None:
        """Append to the conversation's event log and buffer the event for publication."""
        event_id = uuid.uuid4()
        now = utcnow()
        payload = data or {}
        # Written together just before commit: one multi-row INSERT instead of one per event.
        self.pending_log.append(
            {
                "event_id": event_id,
                "conversation_id": conversation_id,
                "type": type_.value,
                "occurred_at": now,
                "actor": actor,
                "data": payload,
            }
        )
        self.events.append(
            RoutingEvent(
                event_id=event_id,
                type=type_,
                conversation_id=conversation_id,
                occurred_at=now,
                data={**payload, **({"actor": actor} if actor else {})},
            )
        )


@asynccontextmanager
async def unit_of_work(
    sessions: async_sessionmaker[AsyncSession],
    after_commit: AfterCommit | None = None,
) -> AsyncIterator[UnitOfWork]:
    """Commit on success, then run side effects; roll back and drop them on error."""
    # The lock covers the transaction, not the session's close: SQLAlchemy closes an
    # AsyncSession in a task of its own, a turn of the loop that other writers need not wait for.
    async with sessions() as session, write_lock(sessions):
        uow = UnitOfWork(session)
        try:
            yield uow
            await uow.flush_log()
            await session.commit()
        except BaseException:
            await session.rollback()
            raise
    if after_commit is not None:
        await after_commit(uow)
