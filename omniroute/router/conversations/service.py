"""Conversations: contacts join them, the engine queues them, agents complete or transfer them."""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omniroute.router.customers.service import resolve_customer
from omniroute.router.models import (
    OPEN_STATUSES,
    Assignment,
    Contact,
    Conversation,
    ConversationAlias,
    ConversationEvent,
    ConversationStatus,
    Offer,
    OfferStatus,
    Queue,
)
from omniroute.router.queues.service import get_queue_by_name
from omniroute.router.routing.engine import queue_label
from omniroute.router.routing.rules import RoutingRules
from omniroute.router.uow import UnitOfWork
from omniroute.shared import metrics
from omniroute.shared.auth import Principal, Role
from omniroute.shared.errors import Conflict, NotFound
from omniroute.shared.events import ClassifiedContact, InboundContact, RoutingEventType, utcnow
from omniroute.shared.reference import normalise_reference, reference_for

log = structlog.get_logger(__name__)

OPEN = {status.value for status in OPEN_STATUSES}


@dataclass(frozen=True)
class IngestOutcome:
    contact_id: uuid.UUID
    conversation_id: uuid.UUID
    duplicate: bool
    queued: bool


def _hold_reason(classified: ClassifiedContact) -> str | None:
    """Messages recorded on the conversation that must create no work for agents."""
    if classified.spam:
        return "spam"
    auto = classified.contact.metadata.get("auto_submitted")
    return auto or None


def _apply_classification(
    conversation: Conversation, classified: ClassifiedContact, queue: Queue
) -> None:
    conversation.queue_id = queue.id
    conversation.language = classified.language.code
    conversation.category = classified.category.category
    conversation.priority_level = classified.priority.level.value
    conversation.priority_score = classified.priority.score
    conversation.required_skills = list(classified.required_skills)
    conversation.sla_policy = classified.sla.policy
    conversation.first_response_due = classified.sla.first_response_due
    conversation.resolution_due = classified.sla.resolution_due


async def ingest_classified(
    uow: UnitOfWork,
    classified: ClassifiedContact,
    rules: RoutingRules,
    reopen_window: timedelta,
) -> IngestOutcome:
    """Store a classified contact exactly once and put its conversation where it belongs."""
    session = uow.session
    inbound = classified.contact
    stored = await session.get(Contact, inbound.contact_id)
    if stored is not None:
        return IngestOutcome(inbound.contact_id, stored.conversation_id, True, False)

    now = utcnow()
    queue_name, rule = rules.queue_for(classified)
    queue = await get_queue_by_name(session, queue_name)
    customer = await resolve_customer(uow, inbound.customer, inbound.channel.value)
    hold = _hold_reason(classified)
    conversation = await find_conversation(session, inbound.conversation_id)
    if conversation is None:
        # Threading headers lost (a new e-mail quoting "[#ABCD-1234]"): join by reference.
        conversation = await _by_reference(session, inbound.metadata.get("reference"), inbound)
        if conversation is not None:
            # The gateway's receipt named the thread's own id: keep it valid, and let later
            # messages of that thread find this conversation without the reference.
            session.add(
                ConversationAlias(alias_id=inbound.conversation_id, conversation_id=conversation.id)
            )
    queued = False
    conversation_id = conversation.id if conversation is not None else inbound.conversation_id
    contact_data = {"contact_id": str(inbound.contact_id), "channel": inbound.channel.value}

    if conversation is None:
        conversation = Conversation(
            id=conversation_id,
            channel=inbound.channel.value,
            conversation_key=inbound.conversation_key,
            customer_id=customer.id if customer else None,
            status=ConversationStatus.HELD.value if hold else ConversationStatus.WAITING.value,
            hold_reason=hold,
            subject=inbound.subject,
            visibility=inbound.visibility.value,
            first_received_at=inbound.received_at,
            enqueued_at=None if hold else now,
            message_count=0,
            version=0,
            reference=await _free_reference(session, conversation_id),
            # No acknowledgement for held messages: auto-replies must not start mail loops.
            acknowledge_pending=hold is None,
        )
        _apply_classification(conversation, classified, queue)
        session.add(conversation)
        await session.flush()
        uow.record(conversation_id, RoutingEventType.CONTACT_RECEIVED, contact_data)
        queued = hold is None
    else:
        if conversation.customer_id is None and customer is not None:
            conversation.customer_id = customer.id
        uow.record(conversation_id, RoutingEventType.CONTACT_RECEIVED, contact_data)
        if conversation.status in OPEN:
            # A new message raises the stakes but never lowers them; the SLA clock keeps running.
            if classified.priority.score > conversation.priority_score:
                conversation.priority_score = classified.priority.score
                conversation.priority_level = classified.priority.level.value
            uow.record(
                conversation_id,
                RoutingEventType.CONVERSATION_JOINED,
                {**contact_data, "agent_id": str(conversation.agent_id or "") or None},
            )
        elif hold is None:
            recent = conversation.completed_at is not None and (
                now - conversation.completed_at <= reopen_window
            )
            conversation.status = ConversationStatus.WAITING.value
            conversation.hold_reason = None
            conversation.enqueued_at = now
            conversation.completed_at = None
            conversation.agent_id = None
            if not recent:
                conversation.last_agent_id = None
            # A new SLA clock, a new acknowledgement; an unsent survey is moot now.
            conversation.acknowledge_pending = True
            conversation.survey_pending = False
            conversation.sla_warned_at = None
            conversation.sla_breached_at = None
            _apply_classification(conversation, classified, queue)
            uow.record(
                conversation_id,
                RoutingEventType.CONVERSATION_REOPENED,
                {"previous_agent_id": str(conversation.last_agent_id) if recent else None},
            )
            queued = True
        conversation.version += 1

    session.add(
        Contact(
            id=inbound.contact_id,
            conversation_id=conversation_id,
            channel=inbound.channel.value,
            external_id=inbound.external_id,
            received_at=inbound.received_at,
            occurred_at=inbound.occurred_at,
            subject=inbound.subject,
            text=inbound.text,
            visibility=inbound.visibility.value,
            attachments=[a.model_dump(mode="json") for a in inbound.attachments],
            transcript=[t.model_dump(mode="json") for t in inbound.transcript],
            meta=dict(inbound.metadata),
            classification=classified.model_dump(mode="json", exclude={"contact"}),
        )
    )
    conversation.message_count += 1
    uow.record(
        conversation_id,
        RoutingEventType.CONTACT_CLASSIFIED,
        {
            "contact_id": str(inbound.contact_id),
            "category": classified.category.category,
            "language": classified.language.code,
            "priority": classified.priority.level.value,
            "first_response_due": classified.sla.first_response_due.isoformat(),
            "hold_reason": hold,
        },
    )
    if queued:
        uow.record(
            conversation_id,
            RoutingEventType.CONVERSATION_QUEUED,
            {"queue": queue.name, "rule": rule, "priority_score": conversation.priority_score},
        )
        uow.needs_dispatch = True
    await session.flush()
    return IngestOutcome(inbound.contact_id, conversation_id, False, queued)


async def _by_reference(
    session: AsyncSession, reference: str | None, inbound: InboundContact
) -> Conversation | None:
    """The conversation a quoted reference names, on the same channel (one thread, one channel)."""
    canonical = normalise_reference(reference)
    if canonical is None:
        return None
    found = await session.scalar(select(Conversation).where(Conversation.reference == canonical))
    if found is None or found.channel != inbound.channel.value:
        return None
    log.info("router.contact.threaded_by_reference", conversation_id=str(found.id))
    return found


async def _free_reference(session: AsyncSession, conversation_id: uuid.UUID) -> str | None:
    """The conversation's reference, unless another id shares its 40 bits (then none)."""
    reference = reference_for(conversation_id)
    taken = await session.scalar(
        select(Conversation.id).where(Conversation.reference == reference).limit(1)
    )
    if taken is not None:
        log.warning("router.conversation.reference_collision", conversation_id=str(conversation_id))
        return None
    return reference


def visible_to(
    principal: Principal, conversation: Conversation, offered_to: set[uuid.UUID]
) -> bool:
    """Agents see only conversations they hold or are being offered."""
    if principal.role in (Role.SUPERVISOR, Role.ADMIN):
        return True
    if principal.role is not Role.AGENT or principal.agent_id is None:
        return False
    return conversation.agent_id == principal.agent_id or principal.agent_id in offered_to


async def pending_offer_agents(session: AsyncSession, conversation_id: uuid.UUID) -> set[uuid.UUID]:
    rows = await session.scalars(
        select(Offer.agent_id).where(
            Offer.conversation_id == conversation_id, Offer.status == OfferStatus.PENDING.value
        )
    )
    return set(rows.all())


async def get_for(
    session: AsyncSession, principal: Principal, conversation_id: uuid.UUID
) -> Conversation:
    conversation = await find_conversation(session, conversation_id)
    if conversation is None or not visible_to(
        principal, conversation, await pending_offer_agents(session, conversation.id)
    ):
        raise NotFound("no such conversation")
    return conversation


async def find_conversation(
    session: AsyncSession, conversation_id: uuid.UUID
) -> Conversation | None:
    """By its id, or by an alias it is also known by."""
    conversation = await session.get(Conversation, conversation_id)
    if conversation is not None:
        return conversation
    alias = await session.get(ConversationAlias, conversation_id)
    return await session.get(Conversation, alias.conversation_id) if alias else None


async def messages_of(session: AsyncSession, conversation_id: uuid.UUID) -> list[Contact]:
    rows = await session.scalars(
        select(Contact)
        .where(Contact.conversation_id == conversation_id)
        .order_by(Contact.received_at, Contact.created_at)
    )
    return list(rows.all())


async def events_of(session: AsyncSession, conversation_id: uuid.UUID) -> list[ConversationEvent]:
    rows = await session.scalars(
        select(ConversationEvent)
        .where(ConversationEvent.conversation_id == conversation_id)
        .order_by(ConversationEvent.id)
    )
    return list(rows.all())


async def _end_work(
    uow: UnitOfWork, conversation: Conversation, reason: str, now: datetime
) -> uuid.UUID | None:
    """Close the active assignment and cancel any pending offer; returns the agent released."""
    session = uow.session
    await session.execute(
        update(Offer)
        .where(Offer.conversation_id == conversation.id, Offer.status == OfferStatus.PENDING.value)
        .values(status=OfferStatus.CANCELLED.value, responded_at=now)
    )
    assignment = await session.scalar(
        select(Assignment).where(
            Assignment.conversation_id == conversation.id, Assignment.ended_at.is_(None)
        )
    )
    if assignment is None:
        return None
    assignment.ended_at = now
    assignment.end_reason = reason
    return assignment.agent_id


def _may_act(principal: Principal, conversation: Conversation) -> bool:
    if principal.role in (Role.SUPERVISOR, Role.ADMIN):
        return True
    return principal.role is Role.AGENT and conversation.agent_id == principal.agent_id


async def complete(
    uow: UnitOfWork, principal: Principal, conversation_id: uuid.UUID
) -> Conversation:
    conversation = await get_for(uow.session, principal, conversation_id)
    if not _may_act(principal, conversation):
        raise NotFound("no such conversation")
    if conversation.status == ConversationStatus.COMPLETED.value:
        raise Conflict("the conversation is already completed")
    now = utcnow()
    released = await _end_work(uow, conversation, "completed", now)
    conversation.last_agent_id = released or conversation.agent_id
    # A survey follows real work only: not a held auto-reply or spam closed by a supervisor.
    conversation.survey_pending = conversation.status != ConversationStatus.HELD.value
    conversation.acknowledge_pending = False
    conversation.status = ConversationStatus.COMPLETED.value
    conversation.agent_id = None
    conversation.completed_at = now
    conversation.version += 1
    uow.record(
        conversation.id,
        RoutingEventType.CONVERSATION_COMPLETED,
        {"agent_id": str(released) if released else None},
        actor=_actor(principal),
    )
    uow.needs_dispatch = True
    metrics.CONVERSATIONS_COMPLETED.labels(
        queue=await queue_label(uow.session, conversation.queue_id)
    ).inc()
    await uow.session.flush()
    return conversation


async def transfer(
    uow: UnitOfWork, principal: Principal, conversation_id: uuid.UUID, queue: Queue
) -> Conversation:
    conversation = await get_for(uow.session, principal, conversation_id)
    if not _may_act(principal, conversation):
        raise NotFound("no such conversation")
    if conversation.status not in OPEN:
        raise Conflict(f"a {conversation.status} conversation cannot be transferred")
    now = utcnow()
    released = await _end_work(uow, conversation, "transferred", now)
    previous_queue = conversation.queue_id
    conversation.queue_id = queue.id
    conversation.status = ConversationStatus.WAITING.value
    conversation.agent_id = None
    conversation.last_agent_id = None
    # Keeps its place: the customer has already waited.
    conversation.enqueued_at = conversation.enqueued_at or now
    conversation.version += 1
    uow.record(
        conversation.id,
        RoutingEventType.CONVERSATION_TRANSFERRED,
        {
            "from_queue_id": str(previous_queue) if previous_queue else None,
            "to_queue": queue.name,
            "released_agent_id": str(released) if released else None,
        },
        actor=_actor(principal),
    )
    uow.needs_dispatch = True
    await uow.session.flush()
    return conversation


def _actor(principal: Principal) -> str:
    if principal.agent_id is not None:
        return f"agent:{principal.agent_id}"
    return principal.role.value
