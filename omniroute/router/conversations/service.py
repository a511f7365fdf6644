"""Conversations: contacts join them, the engine queues them, agents complete or transfer them."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import structlog
from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omniroute.router.customers.service import IdentityBook, identities_of, resolve_customer
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
from omniroute.router.queues.service import QueueRef, queue_label, queue_ref
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
    conversation: Conversation, classified: ClassifiedContact, queue: QueueRef
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


@dataclass
class _Known:
    """What a batch looked up at once, kept current as its contacts are stored."""

    contacts: dict[uuid.UUID, uuid.UUID]  # contact id -> its conversation id
    conversations: dict[uuid.UUID, Conversation]  # by id, and by alias id
    references: set[str]  # references already taken
    identities: IdentityBook
    # Written at the end, conversations first: without relationship() the ORM would not know
    # to insert a conversation before its contacts.
    new_conversations: list[Conversation] = field(default_factory=list)
    new_contacts: list[Contact] = field(default_factory=list)


async def _look_up(session: AsyncSession, batch: Sequence[ClassifiedContact]) -> _Known:
    """A few IN queries for the whole batch instead of several lookups per contact."""
    contact_ids = [c.contact.contact_id for c in batch]
    thread_ids = list(dict.fromkeys(c.contact.conversation_id for c in batch))
    stored = await session.execute(
        select(Contact.id, Contact.conversation_id).where(Contact.id.in_(contact_ids))
    )
    conversations = {
        conversation.id: conversation
        for conversation in await session.scalars(
            select(Conversation).where(Conversation.id.in_(thread_ids))
        )
    }
    aliases = dict(
        (
            await session.execute(
                select(ConversationAlias.alias_id, ConversationAlias.conversation_id).where(
                    ConversationAlias.alias_id.in_(
                        [t for t in thread_ids if t not in conversations]
                    )
                )
            )
        ).all()
    )
    if aliases:
        for conversation in await session.scalars(
            select(Conversation).where(Conversation.id.in_(set(aliases.values())))
        ):
            conversations[conversation.id] = conversation
        for alias_id, conversation_id in aliases.items():
            if conversation_id in conversations:
                conversations[alias_id] = conversations[conversation_id]
    wanted = [reference_for(t) for t in thread_ids if t not in conversations]
    taken = await session.scalars(
        select(Conversation.reference).where(Conversation.reference.in_(wanted))
    )
    book = await IdentityBook.load(
        session,
        (
            pair
            for c in batch
            for pair in identities_of(c.contact.customer, c.contact.channel.value)
        ),
    )
    return _Known(
        identities=book,
        contacts={contact_id: conversation_id for contact_id, conversation_id in stored},
        conversations=conversations,
        references={reference for reference in taken if reference is not None},
    )


async def ingest_classified(
    uow: UnitOfWork,
    classified: ClassifiedContact,
    rules: RoutingRules,
    reopen_window: timedelta,
) -> IngestOutcome:
    """Store a classified contact exactly once and put its conversation where it belongs."""
    (outcome,) = await ingest_batch(uow, [classified], rules, reopen_window)
    return outcome


async def ingest_batch(
    uow: UnitOfWork,
    batch: Sequence[ClassifiedContact],
    rules: RoutingRules,
    reopen_window: timedelta,
) -> list[IngestOutcome]:
    """Store classified contacts exactly once each, in order, in the unit of work's transaction.

    Contacts of one conversation may arrive in one batch: each sees what the previous stored.
    Rows are written by one flush at the end, so the inserts of a batch go out together.
    """
    known = await _look_up(uow.session, batch)
    outcomes = [await _ingest(uow, known, classified, rules, reopen_window) for classified in batch]
    await known.identities.write_new(uow.session)
    for conversation in known.new_conversations:
        # A later contact of the batch may have merged this conversation's customer away.
        conversation.customer_id = known.identities.survivor(conversation.customer_id)
    uow.session.add_all(known.new_conversations)
    await uow.session.flush()
    uow.session.add_all(known.new_contacts)
    await uow.session.flush()
    return outcomes


async def _ingest(
    uow: UnitOfWork,
    known: _Known,
    classified: ClassifiedContact,
    rules: RoutingRules,
    reopen_window: timedelta,
) -> IngestOutcome:
    session = uow.session
    inbound = classified.contact
    stored = known.contacts.get(inbound.contact_id)
    if stored is not None:
        return IngestOutcome(inbound.contact_id, stored, True, False)

    now = utcnow()
    queue_name, rule = rules.queue_for(classified)
    queue = await queue_ref(session, queue_name)
    customer = await resolve_customer(
        uow, inbound.customer, inbound.channel.value, known.identities
    )
    hold = _hold_reason(classified)
    conversation = known.conversations.get(inbound.conversation_id)
    if conversation is None:
        # Threading headers lost (a new e-mail quoting "[#ABCD-1234]"): join by reference.
        conversation = await _by_reference(session, inbound.metadata.get("reference"), inbound)
        if conversation is not None:
            # The gateway's receipt named the thread's own id: keep it valid, and let later
            # messages of that thread find this conversation without the reference.
            session.add(
                ConversationAlias(alias_id=inbound.conversation_id, conversation_id=conversation.id)
            )
            known.conversations[inbound.conversation_id] = conversation
    queued = False
    conversation_id = conversation.id if conversation is not None else inbound.conversation_id
    contact_data = {"contact_id": str(inbound.contact_id), "channel": inbound.channel.value}

    if conversation is None:
        reference: str | None = reference_for(conversation_id)
        if reference in known.references:
            # Another id shares its 40 bits: no reference rather than an ambiguous one.
            log.warning(
                "router.conversation.reference_collision", conversation_id=str(conversation_id)
            )
            reference = None
        elif reference is not None:
            known.references.add(reference)
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
            message_count=1,
            version=0,
            reference=reference,
            # No acknowledgement for held messages: auto-replies must not start mail loops.
            acknowledge_pending=hold is None,
        )
        _apply_classification(conversation, classified, queue)
        known.new_conversations.append(conversation)
        known.conversations[conversation_id] = conversation
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
        conversation.message_count += 1

    known.new_contacts.append(
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
    known.contacts[inbound.contact_id] = conversation_id
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
