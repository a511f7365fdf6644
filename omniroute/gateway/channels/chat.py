"""Live chat: one visitor message per delivery, as the chat widget's backend forwards it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import Response
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
    model_validator,
)

from omniroute.gateway.channels.base import (
    Authentication,
    RawDelivery,
    bounded_identifier,
    canonical_json,
    load_json,
    require_object,
    sha256_hex,
    short,
    validation_errors,
)
from omniroute.shared.errors import Unprocessable
from omniroute.shared.events import (
    MAX_TEXT_CHARS,
    Attachment,
    Channel,
    CustomerRef,
    InboundContact,
)
from omniroute.shared.settings import Settings

_Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
_Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=512)]


class ChatVisitor(BaseModel):
    model_config = ConfigDict(extra="ignore")

    id: _Id
    name: _Short | None = None
    email: _Short | None = None


class ChatMessage(BaseModel):
    """The live-chat payload; unknown fields are ignored so widget upgrades do not break us."""

    model_config = ConfigDict(extra="ignore")

    session_id: _Id
    visitor: ChatVisitor
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)]
    message_id: _Id | None = None
    sent_at: datetime | None = None
    language: _Short | None = None
    page_url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)

    @model_validator(mode="after")
    def _has_content(self) -> ChatMessage:
        if not (self.text.strip() or self.attachments):
            raise ValueError("a chat message needs a text or an attachment")
        return self

    @field_validator("sent_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        """Widgets often send local-less ISO times; they mean UTC."""
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class ChatAdapter:
    name = "chat"
    authentication: Authentication = "api_key"
    content_types = ("application/json",)
    summary = "Ingest one live-chat message"
    body_model: type[BaseModel] | None = ChatMessage

    def verify(self, delivery: RawDelivery, settings: Settings) -> None:
        return None

    def reply(self, contacts: list[InboundContact]) -> Response | None:
        return None

    def handshake(self, delivery: RawDelivery, settings: Settings) -> Response | None:
        return None

    def parse(self, delivery: RawDelivery) -> list[InboundContact]:
        payload = require_object(load_json(delivery))
        try:
            message = ChatMessage.model_validate(payload)
        except ValidationError as exc:
            raise Unprocessable(
                "the chat message is invalid", errors=validation_errors(exc)
            ) from exc
        # Without a provider id, the payload itself identifies the message: a widget retry
        # re-sends the same JSON and lands on the same contact.
        external_id = message.message_id or "sha256:" + sha256_hex(canonical_json(payload))
        metadata = {"session_id": short(message.session_id)}
        if message.page_url:
            metadata["page_url"] = short(message.page_url)
        email = message.visitor.email.lower() if message.visitor.email else None
        return [
            InboundContact.build(
                channel=Channel.CHAT,
                external_id=bounded_identifier(external_id),
                conversation_key=bounded_identifier(message.session_id),
                received_at=delivery.received_at,
                occurred_at=message.sent_at,
                customer=CustomerRef(
                    name=message.visitor.name or None,
                    email=email or None,
                    language=message.language,
                    provider_ids={"chat_visitor": message.visitor.id},
                ),
                text=message.text.strip(),
                attachments=message.attachments,
                metadata=metadata,
            )
        ]
