"""The dispatcher: waiting conversations meet available agents, as offers.

Order of work: highest priority first, then longest waiting. Choice of agent: one who serves the
queue (has its required skills) with spare capacity on the channel, preferring the previous agent
of a reopened conversation, then one who speaks the customer's language, then the longest idle.
Claims are conditional UPDATEs checked by row count (SQLite has no SELECT ... FOR UPDATE), so
router replicas never offer one conversation twice or overfill one agent.
"""

from __future__ import annotations

import uuid
from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, func, or_, select, tuple_, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from omniroute.router.models import (
    Agent,
    AgentStatus,
    Assignment,
    Conversation,
    ConversationStatus,
    Offer,
    OfferStatus,
    Queue,
    RoutingDecision,
)
from omniroute.router.queues.service import agent_serves, queue_label
from omniroute.router.uow import UnitOfWork
from omniroute.shared import metrics
from omniroute.shared.events import RoutingEventType

DISPATCH_BATCH = 500


class StaleAgent(Exception):
    """Another router changed the agent since we read it; the dispatch pass is retried."""


async def agent_load(session: AsyncSession) -> dict[tuple[uuid.UUID, str], int]:
    """Work each agent holds per channel: active assignments plus pending offers."""
    load: dict[tuple[uuid.UUID, str], int] = defaultdict(int)
    assigned = await session.execute(
        select(Assignment.agent_id, Assignment.channel, func.count())
        .where(Assignment.ended_at.is_(None))
        .group_by(Assignment.agent_id, Assignment.channel)
    )
    offered = await session.execute(
        select(Offer.agent_id, Offer.channel, func.count())
        .where(Offer.status == OfferStatus.PENDING.value)
        .group_by(Offer.agent_id, Offer.channel)
    )
    for agent_id, channel, count in [*assigned.all(), *offered.all()]:
        load[(agent_id, channel)] += int(count)
    return load


async def _recent_refusals(
    session: AsyncSession, conversation_ids: list[uuid.UUID], since: datetime
) -> set[tuple[uuid.UUID, uuid.UUID]]:
    """(conversation, agent) pairs whose offer was just declined or let expire."""
    rows = await session.execute(
        select(Offer.conversation_id, Offer.agent_id).where(
            Offer.conversation_id.in_(conversation_ids),
            Offer.status.in_([OfferStatus.DECLINED.value, OfferStatus.EXPIRED.value]),
            Offer.responded_at >= since,
        )
    )
    return {(conversation_id, agent_id) for conversation_id, agent_id in rows.all()}


async def _waiting_channels(session: AsyncSession) -> set[str]:
    rows = await session.scalars(
        select(Conversation.channel)
        .where(Conversation.status == ConversationStatus.WAITING.value)
        .distinct()
    )
    return set(rows.all())


def _takeable(
    agents: list[Agent],
    queues: dict[uuid.UUID, Queue],
    load: dict[tuple[uuid.UUID, str], int],
    channels: set[str],
) -> set[tuple[uuid.UUID, str]]:
    """(queue, channel) pairs at least one available agent serves with spare capacity."""
    pairs: set[tuple[uuid.UUID, str]] = set()
    for queue in queues.values():
        for channel in channels:
            if any(
                agent_serves(agent, queue)
                and load[(agent.id, channel)] < agent.capacity_for(channel)
                for agent in agents
            ):
                pairs.add((queue.id, channel))
    return pairs


def _rank(agent: Agent, conversation: Conversation) -> tuple[int, int, datetime]:
    previous = 0 if conversation.last_agent_id == agent.id else 1
    language = 0 if f"lang:{conversation.language}" in agent.skills else 1
    return (previous, language, agent.idle_since)


async def dispatch(uow: UnitOfWork, *, offer_timeout: timedelta, now: datetime) -> int:
    """Make as many offers as agents can take now; returns how many were made."""
    session = uow.session
    agents = list(
        (
            await session.scalars(select(Agent).where(Agent.status == AgentStatus.AVAILABLE.value))
        ).all()
    )
    if not agents:
        return 0
    queues = {queue.id: queue for queue in (await session.scalars(select(Queue))).all()}
    load = await agent_load(session)
    # Only work some available agent could take now: otherwise a backlog in an unstaffed queue
    # or a full channel would fill the batch and starve the rest.
    takeable = _takeable(agents, queues, load, await _waiting_channels(session))
    if not takeable:
        return 0
    waiting = (
        await session.scalars(
            select(Conversation)
            .where(
                Conversation.status == ConversationStatus.WAITING.value,
                or_(
                    *(
                        and_(Conversation.queue_id == queue_id, Conversation.channel == channel)
                        for queue_id, channel in takeable
                    )
                ),
            )
            .order_by(Conversation.priority_score.desc(), Conversation.enqueued_at)
            .limit(DISPATCH_BATCH)
        )
    ).all()
    if not waiting:
        return 0
    refused = await _recent_refusals(session, [c.id for c in waiting], now - offer_timeout)

    # Choose first, in order, as if every claim will succeed; then claim them all at once.
    plans: list[_Plan] = []
    for conversation in waiting:
        queue = queues.get(conversation.queue_id) if conversation.queue_id else None
        if queue is None:
            continue
        channel = conversation.channel
        eligible: list[Agent] = []
        verdicts: list[dict[str, Any]] = []
        for agent in agents:
            reason = None
            if not agent_serves(agent, queue):
                reason = "lacks the queue's skills"
            elif load[(agent.id, channel)] >= agent.capacity_for(channel):
                reason = f"no spare {channel} capacity"
            elif (conversation.id, agent.id) in refused:
                reason = "declined or missed this conversation just now"
            if reason is None:
                eligible.append(agent)
            verdicts.append({"agent_id": str(agent.id), "excluded": reason})
        if not eligible:
            continue
        chosen = min(eligible, key=lambda agent: _rank(agent, conversation))
        for verdict in verdicts:
            if verdict["agent_id"] == str(chosen.id):
                verdict["rank"] = ["previous agent", "language", "longest idle"]
        load[(chosen.id, channel)] += 1
        plans.append(_Plan(conversation, queue, chosen, verdicts))
    if not plans:
        return 0

    # Conditional on the version read above: another replica's claim (or a transfer) since
    # then makes the row not match, and that conversation is simply not offered by this pass.
    claimed = set(
        (
            await session.execute(
                update(Conversation)
                .where(
                    tuple_(Conversation.id, Conversation.version).in_(
                        [(p.conversation.id, p.conversation.version) for p in plans]
                    ),
                    Conversation.status == ConversationStatus.WAITING.value,
                )
                .values(status=ConversationStatus.OFFERED.value, version=Conversation.version + 1)
                .returning(Conversation.id)
                .execution_options(synchronize_session=False)
            )
        )
        .scalars()
        .all()
    )
    if len(claimed) < len(plans):
        # The load counted offers that were not made: look again with true figures.
        uow.needs_dispatch = True
    offered_agents: dict[uuid.UUID, Agent] = {}
    made = 0
    for plan in plans:
        conversation, queue, chosen = plan.conversation, plan.queue, plan.chosen
        if conversation.id not in claimed:
            continue
        # Mirror what the UPDATE wrote without marking the row dirty (no second UPDATE).
        set_committed_value(conversation, "status", ConversationStatus.OFFERED.value)
        set_committed_value(conversation, "version", conversation.version + 1)
        offered_agents[chosen.id] = chosen
        offer = Offer(
            id=uuid.uuid4(),
            conversation_id=conversation.id,
            agent_id=chosen.id,
            queue_id=queue.id,
            channel=conversation.channel,
            status=OfferStatus.PENDING.value,
            created_at=now,
            expires_at=now + offer_timeout,
        )
        session.add(offer)
        session.add(
            RoutingDecision(
                conversation_id=conversation.id,
                queue_id=queue.id,
                decided_at=now,
                chosen_agent_id=chosen.id,
                candidates=plan.verdicts,
            )
        )
        uow.record(
            conversation.id,
            RoutingEventType.OFFER_CREATED,
            {
                "offer_id": str(offer.id),
                "agent_id": str(chosen.id),
                "queue": queue.name,
                "expires_at": offer.expires_at.isoformat(),
            },
        )
        uow.offered_agents.add(chosen.id)
        metrics.OFFERS_CREATED.labels(queue=queue.name).inc()
        if conversation.message_count <= 1:
            metrics.TIME_TO_OFFER.observe(
                max(0.0, (now - conversation.first_received_at).total_seconds())
            )
        made += 1
    # Each agent offered work is no longer idle: one conditional UPDATE per agent, so a
    # concurrent change to the agent (a status switch, another replica's offer) fails the pass.
    for agent in offered_agents.values():
        bumped = await session.execute(
            update(Agent)
            .where(Agent.id == agent.id, Agent.version == agent.version)
            .values(idle_since=now, version=agent.version + 1)
            .execution_options(synchronize_session=False)
        )
        if bumped.rowcount != 1:  # type: ignore[attr-defined]
            raise StaleAgent(str(agent.id))
        set_committed_value(agent, "idle_since", now)
        set_committed_value(agent, "version", agent.version + 1)
    await session.flush()
    return made


@dataclass(frozen=True, slots=True)
class _Plan:
    """An offer a dispatch pass means to make, if its claim succeeds."""

    conversation: Conversation
    queue: Queue
    chosen: Agent
    verdicts: list[dict[str, Any]]


async def return_to_queue(
    uow: UnitOfWork, offer: Offer, status: OfferStatus, now: datetime, actor: str | None = None
) -> bool:
    """End a pending offer (declined or expired) and put its conversation back in its place."""
    session = uow.session
    ended = await session.execute(
        update(Offer)
        .where(Offer.id == offer.id, Offer.status == OfferStatus.PENDING.value)
        .values(status=status.value, responded_at=now)
        .execution_options(synchronize_session=False)
    )
    if ended.rowcount != 1:  # type: ignore[attr-defined]
        return False
    set_committed_value(offer, "status", status.value)
    set_committed_value(offer, "responded_at", now)
    await session.execute(
        update(Conversation)
        .where(
            Conversation.id == offer.conversation_id,
            Conversation.status == ConversationStatus.OFFERED.value,
        )
        .values(status=ConversationStatus.WAITING.value, version=Conversation.version + 1)
        .execution_options(synchronize_session=False)
    )
    event = (
        RoutingEventType.OFFER_EXPIRED
        if status is OfferStatus.EXPIRED
        else RoutingEventType.OFFER_DECLINED
    )
    uow.record(
        offer.conversation_id,
        event,
        {"offer_id": str(offer.id), "agent_id": str(offer.agent_id)},
        actor=actor,
    )
    queue_name = await queue_label(session, offer.queue_id)
    if status is OfferStatus.EXPIRED:
        metrics.OFFERS_EXPIRED.labels(queue=queue_name).inc()
    else:
        metrics.OFFERS_DECLINED.labels(queue=queue_name).inc()
    uow.needs_dispatch = True
    return True


async def expire_offers(uow: UnitOfWork, now: datetime) -> int:
    due = (
        await uow.session.scalars(
            select(Offer).where(Offer.status == OfferStatus.PENDING.value, Offer.expires_at <= now)
        )
    ).all()
    expired = 0
    for offer in due:
        if await return_to_queue(uow, offer, OfferStatus.EXPIRED, now):
            expired += 1
    return expired


async def refresh_queue_depths(session: AsyncSession) -> None:
    rows = await session.execute(
        select(Queue.name, func.count(Conversation.id))
        .outerjoin(
            Conversation,
            (Conversation.queue_id == Queue.id)
            & (Conversation.status == ConversationStatus.WAITING.value),
        )
        .group_by(Queue.name)
    )
    for name, count in rows.all():
        metrics.QUEUE_DEPTH.labels(queue=name).set(count)
