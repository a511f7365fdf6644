from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from omniroute.router.models import AgentStatus

Skills = dict[str, int]
Capacity = dict[str, int]


class AgentCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    status: AgentStatus = AgentStatus.OFFLINE
    skills: Skills = Field(
        default_factory=dict,
        description='Skill -> proficiency 1..5, e.g. {"billing": 3, "lang:es": 5}',
    )
    capacity: Capacity = Field(
        default_factory=lambda: {"default": 1},
        description='Conversations at once per channel, e.g. {"chat": 3, "email": 5, "default": 1}',
    )


class AgentUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str | None = Field(default=None, min_length=1, max_length=200)
    email: str | None = Field(default=None, max_length=320)
    status: AgentStatus | None = None
    skills: Skills | None = None
    capacity: Capacity | None = None


class AgentRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    email: str | None
    status: AgentStatus
    skills: Skills
    capacity: Capacity
    idle_since: datetime
    created_at: datetime


class OfferRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    agent_id: uuid.UUID
    queue_id: uuid.UUID | None
    channel: str
    status: str
    created_at: datetime
    expires_at: datetime
    responded_at: datetime | None


class OffersPage(BaseModel):
    offers: list[OfferRead]
