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
    # Survey answers: CSAT average (1-5); NPS = % promoters (9-10) minus % detractors (0-6).
    survey_responses: int = 0
    csat_average: float | None = Field(default=None, description="Average CSAT, 1 to 5")
    nps_score: float | None = Field(default=None, description="NPS, -100 to 100")


class OverallStatsRead(BaseModel):
    conversations: dict[str, int] = Field(description="Conversations by status")
    sla_warnings: int
    sla_breaches: int
    notifications: dict[str, int] = Field(description="Notices produced, by kind")
    # Survey answers: CSAT average (1-5); NPS = % promoters (9-10) minus % detractors (0-6).
    survey_responses: int = 0
    csat_average: float | None = Field(default=None, description="Average CSAT, 1 to 5")
    nps_score: float | None = Field(default=None, description="NPS, -100 to 100")
