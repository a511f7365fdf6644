"""Live chat: one visitor message per delivery, as the chat widget's backend forwards it
(our own JSON shape, or Chatwoot's `message_created` webhook)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any

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
    AdapterDefaults,
    Authentication,
    RawDelivery,
    bounded_identifier,
    canonical_json,
    from_epoch,
    load_json,
    optional_str,
    parse_iso,
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
from omniroute.shared.identity import normalise_email, normalise_phone

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


class ChatAdapter(AdapterDefaults):
    name = "chat"
    authentication: Authentication = "api_key"
    content_types = ("application/json",)
    summary = "Ingest one live-chat message"
    body_model: type[BaseModel] | None = ChatMessage

    def parse(self, delivery: RawDelivery) -> list[InboundContact]:
        payload = require_object(load_json(delivery))
        if is_chatwoot(payload):
            contact = parse_chatwoot(payload, delivery)
            return [contact] if contact is not None else []
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


# Chatwoot's `message_created` webhook, for teams whose widget is Chatwoot's.

_CHATWOOT_INCOMING = ("incoming", 0, "0")


def is_chatwoot(payload: dict[str, Any]) -> bool:
    return isinstance(payload.get("event"), str) and (
        "conversation" in payload or "message_type" in payload
    )


def parse_chatwoot(payload: dict[str, Any], delivery: RawDelivery) -> InboundContact | None:
    """An incoming message becomes a contact; agents' messages, notes and other events do not."""
    if payload.get("event") != "message_created":
        return None
    if payload.get("message_type") not in _CHATWOOT_INCOMING or payload.get("private") is True:
        return None
    conversation = _dict(payload.get("conversation"))
    account = _dict(payload.get("account"))
    person = _dict(payload.get("contact"))
    sender = _dict(payload.get("sender"))
    if not person and sender.get("type") in (None, "contact"):
        person = sender
    text = optional_str(payload.get("content")) or ""
    attachments = [
        Attachment(
            content_type=short(optional_str(item.get("file_type")) or "application/octet-stream"),
            url=url if (url := optional_str(item.get("data_url"))) and len(url) <= 2048 else None,
        )
        for item in payload.get("attachments") or []
        if isinstance(item, dict)
    ][:100]
    if not text and not attachments:
        return None
    message_id = optional_str(payload.get("id"))
    thread = optional_str(conversation.get("display_id")) or optional_str(conversation.get("id"))
    account_id = optional_str(account.get("id")) or "-"
    external_id = (
        f"chatwoot:{account_id}:{message_id}"
        if message_id
        else "sha256:" + sha256_hex(canonical_json(payload))
    )
    person_id = optional_str(person.get("id"))
    name = optional_str(person.get("name"))
    email = normalise_email(optional_str(person.get("email")))
    phone = normalise_phone(optional_str(person.get("phone_number")))
    metadata = {"source": "chatwoot"}
    inbox = optional_str(_dict(payload.get("inbox")).get("name"))
    if inbox:
        metadata["inbox"] = short(inbox)
    return InboundContact.build(
        channel=Channel.CHAT,
        external_id=bounded_identifier(external_id),
        conversation_key=bounded_identifier(
            f"chatwoot:{account_id}:{thread}" if thread else external_id
        ),
        received_at=delivery.received_at,
        occurred_at=_chatwoot_time(payload.get("created_at")),
        customer=CustomerRef(
            name=short(name) if name else None,
            email=short(email) if email else None,
            phone=phone,
            provider_ids={"chatwoot_contact": short(person_id)} if person_id else {},
        ),
        text=text[:MAX_TEXT_CHARS],
        attachments=attachments,
        metadata=metadata,
    )


def _chatwoot_time(value: Any) -> datetime | None:
    """ "2020-03-03 13:05:57 UTC" in the documented payload, epoch seconds in newer versions."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return from_epoch(value)
    if isinstance(value, str):
        text = value.strip().removesuffix(" UTC")
        try:
            return datetime.strptime(text, "%Y-%m-%d %H:%M:%S").replace(tzinfo=UTC)
        except ValueError:
            return parse_iso(value)
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
