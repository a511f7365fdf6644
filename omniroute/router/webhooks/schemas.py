"""Webhook API schemas, and the body each delivery sends (its own class: the wire contract)."""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AnyHttpUrl, BaseModel, ConfigDict, Field, PlainSerializer

from omniroute.router.webhooks.models import DeliveryStatus
from omniroute.shared.events import RoutingEventType

MAX_URL_LENGTH = 2048


def _check_url(url: AnyHttpUrl) -> str:
    if url.username is not None or url.password is not None:
        raise ValueError("credentials in the URL are not allowed; verify the signature instead")
    if not url.host:
        raise ValueError("the URL needs a host")
    text = str(url)
    if len(text) > MAX_URL_LENGTH:
        raise ValueError(f"the URL is longer than {MAX_URL_LENGTH} characters")
    return text


WebhookUrl = Annotated[
    AnyHttpUrl,
    AfterValidator(_check_url),
    # The validated value is the URL's text: serialise it as such (no type-mismatch warning).
    PlainSerializer(str, return_type=str),
    Field(description="Where events are POSTed: http or https, no user:password@"),
]
# Validated against the enum, so event types added to it become subscribable at once.
EventTypes = Annotated[
    list[RoutingEventType],
    Field(
        min_length=1,
        max_length=64,
        description="Only these event types; leave out (or null) for every type",
    ),
]


class WebhookPayload(BaseModel):
    """The JSON body of every delivery."""

    model_config = ConfigDict(frozen=True)

    type: str
    event_id: uuid.UUID
    conversation_id: uuid.UUID
    occurred_at: datetime
    data: dict[str, Any]


class WebhookEndpointCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl
    event_types: EventTypes | None = None
    description: str | None = Field(default=None, max_length=500)


class WebhookEndpointUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: WebhookUrl | None = None
    event_types: EventTypes | None = None
    description: str | None = Field(default=None, max_length=500)
    enabled: bool | None = None


class WebhookEndpointRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    url: str
    description: str | None
    event_types: list[str] | None
    enabled: bool
    created_at: datetime
    updated_at: datetime


class WebhookEndpointCreated(WebhookEndpointRead):
    secret: str = Field(
        description="The signing secret (Standard Webhooks, whsec_...). Shown only this once."
    )


class AttemptRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    number: int
    attempted_at: datetime
    duration_ms: float
    status_code: int | None
    error: str | None
    succeeded: bool


class DeliveryRead(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: uuid.UUID
    message_id: str = Field(description="The webhook-id header: the same on every attempt")
    endpoint_id: uuid.UUID
    event_id: uuid.UUID
    event_type: str
    status: DeliveryStatus
    attempt_count: int
    next_attempt_at: datetime | None
    last_status_code: int | None
    last_error: str | None
    delivered_at: datetime | None
    dead_lettered_at: datetime | None
    replay_count: int
    created_at: datetime
    updated_at: datetime


class DeliveryDetail(DeliveryRead):
    payload: WebhookPayload = Field(description="The body every attempt sends")
    attempts: list[AttemptRead]


class DeliveriesPage(BaseModel):
    deliveries: list[DeliveryRead]
