from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field


class QueueCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(min_length=1, max_length=100, pattern=r"^[a-z0-9][a-z0-9_.-]*$")
    description: str | None = Field(default=None, max_length=500)
    required_skills: list[str] = Field(default_factory=list, max_length=20)


class QueueRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    name: str
    description: str | None
    required_skills: list[str]
    created_at: datetime


class QueueStatsRead(BaseModel):
    queue_id: uuid.UUID
    name: str
    waiting: int
    offered: int
    assigned: int
    longest_wait_seconds: float
    agents_available: int
