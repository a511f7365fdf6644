"""Notices produced for customers, and the satisfaction answers they give back."""

from __future__ import annotations

import uuid
from datetime import datetime
from enum import StrEnum

from sqlalchemy import ForeignKey, Index, Integer, String, Text, Uuid
from sqlalchemy.orm import Mapped, mapped_column

from omniroute.shared.db import Base, UTCDateTime
from omniroute.shared.events import utcnow


class NotificationKind(StrEnum):
    ACKNOWLEDGEMENT = "acknowledgement"  # we received it, reference, answer due by
    ASSIGNED = "assigned"  # who is responsible
    DELAY = "delay"  # the SLA is at risk: an honest delay notice
    SURVEY = "survey"  # after completion: CSAT and NPS


class Notification(Base):
    """One message for the customer; the channel integration sends it (via the routing event)."""

    __tablename__ = "notifications"
    __table_args__ = (Index("ix_notifications_conversation", "conversation_id", "created_at"),)

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE")
    )
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    kind: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(32))
    language: Mapped[str] = mapped_column(String(16))
    # "email:ana@example.com", "phone:+34600111222", "provider:wa_id:346..." or None (reply
    # in the thread, e.g. a chat session).
    recipient: Mapped[str | None] = mapped_column(String(600))
    subject: Mapped[str | None] = mapped_column(String(500))
    text: Mapped[str] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class Feedback(Base):
    """A customer's answer to the survey: one per conversation."""

    __tablename__ = "feedback"

    id: Mapped[uuid.UUID] = mapped_column(Uuid, primary_key=True, default=uuid.uuid4)
    conversation_id: Mapped[uuid.UUID] = mapped_column(
        ForeignKey("conversations.id", ondelete="CASCADE"), unique=True
    )
    customer_id: Mapped[uuid.UUID | None] = mapped_column(
        ForeignKey("customers.id", ondelete="SET NULL"), index=True
    )
    # Copied at answer time so stats stay right after a transfer or reassignment.
    queue_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("queues.id"), index=True)
    agent_id: Mapped[uuid.UUID | None] = mapped_column(ForeignKey("agents.id"))
    channel: Mapped[str] = mapped_column(String(32))
    csat: Mapped[int | None] = mapped_column(Integer)  # 1..5
    nps: Mapped[int | None] = mapped_column(Integer)  # 0..10
    comment: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
