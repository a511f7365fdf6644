"""Queues: created from the routing rules at start-up or through the API."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from omniroute.router.models import Agent, AgentStatus, Conversation, ConversationStatus, Queue
from omniroute.router.notifications.models import Notification
from omniroute.router.routing.rules import QueueSpec
from omniroute.shared.db import process_memo
from omniroute.shared.errors import Conflict, NotFound
from omniroute.shared.events import utcnow


async def ensure_queues(session: AsyncSession, specs: list[QueueSpec]) -> dict[str, Queue]:
    """Create the queues the rules name; existing queues keep their settings."""
    existing = {q.name: q for q in (await session.scalars(select(Queue))).all()}
    for spec in specs:
        if spec.name not in existing:
            queue = Queue(
                name=spec.name,
                description=spec.description,
                required_skills=list(spec.required_skills),
            )
            session.add(queue)
            existing[spec.name] = queue
    await session.flush()
    return existing


async def create_queue(
    session: AsyncSession, name: str, description: str | None, required_skills: list[str]
) -> Queue:
    if await session.scalar(select(Queue.id).where(Queue.name == name)) is not None:
        raise Conflict(f"a queue named {name!r} already exists")
    queue = Queue(name=name, description=description, required_skills=required_skills)
    session.add(queue)
    await session.flush()
    return queue


async def list_queues(session: AsyncSession) -> list[Queue]:
    return list((await session.scalars(select(Queue).order_by(Queue.name))).all())


async def get_queue(session: AsyncSession, queue_id: uuid.UUID) -> Queue:
    queue = await session.get(Queue, queue_id)
    if queue is None:
        raise NotFound("no such queue")
    return queue


async def get_queue_by_name(session: AsyncSession, name: str) -> Queue:
    queue = await session.scalar(select(Queue).where(Queue.name == name))
    if queue is None:
        raise NotFound(f"no queue named {name!r}")
    return queue


@dataclass(frozen=True, slots=True)
class QueueRef:
    """A queue's identity. Queues are never renamed or deleted, so it can be remembered."""

    id: uuid.UUID
    name: str


def _remember(session: AsyncSession, queue: Queue) -> QueueRef:
    ref = QueueRef(queue.id, queue.name)
    memo = process_memo(session)
    memo[("queue", queue.name)] = memo[("queue", queue.id)] = ref
    return ref


async def queue_ref(session: AsyncSession, name: str) -> QueueRef:
    """The queue named so, read once per process (routing needs it for every contact)."""
    ref = process_memo(session).get(("queue", name))
    return ref if ref is not None else _remember(session, await get_queue_by_name(session, name))


async def queue_label(session: AsyncSession, queue_id: uuid.UUID | None) -> str:
    """The queue's name for metrics labels and events."""
    if queue_id is None:
        return "none"
    ref = process_memo(session).get(("queue", queue_id))
    if ref is not None:
        return str(ref.name)
    queue = await session.get(Queue, queue_id)
    return _remember(session, queue).name if queue else "none"


@dataclass(frozen=True)
class QueueStats:
    waiting: int
    offered: int
    assigned: int
    longest_wait_seconds: float
    agents_available: int


def agent_serves(agent: Agent, queue: Queue) -> bool:
    return all(skill in agent.skills for skill in queue.required_skills)


async def queue_stats(
    session: AsyncSession, queue: Queue, now: datetime | None = None
) -> QueueStats:
    now = now or utcnow()
    counts = dict(
        (
            await session.execute(
                select(Conversation.status, func.count())
                .where(Conversation.queue_id == queue.id)
                .group_by(Conversation.status)
            )
        ).all()
    )
    oldest = await session.scalar(
        select(func.min(Conversation.enqueued_at)).where(
            Conversation.queue_id == queue.id,
            Conversation.status == ConversationStatus.WAITING.value,
        )
    )
    agents = (
        await session.scalars(select(Agent).where(Agent.status == AgentStatus.AVAILABLE.value))
    ).all()
    if oldest is not None and oldest.tzinfo is None:
        from datetime import UTC

        oldest = oldest.replace(tzinfo=UTC)
    return QueueStats(
        waiting=int(counts.get(ConversationStatus.WAITING.value, 0)),
        offered=int(counts.get(ConversationStatus.OFFERED.value, 0)),
        assigned=int(counts.get(ConversationStatus.ASSIGNED.value, 0)),
        longest_wait_seconds=max(0.0, (now - oldest).total_seconds()) if oldest else 0.0,
        agents_available=sum(1 for agent in agents if agent_serves(agent, queue)),
    )


@dataclass(frozen=True)
class OverallStats:
    conversations: dict[str, int]
    sla_warnings: int
    sla_breaches: int
    notifications: dict[str, int]


async def overall_stats(session: AsyncSession) -> OverallStats:
    by_status = (
        await session.execute(
            select(Conversation.status, func.count()).group_by(Conversation.status)
        )
    ).all()
    warned = await session.scalar(
        select(func.count()).where(Conversation.sla_warned_at.is_not(None))
    )
    breached = await session.scalar(
        select(func.count()).where(Conversation.sla_breached_at.is_not(None))
    )
    by_kind = (
        await session.execute(select(Notification.kind, func.count()).group_by(Notification.kind))
    ).all()
    return OverallStats(
        conversations={status: int(count) for status, count in by_status},
        sla_warnings=int(warned or 0),
        sla_breaches=int(breached or 0),
        notifications={kind: int(count) for kind, count in by_kind},
    )
