"""GDPR erasure: a customer's personal data goes, the anonymous routing facts stay.

Kept for metrics: ids, channels, statuses, queues, categories, languages, priorities, SLA times,
offers, assignments, decision records, notice kinds and survey scores. Scrubbed: the customer's
profile and identities; every message's subject, text, attachments, transcript, metadata,
provider message id and the classification's reasons (they quote the text); conversation
subjects and thread keys (e-mail Message-IDs, phone numbers); notification texts and recipients;
survey comments; and the personal fields of the conversations' event data.

Open conversations of the customer end (pending offers cancelled, assignments closed): with
their content gone they cannot be answered, and no acknowledgement or survey is owed for them.

Parts of the router that keep more copies (outbound webhook deliveries) register an eraser with
`register_eraser`; it runs in the same transaction.
"""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

import structlog
from sqlalchemy import delete, func, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from omniroute.router.customers.models import Erasure
from omniroute.router.models import (
    Assignment,
    Contact,
    Conversation,
    ConversationEvent,
    ConversationStatus,
    Customer,
    CustomerIdentity,
    Offer,
    OfferStatus,
)
from omniroute.router.notifications.models import Feedback, Notification
from omniroute.router.uow import UnitOfWork
from omniroute.shared.errors import NotFound
from omniroute.shared.events import RoutingEventType, utcnow

log = structlog.get_logger(__name__)

# Event data keys that may hold personal data; everything else in event data is ids and facts.
PERSONAL_EVENT_KEYS = frozenset(
    {"text", "subject", "recipient", "thread", "comment", "name", "email", "phone", "handle"}
)
# What of a classification stays: decisions, not the words behind them.
ANONYMOUS_CLASSIFICATION_KEYS = frozenset(
    {
        "schema_version",
        "language",
        "category",
        "sentiment",
        "urgency",
        "pii_kinds",
        "spam",
        "priority",
        "sla",
        "required_skills",
        "classifier_version",
        "classified_at",
    }
)

Eraser = Callable[[AsyncSession, list[uuid.UUID]], Awaitable[None]]
_erasers: list[Eraser] = []


def register_eraser(eraser: Eraser) -> None:
    """Add a step that scrubs another store's copies of the given conversations' personal data."""
    if eraser not in _erasers:
        _erasers.append(eraser)


def _erased_key() -> str:
    # Random, not a hash: a hash of a phone number or address can be reversed by guessing.
    return f"erased:{uuid.uuid4().hex}"


def _scrub_event(data: dict[str, Any]) -> dict[str, Any]:
    kept = {key: value for key, value in data.items() if key not in PERSONAL_EVENT_KEYS}
    if len(kept) != len(data):
        kept["erased"] = True
    return kept


async def _close(uow: UnitOfWork, conversation: Conversation, now: datetime) -> None:
    """Open work about an erased customer cannot be answered any more: it ends, and no notice
    (acknowledgement, survey) is owed for it."""
    session = uow.session
    conversation.acknowledge_pending = False
    conversation.survey_pending = False
    if conversation.status == ConversationStatus.COMPLETED.value:
        return
    await session.execute(
        update(Offer)
        .where(Offer.conversation_id == conversation.id, Offer.status == OfferStatus.PENDING.value)
        .values(status=OfferStatus.CANCELLED.value, responded_at=now)
        .execution_options(synchronize_session=False)
    )
    await session.execute(
        update(Assignment)
        .where(Assignment.conversation_id == conversation.id, Assignment.ended_at.is_(None))
        .values(
            ended_at=now,
            end_reason="erased",
            notified_at=func.coalesce(Assignment.notified_at, now),
        )
        .execution_options(synchronize_session=False)
    )
    conversation.last_agent_id = conversation.agent_id or conversation.last_agent_id
    conversation.status = ConversationStatus.COMPLETED.value
    conversation.agent_id = None
    conversation.completed_at = now
    conversation.version += 1
    uow.record(
        conversation.id,
        RoutingEventType.CONVERSATION_COMPLETED,
        {"reason": "customer erased"},
        actor="system",
    )
    uow.needs_dispatch = True


async def erase_customer(uow: UnitOfWork, customer_id: uuid.UUID, *, actor: str) -> Erasure:
    """Erase a customer's personal data; erasing again returns the first erasure's record."""
    session = uow.session
    customer = await session.get(Customer, customer_id)
    if customer is None:
        raise NotFound("no such customer")
    if customer.erased_at is not None:
        done = await session.scalar(select(Erasure).where(Erasure.customer_id == customer_id))
        if done is not None:
            return done
    now = utcnow()
    conversation_ids = list(
        (
            await session.scalars(
                select(Conversation.id).where(Conversation.customer_id == customer_id)
            )
        ).all()
    )
    identities = await session.execute(
        delete(CustomerIdentity)
        .where(CustomerIdentity.customer_id == customer_id)
        .execution_options(synchronize_session=False)
    )
    for name in ("name", "email", "phone", "handle", "language", "tier", "timezone"):
        setattr(customer, name, None)
    customer.consent = {}
    customer.erased_at = now

    contacts = 0
    for conversation_id in conversation_ids:
        conversation = await session.get(Conversation, conversation_id)
        assert conversation is not None
        conversation.subject = None
        conversation.conversation_key = _erased_key()
        await _close(uow, conversation, now)
        for contact in (
            await session.scalars(select(Contact).where(Contact.conversation_id == conversation_id))
        ).all():
            contact.external_id = _erased_key()
            contact.subject = None
            contact.text = ""
            contact.attachments = []
            contact.transcript = []
            contact.meta = {}
            contact.classification = {
                key: value
                for key, value in (contact.classification or {}).items()
                if key in ANONYMOUS_CLASSIFICATION_KEYS
            }
            contacts += 1
        await uow.flush_log()  # the log read below must include what this erasure recorded
        for event in (
            await session.scalars(
                select(ConversationEvent).where(
                    ConversationEvent.conversation_id == conversation_id
                )
            )
        ).all():
            if PERSONAL_EVENT_KEYS & set(event.data or {}):
                event.data = _scrub_event(event.data)
    notifications = 0
    if conversation_ids:
        scrubbed = await session.execute(
            update(Notification)
            .where(Notification.conversation_id.in_(conversation_ids))
            .values(recipient=None, subject=None, text="")
            .execution_options(synchronize_session=False)
        )
        notifications = int(scrubbed.rowcount or 0)  # type: ignore[attr-defined]
    # Answers and notices filed under the customer (also on conversations merged away from them).
    await session.execute(
        update(Feedback)
        .where(Feedback.customer_id == customer_id)
        .values(comment=None)
        .execution_options(synchronize_session=False)
    )
    if conversation_ids:
        await session.execute(
            update(Feedback)
            .where(Feedback.conversation_id.in_(conversation_ids))
            .values(comment=None)
            .execution_options(synchronize_session=False)
        )
    await session.execute(
        update(Notification)
        .where(Notification.customer_id == customer_id)
        .values(recipient=None, subject=None, text="")
        .execution_options(synchronize_session=False)
    )
    for eraser in _erasers:
        await eraser(session, conversation_ids)
    erasure = Erasure(
        customer_id=customer_id,
        actor=actor,
        conversations=len(conversation_ids),
        contacts=contacts,
        identities=int(identities.rowcount or 0),  # type: ignore[attr-defined]
        notifications=notifications,
        erased_at=now,
    )
    session.add(erasure)
    await session.flush()
    for conversation_id in conversation_ids:
        uow.record(
            conversation_id,
            RoutingEventType.CUSTOMER_ERASED,
            {"customer_id": str(customer_id), "erasure_id": str(erasure.id)},
            actor=actor,
        )
    await session.flush()
    log.info(
        "router.customer.erased",
        customer_id=str(customer_id),
        conversations=len(conversation_ids),
        contacts=contacts,
    )
    return erasure
