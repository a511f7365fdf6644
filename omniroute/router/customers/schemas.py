from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class IdentityRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    kind: str
    value: str


class ConversationSummary(BaseModel):
    """One conversation in the customer's history, on whichever channel."""

    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    reference: str | None
    channel: str
    status: str
    subject: str | None
    category: str | None
    language: str | None
    priority_level: str | None
    first_received_at: datetime
    assigned_at: datetime | None
    completed_at: datetime | None
    message_count: int


class CustomerRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str | None
    email: str | None
    phone: str | None
    handle: str | None
    language: str | None
    tier: str | None
    timezone: str | None
    consent: dict[str, bool]
    created_at: datetime
    updated_at: datetime


class CustomerDetail(CustomerRead):
    identities: list[IdentityRead] = Field(default_factory=list)
    conversations: list[ConversationSummary] = Field(default_factory=list)


class CustomerUpdate(BaseModel):
    """Profile facts a supervisor may set; consent keys are merged (e.g. {"surveys": false})."""

    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, max_length=512)
    language: str | None = Field(default=None, max_length=16)
    tier: str | None = Field(default=None, max_length=32)
    timezone: str | None = Field(default=None, max_length=64)
    consent: dict[str, bool] | None = Field(default=None, max_length=16)


class MergeRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    other_id: uuid.UUID = Field(description="The customer folded into this one (then deleted)")


class MergeRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    customer_id: uuid.UUID
    merged_id: uuid.UUID
    actor: str
    reason: str
    identities_moved: int
    conversations_moved: int
    merged_at: datetime


class ErasureRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    customer_id: uuid.UUID
    actor: str
    conversations: int
    contacts: int
    identities: int
    notifications: int
    erased_at: datetime
