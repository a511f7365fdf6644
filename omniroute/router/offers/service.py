"""Offers as agents see them: list, accept, decline."""

from __future__ import annotations

import uuid

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from omniroute.router.models import (
    Assignment,
    Conversation,
    ConversationStatus,
    Offer,
    OfferStatus,
)
from omniroute.router.queues.service import queue_label
from omniroute.router.routing.engine import return_to_queue
from omniroute.router.uow import UnitOfWork
from omniroute.shared import metrics
from omniroute.shared.auth import Principal
from omniroute.shared.errors import Conflict, NotFound
from omniroute.shared.events import RoutingEventType, utcnow


async def pending_offers(session: AsyncSession, agent_id: uuid.UUID) -> list[Offer]:
    """A read: no unit of work (on SQLite that would queue every poll behind the writers)."""
    now = utcnow()
    rows = await session.scalars(
        select(Offer)
        .where(
            Offer.agent_id == agent_id,
            Offer.status == OfferStatus.PENDING.value,
            Offer.expires_at > now,
        )
        .order_by(Offer.created_at)
    )
    return list(rows.all())


async def _owned_offer(uow: UnitOfWork, principal: Principal, offer_id: uuid.UUID) -> Offer:
    offer = await uow.session.get(Offer, offer_id)
    if offer is None or not principal.can_act_for(offer.agent_id):
        raise NotFound("no such offer")
    return offer


def _actor(principal: Principal) -> str:
    return f"agent:{principal.agent_id}" if principal.agent_id else principal.role.value


async def accept(uow: UnitOfWork, principal: Principal, offer_id: uuid.UUID) -> Offer:
    offer = await _owned_offer(uow, principal, offer_id)
    now = utcnow()
    if offer.status == OfferStatus.PENDING.value and offer.expires_at <= now:
        await return_to_queue(uow, offer, OfferStatus.EXPIRED, now)
        raise Conflict("the offer has expired", offer_status=OfferStatus.EXPIRED.value)
    if offer.status != OfferStatus.PENDING.value:
        raise Conflict(f"the offer is {offer.status}", offer_status=offer.status)
    session = uow.session
    taken = await session.execute(
        update(Offer)
        .where(Offer.id == offer.id, Offer.status == OfferStatus.PENDING.value)
        .values(status=OfferStatus.ACCEPTED.value, responded_at=now)
        .execution_options(synchronize_session=False)
    )
    if taken.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("the offer was answered meanwhile")
    assigned = await session.execute(
        update(Conversation)
        .where(
            Conversation.id == offer.conversation_id,
            Conversation.status == ConversationStatus.OFFERED.value,
        )
        .values(
            status=ConversationStatus.ASSIGNED.value,
            agent_id=offer.agent_id,
            assigned_at=now,
            version=Conversation.version + 1,
        )
        .execution_options(synchronize_session=False)
    )
    if assigned.rowcount != 1:  # type: ignore[attr-defined]
        raise Conflict("the conversation is no longer waiting for this offer")
    # Mirror what the UPDATE wrote without marking the row dirty (no second UPDATE).
    set_committed_value(offer, "status", OfferStatus.ACCEPTED.value)
    set_committed_value(offer, "responded_at", now)
    session.add(
        Assignment(
            conversation_id=offer.conversation_id,
            agent_id=offer.agent_id,
            offer_id=offer.id,
            channel=offer.channel,
            started_at=now,
        )
    )
    uow.record(
        offer.conversation_id,
        RoutingEventType.OFFER_ACCEPTED,
        {"offer_id": str(offer.id), "agent_id": str(offer.agent_id)},
        actor=_actor(principal),
    )
    metrics.OFFERS_ACCEPTED.labels(queue=await queue_label(session, offer.queue_id)).inc()
    await session.flush()
    return offer


async def decline(uow: UnitOfWork, principal: Principal, offer_id: uuid.UUID) -> Offer:
    offer = await _owned_offer(uow, principal, offer_id)
    if offer.status != OfferStatus.PENDING.value:
        raise Conflict(f"the offer is {offer.status}", offer_status=offer.status)
    if not await return_to_queue(
        uow, offer, OfferStatus.DECLINED, utcnow(), actor=_actor(principal)
    ):
        raise Conflict("the offer was answered meanwhile")
    await uow.session.flush()
    return offer
