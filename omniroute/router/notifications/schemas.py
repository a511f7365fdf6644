from __future__ import annotations

import uuid
from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field, model_validator


class NotificationRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    kind: str
    channel: str
    language: str
    recipient: str | None
    subject: str | None
    text: str
    created_at: datetime


class FeedbackCreate(BaseModel):
    """The customer's answer to the survey, relayed by the channel integration."""

    model_config = ConfigDict(extra="forbid")

    csat: int | None = Field(default=None, ge=1, le=5, description="Satisfaction, 1 to 5")
    nps: int | None = Field(default=None, ge=0, le=10, description="Would recommend, 0 to 10")
    comment: str | None = Field(default=None, max_length=4000)

    @model_validator(mode="after")
    def _some_answer(self) -> FeedbackCreate:
        if self.csat is None and self.nps is None:
            raise ValueError("give csat, nps or both")
        return self


class FeedbackRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    conversation_id: uuid.UUID
    csat: int | None
    nps: int | None
    comment: str | None
    created_at: datetime
