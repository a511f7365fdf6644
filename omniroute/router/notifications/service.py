"""Customer notices, produced by one timer from work recorded with the routing state.

Ingestion marks a conversation `acknowledge_pending`, completion marks it `survey_pending`, an
accepted offer leaves an assignment with no `notified_at`, and the SLA clock runs on
`first_response_due`. Each timer pass claims that work with conditional UPDATEs checked by row
count, so any number of router replicas produce each notice exactly once, in the same
transaction as the notification row and its routing event (rolled back together on failure).
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime
from typing import Any, TypeVar
from zoneinfo import ZoneInfo

import structlog
from sqlalchemy import Float, case, func, literal, select, true, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.sql.compiler import SQLCompiler
from sqlalchemy.sql.functions import FunctionElement

from omniroute.router.conversations.service import find_conversation
from omniroute.router.models import (
    Agent,
    Assignment,
    Conversation,
    ConversationStatus,
    Customer,
    CustomerIdentity,
)
from omniroute.router.notifications.models import Feedback, Notification, NotificationKind
from omniroute.router.notifications.templates import (
    Templates,
    base_language,
    format_due,
    greeting,
    render,
    zone,
)
from omniroute.router.uow import UnitOfWork
from omniroute.shared.db import UTCDateTime
from omniroute.shared.errors import Conflict, NotFound
from omniroute.shared.events import RoutingEventType, utcnow
from omniroute.shared.settings import RouterSettings

log = structlog.get_logger(__name__)

BATCH = 200
SLA_STATUSES = (ConversationStatus.WAITING.value, ConversationStatus.OFFERED.value)
PHONE_CHANNELS = frozenset({"sms", "whatsapp", "phone"})
ESCALATION_STEP = 20


@dataclass(frozen=True)
class PassResult:
    acknowledgements: int = 0
    assigned: int = 0
    warnings: int = 0
    breaches: int = 0
    surveys: int = 0


class epoch(FunctionElement[float]):  # noqa: N801  (reads as the SQL function it renders)
    """Seconds since the epoch of a timestamp, on SQLite and PostgreSQL alike."""

    type = Float()
    inherit_cache = True


@compiles(epoch, "sqlite")
def _epoch_sqlite(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    # Our UTC timestamps are stored as "YYYY-MM-DD HH:MM:SS.ffffff", which julianday() reads.
    return f"(julianday({compiler.process(element.clauses, **kw)}) * 86400.0)"


@compiles(epoch, "postgresql")
def _epoch_postgresql(element: epoch, compiler: SQLCompiler, **kw: Any) -> str:
    return f"EXTRACT(EPOCH FROM {compiler.process(element.clauses, **kw)})"


def _claimed(result: object) -> bool:
    return int(getattr(result, "rowcount", 0) or 0) == 1


class Notifier:
    """Renders and records notices; `run_once` is one pass of the timer."""

    def __init__(
        self, settings: RouterSettings, templates: Templates | None = None, batch: int = BATCH
    ) -> None:
        self.settings = settings
        self.batch = batch
        self.templates = templates or Templates.load(settings.templates_path)
        ZoneInfo(settings.brand_timezone)  # an unknown zone fails at start-up

    async def run_once(self, uow: UnitOfWork, now: datetime | None = None) -> PassResult:
        """Every phase in one transaction (the timer gives each phase its own)."""
        now = now or utcnow()
        acknowledgements = await self.acknowledge(uow, now)
        assigned = await self.announce_assignees(uow, now)
        warnings, breaches = await self.watch_sla(uow, now)
        surveys = await self.send_surveys(uow, now)
        return PassResult(acknowledgements, assigned, warnings, breaches, surveys)

    async def acknowledge(self, uow: UnitOfWork, now: datetime) -> int:
        """We received it: new and reopened conversations (never held ones)."""
        session = uow.session
        due = (
            await session.scalars(
                select(Conversation)
                .where(Conversation.acknowledge_pending == true())
                .limit(self.batch)
            )
        ).all()
        if not due:
            return 0
        # One conditional UPDATE claims them all; RETURNING says which this pass won.
        claimed = await _claim(
            session,
            update(Conversation)
            .where(
                Conversation.id.in_([c.id for c in due]), Conversation.acknowledge_pending == true()
            )
            .values(acknowledge_pending=False)
            .returning(Conversation.id),
        )
        won = [conversation for conversation in due if conversation.id in claimed]
        customers = await _load_customers(session, won)
        for conversation in won:
            await self.notify(
                uow,
                conversation,
                NotificationKind.ACKNOWLEDGEMENT,
                now,
                identities=customers.identities,
                flush=False,
            )
        await session.flush()
        return len(won)

    async def announce_assignees(self, uow: UnitOfWork, now: datetime) -> int:
        """Who is responsible: once per assignment (an accepted offer)."""
        session = uow.session
        due = (
            await session.scalars(
                select(Assignment).where(Assignment.notified_at.is_(None)).limit(self.batch)
            )
        ).all()
        if not due:
            return 0
        claimed = await _claim(
            session,
            update(Assignment)
            .where(Assignment.id.in_([a.id for a in due]), Assignment.notified_at.is_(None))
            .values(notified_at=now)
            .returning(Assignment.id),
        )
        # Already told, or over before we could tell: no notice.
        won = [a for a in due if a.id in claimed and a.ended_at is None]
        conversations = await _by_id(session, Conversation, {a.conversation_id for a in won})
        agents = await _by_id(session, Agent, {a.agent_id for a in won})
        customers = await _load_customers(session, list(conversations.values()))
        made = 0
        for assignment in won:
            conversation = conversations.get(assignment.conversation_id)
            agent = agents.get(assignment.agent_id)
            if conversation is None or agent is None:
                continue
            await self.notify(
                uow,
                conversation,
                NotificationKind.ASSIGNED,
                now,
                agent=agent,
                identities=customers.identities,
                flush=False,
            )
            made += 1
        await session.flush()
        return made

    async def watch_sla(self, uow: UnitOfWork, now: datetime) -> tuple[int, int]:
        """An honest delay notice once the configured share of the time is used; escalation at
        the deadline. Only while the customer is still waiting for an agent."""
        session = uow.session
        fraction = self.settings.sla_warning_fraction
        # Exactly the rows due for something, computed by the database: selecting by due time
        # alone would let many fresh short-SLA contacts hide an old one whose warning is due.
        started = func.coalesce(Conversation.enqueued_at, Conversation.first_received_at)
        at_risk = epoch(literal(now, UTCDateTime())) >= epoch(started) + fraction * (
            epoch(Conversation.first_response_due) - epoch(started)
        )
        candidates = (
            await session.scalars(
                select(Conversation)
                .where(
                    Conversation.status.in_(SLA_STATUSES),
                    Conversation.first_response_due.is_not(None),
                    Conversation.sla_breached_at.is_(None),
                    (Conversation.first_response_due <= now)
                    | (Conversation.sla_warned_at.is_(None) & at_risk),
                )
                .order_by(Conversation.first_response_due)
                .limit(self.batch)
            )
        ).all()
        warnings = breaches = 0
        for conversation in candidates:
            due = conversation.first_response_due
            assert due is not None
            start = conversation.enqueued_at or conversation.first_received_at
            warn_at = start + (due - start) * fraction
            if conversation.sla_warned_at is None and now >= warn_at:
                claim = await session.execute(
                    update(Conversation)
                    .where(
                        Conversation.id == conversation.id,
                        Conversation.sla_warned_at.is_(None),
                        Conversation.status.in_(SLA_STATUSES),
                    )
                    .values(sla_warned_at=now)
                    .execution_options(synchronize_session=False)
                )
                if _claimed(claim):
                    uow.record(
                        conversation.id,
                        RoutingEventType.SLA_WARNING,
                        {"first_response_due": due.isoformat(), "fraction_used": fraction},
                    )
                    await self.notify(uow, conversation, NotificationKind.DELAY, now)
                    warnings += 1
            if now >= due and await self._breach(uow, conversation, now):
                breaches += 1
        return warnings, breaches

    async def _breach(self, uow: UnitOfWork, conversation: Conversation, now: datetime) -> bool:
        session = uow.session
        raised = case(
            (Conversation.priority_score + ESCALATION_STEP > 100, 100),
            else_=Conversation.priority_score + ESCALATION_STEP,
        )
        level = case(
            (Conversation.priority_level.in_(("P1", "P2")), "P1"),
            (Conversation.priority_level == "P3", "P2"),
            else_="P3",
        )
        claim = await session.execute(
            update(Conversation)
            .where(
                Conversation.id == conversation.id,
                Conversation.sla_breached_at.is_(None),
                Conversation.status.in_(SLA_STATUSES),
            )
            .values(
                sla_breached_at=now,
                priority_score=raised,
                priority_level=level,
                version=Conversation.version + 1,
            )
            .execution_options(synchronize_session=False)
        )
        if not _claimed(claim):
            return False
        previous = (conversation.priority_level, conversation.priority_score)
        await session.refresh(conversation)
        due = conversation.first_response_due
        uow.record(
            conversation.id,
            RoutingEventType.SLA_BREACH,
            {"first_response_due": due.isoformat() if due else None},
        )
        uow.record(
            conversation.id,
            RoutingEventType.CONVERSATION_ESCALATED,
            {
                "reason": "sla_breach",
                "priority_from": previous[0],
                "priority_to": conversation.priority_level,
                "score_from": previous[1],
                "score_to": conversation.priority_score,
            },
        )
        uow.needs_dispatch = True
        log.info("router.sla.breached", conversation_id=str(conversation.id))
        return True

    async def send_surveys(self, uow: UnitOfWork, now: datetime) -> int:
        """After completion, unless the customer declined surveys."""
        session = uow.session
        due = (
            await session.scalars(
                select(Conversation).where(Conversation.survey_pending == true()).limit(self.batch)
            )
        ).all()
        made = 0
        for conversation in due:
            claim = await session.execute(
                update(Conversation)
                .where(
                    Conversation.id == conversation.id,
                    Conversation.survey_pending == true(),
                    Conversation.status == ConversationStatus.COMPLETED.value,
                )
                .values(survey_pending=False)
                .execution_options(synchronize_session=False)
            )
            if not _claimed(claim):
                continue
            customer = await _customer(session, conversation)
            if customer is not None and (customer.consent or {}).get("surveys") is False:
                continue
            await self.notify(uow, conversation, NotificationKind.SURVEY, now)
            made += 1
        return made

    async def notify(
        self,
        uow: UnitOfWork,
        conversation: Conversation,
        kind: NotificationKind,
        now: datetime,
        *,
        agent: Agent | None = None,
        identities: Identities | None = None,
        flush: bool = True,
    ) -> Notification:
        """Render a notice for the conversation's customer and record it (row + routing event).

        With `flush=False` the row is written with the caller's next flush (a pass writes all
        its notices in one statement).
        """
        session = uow.session
        customer = await _customer(session, conversation)
        wanted = base_language((customer.language if customer else None) or conversation.language)
        template, language = self.templates.find(kind.value, conversation.channel, wanted)
        tz = zone(customer.timezone if customer else None, self.settings.brand_timezone)
        due = conversation.first_response_due
        subject, text = render(
            template,
            {
                "greeting": greeting(now, language, tz),
                "brand": self.settings.brand_name,
                "reference": conversation.reference or str(conversation.id)[:8].upper(),
                "due": format_due(due, language, tz) if due else "",
                "agent": _first_name(agent.name) if agent else "",
            },
        )
        recipient = await _recipient(
            session,
            conversation,
            customer,
            identities.get(customer.id) if identities and customer else None,
        )
        notification = Notification(
            id=uuid.uuid4(),
            conversation_id=conversation.id,
            customer_id=customer.id if customer else None,
            kind=kind.value,
            channel=conversation.channel,
            language=language,
            recipient=recipient,
            subject=subject,
            text=text,
            created_at=now,
        )
        session.add(notification)
        if flush:
            await session.flush()
        uow.record(
            conversation.id,
            RoutingEventType.NOTIFICATION_SENT,
            {
                "notification_id": str(notification.id),
                "kind": kind.value,
                "channel": conversation.channel,
                "language": language,
                "recipient": recipient,
                "thread": conversation.conversation_key,
                "reference": conversation.reference,
                "subject": subject,
                "text": text,
            },
        )
        log.info(
            "router.notification.created",
            conversation_id=str(conversation.id),
            kind=kind.value,
            language=language,
        )
        return notification


async def _claim(session: AsyncSession, claim: Any) -> set[uuid.UUID]:
    """Run a conditional UPDATE ... RETURNING id; the ids it changed are this pass's to handle."""
    rows = await session.execute(claim.execution_options(synchronize_session=False))
    return set(rows.scalars().all())


M = TypeVar("M", Conversation, Agent, Customer)


async def _by_id(session: AsyncSession, model: type[M], ids: set[uuid.UUID]) -> dict[uuid.UUID, M]:
    """Rows by id in one query (they join the identity map, so later gets are free)."""
    if not ids:
        return {}
    rows = await session.scalars(select(model).where(model.id.in_(ids)))
    return {row.id: row for row in rows}


Identities = dict[uuid.UUID, list[CustomerIdentity]]


@dataclass
class _Customers:
    """The customers of a pass's conversations and their identities, loaded at once. Holding
    the rows keeps them in the session's (weak) identity map, so `session.get` finds them."""

    rows: dict[uuid.UUID, Customer]
    identities: Identities


async def _load_customers(session: AsyncSession, conversations: list[Conversation]) -> _Customers:
    """In two queries instead of two per notice."""
    customers = await _by_id(
        session, Customer, {c.customer_id for c in conversations if c.customer_id is not None}
    )
    identities: Identities = {customer_id: [] for customer_id in customers}
    if customers:
        rows = await session.scalars(
            select(CustomerIdentity)
            .where(CustomerIdentity.customer_id.in_(customers.keys()))
            .order_by(CustomerIdentity.id)
        )
        for row in rows:
            identities[row.customer_id].append(row)
    return _Customers(customers, identities)


def _first_name(name: str) -> str:
    return name.strip().split()[0] if name.strip() else name


async def _customer(session: AsyncSession, conversation: Conversation) -> Customer | None:
    if conversation.customer_id is None:
        return None
    customer = await session.get(Customer, conversation.customer_id)
    return customer if customer is not None and customer.erased_at is None else None


async def _recipient(
    session: AsyncSession,
    conversation: Conversation,
    customer: Customer | None,
    known: list[CustomerIdentity] | None = None,
) -> str | None:
    """Where the channel should send it: the e-mail address or phone number we know; None means
    a reply in the conversation's thread (chat sessions, social DMs and comments).

    `known` are the customer's identities in id order, when the caller already loaded them.
    """
    if customer is None:
        return None
    if conversation.channel in PHONE_CHANNELS:
        kinds = ["phone"]
    elif conversation.channel in ("email", "chat", "api"):
        kinds = ["email"]
    else:
        return None
    if known is not None:
        identity = next((row for row in known if row.kind in kinds), None)
    else:
        identity = await session.scalar(
            select(CustomerIdentity)
            .where(CustomerIdentity.customer_id == customer.id, CustomerIdentity.kind.in_(kinds))
            .order_by(CustomerIdentity.id)
            .limit(1)
        )
    return f"{identity.kind}:{identity.value}" if identity else None


async def notifications_of(session: AsyncSession, conversation_id: uuid.UUID) -> list[Notification]:
    rows = await session.scalars(
        select(Notification)
        .where(Notification.conversation_id == conversation_id)
        .order_by(Notification.created_at, Notification.id)
    )
    return list(rows.all())


@dataclass(frozen=True)
class FeedbackStats:
    responses: int
    csat_average: float | None
    nps_score: float | None  # % promoters (9-10) minus % detractors (0-6), -100..100


async def feedback_stats(session: AsyncSession, queue_id: uuid.UUID | None = None) -> FeedbackStats:
    query = select(
        func.count(Feedback.id),
        func.avg(Feedback.csat),
        func.count(Feedback.nps),
        func.sum(case((Feedback.nps >= 9, 1), else_=0)),
        func.sum(case((Feedback.nps <= 6, 1), else_=0)),
    )
    if queue_id is not None:
        query = query.where(Feedback.queue_id == queue_id)
    responses, csat, nps_count, promoters, detractors = (await session.execute(query)).one()
    nps = (
        round(100.0 * (int(promoters or 0) - int(detractors or 0)) / int(nps_count), 1)
        if nps_count
        else None
    )
    return FeedbackStats(
        responses=int(responses or 0),
        csat_average=round(float(csat), 2) if csat is not None else None,
        nps_score=nps,
    )


async def record_feedback(
    uow: UnitOfWork,
    conversation_id: uuid.UUID,
    *,
    csat: int | None,
    nps: int | None,
    comment: str | None,
) -> tuple[Feedback, bool]:
    """Store the customer's answer to the survey; returns it and whether it is new.

    The first answer counts. The same answer relayed again (a retried webhook) is accepted
    unchanged; a different second answer is a conflict."""
    session = uow.session
    conversation = await find_conversation(session, conversation_id)
    if conversation is None:
        raise NotFound("no such conversation")
    conversation_id = conversation.id
    existing = await session.scalar(
        select(Feedback).where(Feedback.conversation_id == conversation_id)
    )
    if existing is not None:
        if (existing.csat, existing.nps, existing.comment) == (csat, nps, comment):
            return existing, False
        raise Conflict("this conversation's survey was already answered")
    if conversation.status != ConversationStatus.COMPLETED.value:
        raise Conflict("the survey opens when the conversation is completed")
    assignment_agent = await session.scalar(
        select(Assignment.agent_id)
        .where(Assignment.conversation_id == conversation_id)
        .order_by(Assignment.started_at.desc())
        .limit(1)
    )
    feedback = Feedback(
        conversation_id=conversation_id,
        customer_id=conversation.customer_id,
        queue_id=conversation.queue_id,
        agent_id=assignment_agent or conversation.last_agent_id,
        channel=conversation.channel,
        csat=csat,
        nps=nps,
        comment=comment,
    )
    session.add(feedback)
    await session.flush()
    uow.record(
        conversation_id,
        RoutingEventType.FEEDBACK_RECEIVED,
        {"csat": csat, "nps": nps, "has_comment": bool(comment)},
    )
    return feedback, True
