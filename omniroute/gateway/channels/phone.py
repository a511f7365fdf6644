"""Phone: a call (or contact-centre chat) transcript, posted once the call has ended.

Three shapes are accepted on the same route, told apart by their fields: our generic transcript
(`call_id`, `caller`, `turns`), Amazon Connect Contact Lens analysis output (`Transcript`,
`Participants`, `CustomerMetadata`/`JobDetails`...) and a Twilio Voice Intelligence v2
transcript with its sentences (`sid` "GT...", `channel.participants`, `sentences`). The
customer's turns become the contact's text, which is what the classifier reads; the whole
dialogue stays in `transcript` for the agent.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    StringConstraints,
    ValidationError,
    field_validator,
)

from omniroute.gateway.channels.base import (
    AdapterDefaults,
    Authentication,
    RawDelivery,
    bounded_identifier,
    canonical_json,
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
    Channel,
    CustomerRef,
    InboundContact,
    TranscriptTurn,
)
from omniroute.shared.identity import normalise_email, normalise_phone

Speaker = Literal["customer", "agent", "system"]

MAX_TURNS = 5000
MAX_TURN_CHARS = 20_000

_SPEAKERS: dict[str, Speaker] = {
    "customer": "customer",
    "caller": "customer",
    "client": "customer",
    "user": "customer",
    "contact": "customer",
    "end_user": "customer",
    "agent": "agent",
    "representative": "agent",
    "rep": "agent",
    "operator": "agent",
    "callee": "agent",
    "supervisor": "agent",
    "system": "system",
    "ivr": "system",
    "bot": "system",
    "virtual_agent": "system",
}

_Id = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=512)]
_Short = Annotated[str, StringConstraints(strip_whitespace=True, max_length=512)]


class Caller(BaseModel):
    model_config = ConfigDict(extra="ignore")

    number: _Short | None = None
    name: _Short | None = None
    email: _Short | None = None


class Turn(BaseModel):
    model_config = ConfigDict(extra="ignore")

    speaker: Speaker
    text: Annotated[str, StringConstraints(max_length=MAX_TURN_CHARS)]
    start_ms: int | None = Field(default=None, ge=0)
    end_ms: int | None = Field(default=None, ge=0)
    sentiment: _Short | None = None

    @field_validator("speaker", mode="before")
    @classmethod
    def _known_speaker(cls, value: object) -> object:
        if isinstance(value, str) and value.strip().lower() in _SPEAKERS:
            return _SPEAKERS[value.strip().lower()]
        return value


class CallTranscript(BaseModel):
    """The generic transcript any telephony platform can be mapped to."""

    model_config = ConfigDict(extra="ignore")

    call_id: _Id
    caller: Caller | _Short | None = None
    caller_number: _Short | None = None
    started_at: datetime | None = None
    language: _Short | None = None
    turns: list[Turn] = Field(min_length=1, max_length=MAX_TURNS)

    @field_validator("started_at")
    @classmethod
    def _aware(cls, value: datetime | None) -> datetime | None:
        if value is not None and value.tzinfo is None:
            return value.replace(tzinfo=UTC)
        return value


class PhoneAdapter(AdapterDefaults):
    name = "phone"
    authentication: Authentication = "api_key"
    content_types = ("application/json",)
    summary = (
        "Ingest a call transcript (generic, Amazon Connect Contact Lens, or Twilio Voice "
        "Intelligence)"
    )
    body_model: type[BaseModel] | None = CallTranscript

    def parse(self, delivery: RawDelivery) -> list[InboundContact]:
        payload = require_object(load_json(delivery))
        if is_contact_lens(payload):
            return [parse_contact_lens(payload, received_at=delivery.received_at)]
        if is_twilio_intelligence(payload):
            return [parse_twilio_intelligence(payload, received_at=delivery.received_at)]
        try:
            transcript = CallTranscript.model_validate(payload)
        except ValidationError as exc:
            raise Unprocessable("the transcript is invalid", errors=validation_errors(exc)) from exc
        return [_generic(transcript, delivery)]


def _generic(transcript: CallTranscript, delivery: RawDelivery) -> InboundContact:
    caller = transcript.caller if isinstance(transcript.caller, Caller) else None
    raw_number = transcript.caller_number or (caller.number if caller else transcript.caller)
    number = raw_number if isinstance(raw_number, str) else None
    phone = normalise_phone(number)
    provider_ids = {"call_id": short(transcript.call_id)}
    if number and not phone:
        provider_ids["caller"] = short(number)
    turns = [
        TranscriptTurn(
            speaker=turn.speaker,
            text=turn.text,
            start_ms=turn.start_ms,
            end_ms=turn.end_ms,
            sentiment=turn.sentiment,
        )
        for turn in transcript.turns
    ]
    return InboundContact.build(
        channel=Channel.PHONE,
        external_id=bounded_identifier(transcript.call_id),
        conversation_key=bounded_identifier(transcript.call_id),
        received_at=delivery.received_at,
        occurred_at=transcript.started_at,
        customer=CustomerRef(
            name=caller.name if caller else None,
            email=caller.email.lower() if caller and caller.email else None,
            phone=phone,
            language=_language(transcript.language),
            provider_ids=provider_ids,
        ),
        text=customer_text(turns),
        transcript=turns,
        metadata={"source": "transcript"},
    )


# Amazon Connect Contact Lens


def is_contact_lens(payload: dict[str, Any]) -> bool:
    """Contact Lens analysis output, recognised by its shape (it carries no type field)."""
    return (
        isinstance(payload.get("Transcript"), list)
        and isinstance(payload.get("Participants"), list)
        and any(
            key in payload
            for key in ("CustomerMetadata", "JobDetails", "ConversationCharacteristics", "Version")
        )
    )


def parse_contact_lens(payload: dict[str, Any], *, received_at: datetime) -> InboundContact:
    roles: dict[str, Speaker] = {}
    names: dict[str, str] = {}
    for participant in payload["Participants"]:
        if not isinstance(participant, dict):
            continue
        participant_id = optional_str(participant.get("ParticipantId"))
        if not participant_id:
            continue
        role = _role(participant.get("ParticipantRole")) or _role(participant_id)
        if role:
            roles[participant_id] = role
        name = optional_str(participant.get("DisplayName"))
        if name and not _redacted(name):
            names[participant_id] = name

    turns: list[TranscriptTurn] = []
    first_time: datetime | None = None
    customer_name: str | None = None
    for item in payload["Transcript"][:MAX_TURNS]:
        if not isinstance(item, dict):
            continue
        content = optional_str(item.get("Content"))
        if not content or item.get("Type", "MESSAGE") != "MESSAGE":
            continue
        participant_id = optional_str(item.get("ParticipantId")) or ""
        speaker = _role(item.get("ParticipantRole")) or roles.get(participant_id)
        if speaker is None:
            speaker = _role(participant_id) or "system"
        at = parse_iso(item.get("AbsoluteTime"))
        if at is not None and first_time is None:
            first_time = at
        start_ms = _millis(item.get("BeginOffsetMillis"))
        if start_ms is None and at is not None and first_time is not None:
            start_ms = int((at - first_time).total_seconds() * 1000)
        if speaker == "customer" and customer_name is None:
            customer_name = names.get(participant_id)
        sentiment = optional_str(item.get("Sentiment"))
        turns.append(
            TranscriptTurn(
                speaker=speaker,
                text=content[:MAX_TURN_CHARS],
                start_ms=start_ms,
                end_ms=_millis(item.get("EndOffsetMillis")),
                sentiment=sentiment.lower()[:32] if sentiment else None,
            )
        )
    if not turns:
        raise Unprocessable("the Contact Lens output has no transcript messages")

    customer_metadata = payload.get("CustomerMetadata")
    customer_metadata = customer_metadata if isinstance(customer_metadata, dict) else {}
    contact_id = optional_str(customer_metadata.get("ContactId"))
    # Raw and redacted outputs of one call share its ContactId, so they map to one contact.
    call_key = contact_id or "sha256:" + sha256_hex(canonical_json(payload))
    metadata = {"source": "contact-lens"}
    for key, value in (
        ("source_channel", payload.get("Channel")),
        ("instance_id", customer_metadata.get("InstanceId")),
        ("redaction", _dict(payload.get("ContentMetadata")).get("Output")),
    ):
        text = optional_str(value)
        if text:
            metadata[key] = short(text)
    return InboundContact.build(
        channel=Channel.PHONE,
        external_id=bounded_identifier(f"contact-lens:{call_key}"),
        conversation_key=bounded_identifier(call_key),
        received_at=received_at,
        occurred_at=first_time,
        customer=CustomerRef(
            name=short(customer_name) if customer_name else None,
            language=_language(optional_str(payload.get("LanguageCode"))),
            provider_ids={"connect_contact_id": short(contact_id)} if contact_id else {},
        ),
        text=customer_text(turns),
        transcript=turns,
        metadata=metadata,
    )


# Twilio Voice Intelligence


def is_twilio_intelligence(payload: dict[str, Any]) -> bool:
    """A Voice Intelligence v2 transcript (GT... sid), or its completion webhook."""
    transcript = _dict(payload.get("transcript")) or payload
    sid = optional_str(transcript.get("sid")) or optional_str(payload.get("transcript_sid"))
    sentences = payload.get("sentences")
    return bool(sid and sid.startswith("GT")) or (
        isinstance(sentences, list)
        and any(isinstance(item, dict) and "media_channel" in item for item in sentences)
    )


def parse_twilio_intelligence(payload: dict[str, Any], *, received_at: datetime) -> InboundContact:
    """The transcript resource with its sentences, as the integration fetched them.

    Accepted as `{"transcript": {...}, "sentences": [...]}` or the resource's fields with a
    `sentences` list beside them. Participants come from `channel.participants`: the one whose
    role is Customer (else media channel 1, Twilio's default for the caller) is the customer,
    identified by their number (`media_participant_id`, to E.164).
    """
    resource = _dict(payload.get("transcript")) or payload
    sentences = payload.get("sentences")
    if sentences is None:
        sentences = resource.get("sentences")
    if not isinstance(sentences, list) or not sentences:
        raise Unprocessable(
            "the Voice Intelligence transcript has no sentences: post the transcript resource "
            "with its sentences (GET .../Transcripts/{sid}/Sentences) once it is completed"
        )
    sid = optional_str(resource.get("sid")) or optional_str(payload.get("transcript_sid"))
    participants = [
        item
        for item in _list(_dict(resource.get("channel")).get("participants"))
        if isinstance(item, dict)
    ]
    roles: dict[int, Speaker] = {}
    customer: dict[str, Any] = {}
    for participant in participants:
        channel = _int(participant.get("channel_participant"))
        role = _role(participant.get("role"))
        if channel is not None and role is not None:
            roles[channel] = role
        if role == "customer" and not customer:
            customer = participant
    if not customer:
        customer = next((p for p in participants if _int(p.get("channel_participant")) == 1), {})
    if not roles:
        roles = {1: "customer", 2: "agent"}

    turns: list[TranscriptTurn] = []
    ordered = sorted(
        (item for item in sentences[:MAX_TURNS] if isinstance(item, dict)),
        key=lambda item: _int(item.get("sentence_index")) or 0,
    )
    for item in ordered:
        text = optional_str(item.get("transcript"))
        if not text:
            continue
        channel = _int(item.get("media_channel"))
        turns.append(
            TranscriptTurn(
                speaker=roles.get(channel, "system") if channel is not None else "system",
                text=text[:MAX_TURN_CHARS],
                start_ms=_seconds_to_ms(item.get("start_time")),
                end_ms=_seconds_to_ms(item.get("end_time")),
            )
        )
    if not turns:
        raise Unprocessable("the Voice Intelligence transcript has no spoken sentences")

    number = optional_str(customer.get("media_participant_id"))
    phone = normalise_phone(number) if number else None
    # Only ids of the person: the transcript's own sid is in metadata, not an identity.
    provider_ids: dict[str, str] = {}
    customer_key = optional_str(resource.get("customer_key"))
    if customer_key:
        provider_ids["twilio_customer_key"] = short(customer_key)
    if number and not phone:
        provider_ids["caller"] = short(number)
    media = _dict(_dict(resource.get("channel")).get("media_properties"))
    source_sid = optional_str(media.get("source_sid"))
    call_key = source_sid or sid or "sha256:" + sha256_hex(canonical_json(payload))
    metadata = {"source": "twilio-intelligence"}
    for key, value in (
        ("transcript_sid", sid),
        ("source_sid", source_sid),
        ("service_sid", optional_str(resource.get("service_sid"))),
        ("redaction", optional_str(resource.get("redaction"))),
    ):
        if value:
            metadata[key] = short(value)
    name = optional_str(customer.get("full_name"))
    email = normalise_email(optional_str(customer.get("email")))
    return InboundContact.build(
        channel=Channel.PHONE,
        external_id=bounded_identifier(f"twilio-intelligence:{sid or call_key}"),
        conversation_key=bounded_identifier(call_key),
        received_at=received_at,
        occurred_at=parse_iso(resource.get("media_start_time"))
        or parse_iso(resource.get("date_created")),
        customer=CustomerRef(
            name=short(name) if name else None,
            email=short(email) if email else None,
            phone=phone,
            language=_language(optional_str(resource.get("language_code"))),
            provider_ids=provider_ids,
        ),
        text=customer_text(turns),
        transcript=turns,
        metadata=metadata,
    )


def _int(value: Any) -> int | None:
    if isinstance(value, bool):
        return None
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _seconds_to_ms(value: Any) -> int | None:
    try:
        seconds = float(value)
    except (TypeError, ValueError):
        return None
    return int(seconds * 1000) if 0 <= seconds < 10**7 else None


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def customer_text(turns: list[TranscriptTurn]) -> str:
    return "\n".join(turn.text for turn in turns if turn.speaker == "customer")[:MAX_TEXT_CHARS]


def _role(value: Any) -> Speaker | None:
    if not isinstance(value, str):
        return None
    return _SPEAKERS.get(value.strip().lower())


def _redacted(name: str) -> bool:
    return name.startswith("[") and name.endswith("]")


def _millis(value: Any) -> int | None:
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if value >= 0 else None


def _language(code: str | None) -> str | None:
    if not code:
        return None
    primary = code.replace("_", "-").split("-", 1)[0].lower()
    return primary if primary.isalpha() and 2 <= len(primary) <= 3 else None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}
