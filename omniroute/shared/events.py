"""Events on the wire between gateway, classifier and router.

These are the contracts of the system: each is versioned, and a column or API change elsewhere
must never silently change them. Ids are deterministic (UUID5) so that a provider's retry or a
Kafka redelivery maps onto the same contact and conversation everywhere.
"""

from __future__ import annotations

import hashlib
import uuid
from datetime import UTC, datetime
from enum import StrEnum
from typing import Annotated, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

# Namespace for deterministic ids; changing it would fork every id ever issued.
OMNIROUTE_NAMESPACE = uuid.UUID("6f1c9e0a-3b1d-5c4e-9a57-0e1d2c3b4a59")

ShortText = Annotated[str, StringConstraints(max_length=512)]
Identifier = Annotated[str, StringConstraints(min_length=1, max_length=512)]

MAX_TEXT_CHARS = 200_000
MAX_METADATA_ITEMS = 32


def utcnow() -> datetime:
    return datetime.now(UTC)


class Channel(StrEnum):
    EMAIL = "email"
    CHAT = "chat"
    MESSENGER = "messenger"
    INSTAGRAM = "instagram"
    WHATSAPP = "whatsapp"
    X = "x"
    SMS = "sms"
    PHONE = "phone"
    API = "api"


class Visibility(StrEnum):
    PUBLIC = "public"
    PRIVATE = "private"


def contact_id_for(channel: Channel | str, external_id: str) -> uuid.UUID:
    """The contact's id: the same provider message always gets the same id."""
    return _uuid5(f"contact:{channel}:{external_id}")


def conversation_id_for(channel: Channel | str, conversation_key: str) -> uuid.UUID:
    """The conversation's id: one thread on one channel is one conversation."""
    return _uuid5(f"conversation:{channel}:{conversation_key}")


# uuid.uuid5(OMNIROUTE_NAMESPACE, name), computed for twice per contact on the ingest path:
# the namespace is hashed once, the version and variant bits are set on the integer, and the
# UUID's two slots are filled as UUID itself and its unpickling fill them, without the checks
# of its constructor (which cost as much as the hashing; the value is 128 bits by making).
_NAMESPACE_SHA1 = hashlib.sha1(OMNIROUTE_NAMESPACE.bytes, usedforsecurity=False)
_VERSION_BITS_CLEARED = ~((0xF000 << 64) | (0xC000 << 48))
_VERSION_5_RFC_4122 = (0x5000 << 64) | (0x8000 << 48)


def _uuid5(name: str) -> uuid.UUID:
    digest = _NAMESPACE_SHA1.copy()
    digest.update(name.encode())
    value = int.from_bytes(digest.digest()[:16])
    made = object.__new__(uuid.UUID)
    object.__setattr__(made, "int", (value & _VERSION_BITS_CLEARED) | _VERSION_5_RFC_4122)
    object.__setattr__(made, "is_safe", uuid.SafeUUID.unknown)
    return made


class _Event(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class CustomerRef(_Event):
    """Who wrote, as the channel knows them; the router resolves it to a customer."""

    name: ShortText | None = None
    email: ShortText | None = None
    phone: ShortText | None = None  # E.164 when the channel gives a number
    handle: ShortText | None = None  # social handle, e.g. "@ana" on X
    provider_ids: dict[ShortText, ShortText] = Field(default_factory=dict, max_length=8)
    language: ShortText | None = None  # known preferred language (ISO 639-1)
    tier: ShortText | None = None  # e.g. "vip"


class Attachment(_Event):
    """Metadata only: the bytes stay with the provider or the mail store."""

    filename: ShortText | None = None
    content_type: ShortText = "application/octet-stream"
    size: int | None = Field(default=None, ge=0)
    url: Annotated[str, StringConstraints(max_length=2048)] | None = None
    provider_id: ShortText | None = None  # the provider's media id (e.g. WhatsApp), to fetch it


class TranscriptTurn(_Event):
    speaker: Literal["customer", "agent", "system"]
    text: Annotated[str, StringConstraints(max_length=20_000)]
    start_ms: int | None = Field(default=None, ge=0)
    end_ms: int | None = Field(default=None, ge=0)
    sentiment: ShortText | None = None


class InboundContact(_Event):
    """One customer message, normalised by a gateway adapter."""

    schema_version: Literal[1] = 1
    contact_id: uuid.UUID
    conversation_id: uuid.UUID
    channel: Channel
    external_id: Identifier
    conversation_key: Identifier
    received_at: datetime
    occurred_at: datetime | None = None
    customer: CustomerRef = Field(default_factory=CustomerRef)
    subject: Annotated[str, StringConstraints(max_length=2000)] | None = None
    text: Annotated[str, StringConstraints(max_length=MAX_TEXT_CHARS)] = ""
    visibility: Visibility = Visibility.PRIVATE
    attachments: list[Attachment] = Field(default_factory=list, max_length=100)
    transcript: list[TranscriptTurn] = Field(default_factory=list, max_length=5000)
    # Bounded provider details (e.g. page id, mailbox); never secrets or message bodies.
    metadata: dict[ShortText, ShortText] = Field(
        default_factory=dict, max_length=MAX_METADATA_ITEMS
    )

    @classmethod
    def build(
        cls,
        *,
        channel: Channel,
        external_id: str,
        conversation_key: str,
        received_at: datetime | None = None,
        **fields: object,
    ) -> InboundContact:
        """Build a contact with its deterministic ids derived from the provider's ids."""
        return cls.model_validate(
            {
                "contact_id": contact_id_for(channel, external_id),
                "conversation_id": conversation_id_for(channel, conversation_key),
                "channel": channel,
                "external_id": external_id,
                "conversation_key": conversation_key,
                "received_at": received_at or utcnow(),
                **fields,
            }
        )


class Sentiment(StrEnum):
    NEGATIVE = "negative"
    NEUTRAL = "neutral"
    POSITIVE = "positive"


class PriorityLevel(StrEnum):
    P1 = "P1"
    P2 = "P2"
    P3 = "P3"
    P4 = "P4"


class Reason(_Event):
    """One reason behind a decision, so an agent or supervisor sees why."""

    signal: ShortText
    detail: ShortText
    weight: float = 0.0


class LanguageResult(_Event):
    code: ShortText  # ISO 639-1, or "und" when unknown
    confidence: float = Field(ge=0.0, le=1.0)


class CategoryResult(_Event):
    category: ShortText  # taxonomy id, or "unknown" when the classifier abstains
    subcategory: ShortText | None = None
    confidence: float = Field(ge=0.0, le=1.0)


class SentimentResult(_Event):
    label: Sentiment
    score: float = Field(ge=-1.0, le=1.0)  # -1 very negative .. +1 very positive
    anger: float = Field(ge=0.0, le=1.0)
    abusive: bool = False


class UrgencySignals(_Event):
    urgent_wording: bool = False
    legal_threat: bool = False
    cancellation_threat: bool = False
    repeated_contact: bool = False
    public: bool = False
    vip: bool = False


class PriorityResult(_Event):
    level: PriorityLevel
    score: int = Field(ge=0, le=100)


class SlaResult(_Event):
    policy: ShortText
    first_response_due: datetime
    resolution_due: datetime | None = None


class ClassifiedContact(_Event):
    """The inbound contact with everything the classifier decided, and why."""

    schema_version: Literal[1] = 1
    contact: InboundContact  # text already redacted of card numbers and CVVs
    language: LanguageResult
    category: CategoryResult
    sentiment: SentimentResult
    urgency: UrgencySignals = Field(default_factory=UrgencySignals)
    pii_kinds: list[ShortText] = Field(default_factory=list, max_length=32)
    spam: bool = False
    priority: PriorityResult
    sla: SlaResult
    required_skills: list[ShortText] = Field(default_factory=list, max_length=16)
    classifier_version: ShortText
    classified_at: datetime
    reasons: list[Reason] = Field(default_factory=list, max_length=64)


_ORJSON_OPTIONS = orjson.OPT_UTC_Z


def _orjson_datetime(value: object) -> bool:
    """Whether orjson writes this value as pydantic does: a datetime whose offset is whole
    minutes (pydantic drops an offset's seconds; orjson rounds them), or None."""
    if value is None:
        return True
    if type(value) is not datetime:
        return False
    if value.tzinfo is UTC:
        return True
    offset = value.utcoffset()
    return offset is None or not (offset.seconds % 60 or offset.microseconds)


def _model_fields(value: object) -> dict[str, object]:
    """For orjson: the models a ClassifiedContact holds, as their fields."""
    if type(value) in _CLASSIFIED_PARTS:
        return value.__dict__  # the validated values, in field order
    raise TypeError


def classified_json(event: ClassifiedContact) -> bytes:
    """`event`'s JSON: the bytes its pydantic serializer writes, in one orjson call.

    A validated model's `__dict__` holds its field values in field order, the order pydantic
    writes them in, and orjson writes str, float, int, bool, None, UUID, StrEnum, list, dict
    and datetime as pydantic-core does (floats shortest round-trip with the same exponent
    forms, strings escaped alike, UTC as "Z"; checked on random values). Datetimes with an
    offset of whole minutes only; anything else (another offset, a model of another class, a
    value orjson refuses) goes through pydantic.
    """
    fields = event.__dict__
    contact = fields["contact"].__dict__
    sla = fields["sla"].__dict__
    if not (
        _orjson_datetime(fields["classified_at"])
        and _orjson_datetime(sla["first_response_due"])
        and _orjson_datetime(sla["resolution_due"])
        and _orjson_datetime(contact["received_at"])
        and _orjson_datetime(contact["occurred_at"])
    ):
        return event.__pydantic_serializer__.to_json(event)
    try:
        return orjson.dumps(fields, default=_model_fields, option=_ORJSON_OPTIONS)
    except orjson.JSONEncodeError:
        return event.__pydantic_serializer__.to_json(event)


class RoutingEventType(StrEnum):
    CONTACT_RECEIVED = "contact.received"
    CONTACT_CLASSIFIED = "contact.classified"
    CONVERSATION_QUEUED = "conversation.queued"
    CONVERSATION_JOINED = "conversation.message_joined"
    CONVERSATION_REOPENED = "conversation.reopened"
    OFFER_CREATED = "offer.created"
    OFFER_ACCEPTED = "offer.accepted"
    OFFER_DECLINED = "offer.declined"
    OFFER_EXPIRED = "offer.expired"
    CONVERSATION_TRANSFERRED = "conversation.transferred"
    CONVERSATION_ESCALATED = "conversation.escalated"
    CONVERSATION_COMPLETED = "conversation.completed"
    SLA_WARNING = "sla.warning"
    SLA_BREACH = "sla.breach"
    NOTIFICATION_SENT = "notification.sent"  # a message to the customer, for the channel to send
    FEEDBACK_RECEIVED = "feedback.received"
    CUSTOMER_MERGED = "customer.merged"
    CUSTOMER_ERASED = "customer.erased"


class RoutingEvent(_Event):
    """A fact about a conversation, published on `routing.events` after it is committed."""

    schema_version: Literal[1] = 1
    event_id: uuid.UUID
    type: RoutingEventType
    conversation_id: uuid.UUID
    occurred_at: datetime
    data: dict[str, object] = Field(default_factory=dict)


_CLASSIFIED_PARTS = frozenset(
    {
        InboundContact,
        CustomerRef,
        Attachment,
        TranscriptTurn,
        LanguageResult,
        CategoryResult,
        SentimentResult,
        UrgencySignals,
        PriorityResult,
        SlaResult,
        Reason,
    }
)
