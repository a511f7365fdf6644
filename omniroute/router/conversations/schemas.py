from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from omniroute.router.notifications.schemas import NotificationRead


class MessageRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    channel: str
    external_id: str
    received_at: datetime
    occurred_at: datetime | None
    subject: str | None
    text: str
    visibility: str
    attachments: list[dict[str, Any]]
    transcript: list[dict[str, Any]]
    metadata: dict[str, str] = Field(validation_alias="meta")
    classification: dict[str, Any]


class EventRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    event_id: uuid.UUID
    type: str
    occurred_at: datetime
    actor: str | None
    data: dict[str, Any]


class ConversationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    channel: str
    status: str
    hold_reason: str | None
    customer_id: uuid.UUID | None
    queue_id: uuid.UUID | None
    queue: str | None = None
    agent_id: uuid.UUID | None
    subject: str | None
    visibility: str
    language: str | None
    category: str | None
    priority_level: str | None
    priority_score: int
    required_skills: list[str]
    sla_policy: str | None
    first_response_due: datetime | None
    resolution_due: datetime | None
    first_received_at: datetime
    enqueued_at: datetime | None
    assigned_at: datetime | None
    completed_at: datetime | None
    message_count: int
    reference: str | None = None


class ConversationDetail(ConversationRead):
    classification: dict[str, Any] | None = Field(
        default=None, description="The latest message's classification, with its reasons"
    )
    messages: list[MessageRead] = Field(default_factory=list)
    events: list[EventRead] = Field(default_factory=list)
    notifications: list[NotificationRead] = Field(
        default_factory=list, description="What the customer was told, oldest first"
    )


class TransferRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    queue: str = Field(min_length=1, max_length=100, description="Name or id of the target queue")
