"""Typed builders for test data."""

from __future__ import annotations

import uuid
from datetime import timedelta
from typing import Any

from omniroute.router.agents.service import create_agent as _create_agent
from omniroute.router.models import Agent, AgentStatus
from omniroute.router.uow import UnitOfWork
from omniroute.shared.events import (
    CategoryResult,
    Channel,
    ClassifiedContact,
    CustomerRef,
    InboundContact,
    LanguageResult,
    PriorityLevel,
    PriorityResult,
    Sentiment,
    SentimentResult,
    SlaResult,
    UrgencySignals,
    utcnow,
)


def inbound(
    *,
    channel: Channel = Channel.CHAT,
    external_id: str | None = None,
    conversation_key: str | None = None,
    text: str = "Hola, tengo una duda",
    email: str | None = "ana@example.com",
    metadata: dict[str, str] | None = None,
    customer: CustomerRef | None = None,
    **fields: Any,
) -> InboundContact:
    external_id = external_id or uuid.uuid4().hex
    return InboundContact.build(
        channel=channel,
        external_id=external_id,
        conversation_key=conversation_key or external_id,
        text=text,
        customer=customer or CustomerRef(email=email, name="Ana"),
        metadata=metadata or {},
        **fields,
    )


def classified(
    contact: InboundContact | None = None,
    *,
    category: str = "general",
    language: str = "es",
    score: int = 50,
    anger: float = 0.0,
    spam: bool = False,
    first_response_in: timedelta = timedelta(hours=1),
    **inbound_fields: Any,
) -> ClassifiedContact:
    contact = contact or inbound(**inbound_fields)
    now = utcnow()
    level = (
        PriorityLevel.P1 if score >= 80 else PriorityLevel.P2 if score >= 60 else PriorityLevel.P3
    )
    return ClassifiedContact(
        contact=contact,
        language=LanguageResult(code=language, confidence=0.9),
        category=CategoryResult(category=category, confidence=0.9),
        sentiment=SentimentResult(label=Sentiment.NEUTRAL, score=0.0, anger=anger),
        urgency=UrgencySignals(),
        priority=PriorityResult(level=level, score=score),
        sla=SlaResult(policy="test", first_response_due=now + first_response_in),
        required_skills=[category, f"lang:{language}"],
        spam=spam,
        classifier_version="test",
        classified_at=now,
    )


async def create_agent(
    uow: UnitOfWork,
    *,
    name: str = "Agent",
    skills: dict[str, int] | None = None,
    capacity: dict[str, int] | None = None,
    status: AgentStatus = AgentStatus.AVAILABLE,
) -> Agent:
    return await _create_agent(
        uow.session,
        name=name,
        skills=skills if skills is not None else {"general": 3},
        capacity=capacity if capacity is not None else {"default": 1},
        status=status,
    )
