"""Deterministic ids, and the classified contact's JSON (pydantic's bytes, written faster)."""

from __future__ import annotations

import pickle
import random
import uuid
from datetime import UTC, datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from pydantic_core import PydanticSerializationError

from omniroute.shared.events import (
    OMNIROUTE_NAMESPACE,
    Attachment,
    Channel,
    ClassifiedContact,
    CustomerRef,
    InboundContact,
    PriorityLevel,
    Sentiment,
    TranscriptTurn,
    Visibility,
    classified_json,
    contact_id_for,
    conversation_id_for,
)
from omniroute.shared.transport.base import encode_event


def test_ids_are_rfc_4122_uuid5_of_the_namespace() -> None:
    rng = random.Random(5)
    alphabet = "abcXYZ019:-_<>@.é€ñ😀 "
    for _ in range(2000):
        key = "".join(rng.choice(alphabet) for _ in range(rng.randint(1, 60)))
        channel = rng.choice(list(Channel))
        contact = contact_id_for(channel, key)
        conversation = conversation_id_for(channel, key)
        assert contact == uuid.uuid5(OMNIROUTE_NAMESPACE, f"contact:{channel}:{key}")
        assert conversation == uuid.uuid5(OMNIROUTE_NAMESPACE, f"conversation:{channel}:{key}")
        assert (contact.version, contact.variant) == (5, uuid.RFC_4122)


def test_ids_are_whole_uuids() -> None:
    """Made without UUID's constructor, they hash, compare, pickle and print as UUIDs do."""
    made = contact_id_for(Channel.CHAT, "abc-1")
    expected = uuid.uuid5(OMNIROUTE_NAMESPACE, "contact:chat:abc-1")
    assert type(made) is uuid.UUID
    assert hash(made) == hash(expected)
    assert {made: 1}[expected] == 1
    assert pickle.loads(pickle.dumps(made)) == expected
    assert made.is_safe is uuid.SafeUUID.unknown
    assert (str(made), repr(made), made.bytes) == (str(expected), repr(expected), expected.bytes)


def test_ids_already_issued_never_change() -> None:
    assert str(contact_id_for(Channel.API, "crm-123")) == "b72c38ab-9167-5359-80fb-64fa61e9d351"
    assert str(conversation_id_for("email", "<a@b>")) == "cd1344b8-698f-5b40-bfe6-2bf2481110ac"


def _classified(
    received_at: datetime, classified_at: datetime, text: str, weight: float
) -> ClassifiedContact:
    contact = InboundContact.build(
        channel=Channel.WHATSAPP,
        external_id="m1",
        conversation_key="c1",
        received_at=received_at,
        occurred_at=received_at - timedelta(seconds=3),
        subject='Re: "pedido" \\ 😡',
        text=text,
        visibility=Visibility.PUBLIC,
        customer=CustomerRef(name="Ana", provider_ids={"wa": "34600"}, tier="vip"),
        attachments=[Attachment(filename="a.png", size=3)],
        transcript=[TranscriptTurn(speaker="customer", text=text[:20], start_ms=0)],
        metadata={"page": "p\u00e9"},
    )
    return ClassifiedContact.model_validate(
        {
            "contact": contact,
            "language": {"code": "es", "confidence": 0.99},
            "category": {"category": "delivery", "confidence": 0.5759},
            "sentiment": {"label": Sentiment.NEGATIVE, "score": -0.91, "anger": 0.0},
            "pii_kinds": ["card_number"],
            "priority": {"level": PriorityLevel.P2, "score": 64},
            "sla": {"policy": "chat.P2.vip", "first_response_due": received_at},
            "required_skills": ["delivery", "lang:es"],
            "classifier_version": "test",
            "classified_at": classified_at,
            "reasons": [
                {"signal": "vip", "detail": "VIP customer", "weight": 15},
                {"signal": "x", "detail": "\x00\x1f\u2028\t\n", "weight": weight},
                {"signal": "sla", "detail": "chat.P2.vip"},
            ],
        }
    )


def test_classified_json_is_what_pydantic_writes() -> None:
    rng = random.Random(3)
    zones = [
        UTC,
        timezone(timedelta(hours=2)),
        timezone(timedelta(hours=-5, minutes=-30)),
        timezone(timedelta(seconds=3630)),  # pydantic drops the seconds: written by pydantic
        ZoneInfo("Europe/Madrid"),
        None,
    ]
    weights = [0.0, -0.0, 10.0, 1e-5, 1e-4, 1e16, 1.5e300, 5e-324, 123.456, float("nan")]
    texts = ["", "hola", '\x00\x7f"\\/\r\n\ud7ff\ue000😡' * 3, "ñ" * 600]
    for index in range(60):
        received = datetime(2026, 1, 1, 9, 30) + timedelta(
            seconds=rng.randint(0, 10**7), microseconds=rng.choice([0, 1, 500_000])
        )
        event = _classified(
            received.replace(tzinfo=rng.choice(zones)),
            received.replace(tzinfo=rng.choice(zones)),
            rng.choice(texts),
            weights[index % len(weights)],
        )
        expected = event.__pydantic_serializer__.to_json(event)
        assert classified_json(event) == expected
        assert encode_event(event) == expected


def test_classified_json_refuses_what_pydantic_refuses() -> None:
    event = _classified(datetime(2026, 1, 1, tzinfo=UTC), datetime(2026, 1, 2, tzinfo=UTC), "x", 1)
    unknown = event.model_copy(update={"pii_kinds": [object()]})
    with pytest.raises(PydanticSerializationError):
        unknown.__pydantic_serializer__.to_json(unknown)
    with pytest.raises(PydanticSerializationError):
        encode_event(unknown)
    surrogate = event.model_copy(update={"classifier_version": "\ud800"})
    with pytest.raises(PydanticSerializationError):
        surrogate.__pydantic_serializer__.to_json(surrogate)
    with pytest.raises(PydanticSerializationError):
        encode_event(surrogate)
