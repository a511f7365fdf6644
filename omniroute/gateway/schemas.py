"""HTTP schemas of the ingestion API.

Kept apart from the wire events in shared.events on purpose: the API may grow conveniences
(defaults, lenient phone formats) without the event on the bus changing, and the reverse.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime
from typing import Annotated

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    field_validator,
    model_validator,
)

from omniroute.shared.events import (
    MAX_METADATA_ITEMS,
    MAX_TEXT_CHARS,
    Channel,
    InboundContact,
    Visibility,
)
from omniroute.shared.identity import normalise_phone

_Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=512)]
_Identifier = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]


class _Schema(BaseModel):
    # Unknown fields are refused: a typo such as "txt" must not silently drop the message.
    model_config = ConfigDict(extra="forbid")


class CustomerIn(_Schema):
    name: _Short | None = None
    email: _Short | None = None
    phone: _Short | None = Field(default=None, description="International number, E.164 or not")
    handle: _Short | None = Field(default=None, description='Social handle, e.g. "@ana"')
    language: _Short | None = Field(default=None, description="Preferred language, ISO 639-1")
    tier: _Short | None = Field(default=None, description='Customer segment, e.g. "vip"')

    @field_validator("email")
    @classmethod
    def _lower_email(cls, value: str | None) -> str | None:
        if value is None or not value:
            return None
        if "@" not in value:
            raise ValueError("not an e-mail address")
        return value.lower()

    @field_validator("phone")
    @classmethod
    def _e164(cls, value: str | None) -> str | None:
        if value is None or not value:
            return None
        normalised = normalise_phone(value)
        if normalised is None:
            raise ValueError(
                "phone must be a phone number: international (+34600111222), or national in "
                "the deployment's OMNIROUTE_DEFAULT_PHONE_REGION"
            )
        return normalised


class AttachmentIn(_Schema):
    filename: _Short | None = None
    content_type: _Short = "application/octet-stream"
    size: int | None = Field(default=None, ge=0)
    url: Annotated[str, StringConstraints(max_length=2048)] | None = None


class ContactIn(_Schema):
    """One contact from an integration that has no dedicated channel adapter."""

    channel: Channel = Channel.API
    external_id: _Identifier = Field(
        description="The provider's message id: the idempotency key (re-posting it is harmless)"
    )
    conversation_key: _Identifier | None = Field(
        default=None, description="The thread this message belongs to; defaults to external_id"
    )
    customer: CustomerIn = Field(default_factory=CustomerIn)
    subject: Annotated[str, StringConstraints(max_length=2000)] | None = None
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] = ""
    visibility: Visibility = Visibility.PRIVATE
    attachments: list[AttachmentIn] = Field(default_factory=list, max_length=100)
    occurred_at: datetime | None = None
    metadata: dict[_Short, _Short] = Field(default_factory=dict, max_length=MAX_METADATA_ITEMS)

    @field_validator("occurred_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value

    @model_validator(mode="after")
    def _has_content(self) -> ContactIn:
        if not (self.text.strip() or self.subject or self.attachments):
            raise ValueError("a contact needs a text, a subject or an attachment")
        return self

    def to_event(self, received_at: datetime) -> InboundContact:
        return InboundContact.build(
            channel=self.channel,
            external_id=self.external_id,
            conversation_key=self.conversation_key or self.external_id,
            received_at=received_at,
            occurred_at=self.occurred_at,
            # The validated fields as they are (a model's __dict__), not model_dump() copies:
            # the event validates plain data fastest.
            customer=self.customer.__dict__,
            subject=self.subject,
            text=self.text,
            visibility=self.visibility,
            attachments=[item.__dict__ for item in self.attachments],
            metadata=self.metadata,
        )


class ContactBatchIn(_Schema):
    contacts: list[ContactIn] = Field(min_length=1)


class ReceiptOut(BaseModel):
    contact_id: uuid.UUID
    conversation_id: uuid.UUID


class ReceiptsOut(BaseModel):
    contacts: list[ReceiptOut]


class ProblemOut(BaseModel):
    """An RFC 9457 problem (application/problem+json)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str
