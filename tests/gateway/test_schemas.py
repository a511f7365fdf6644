"""The HTTP schema of POST /v1/contacts and its mapping to the wire event."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from pydantic import ValidationError

from omniroute.gateway.schemas import ContactIn
from omniroute.shared.events import Channel, Visibility, conversation_id_for

NOW = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)


class TestMapping:
    def test_conversation_key_defaults_to_external_id(self) -> None:
        event = ContactIn(external_id="x-1", text="hi").to_event(NOW)
        assert event.channel is Channel.API
        assert event.conversation_key == "x-1"
        assert event.conversation_id == conversation_id_for("api", "x-1")
        assert event.received_at == NOW

    def test_every_field_reaches_the_event(self) -> None:
        contact = ContactIn.model_validate(
            {
                "channel": "x",
                "external_id": "tweet-1",
                "conversation_key": "thread-1",
                "customer": {"handle": "@ana", "tier": "vip", "language": "es"},
                "text": "@brand still no refund",
                "visibility": "public",
                "attachments": [{"filename": "a.png", "content_type": "image/png", "size": 3}],
                "occurred_at": "2024-05-01T10:00:00",
                "metadata": {"source": "x-api"},
            }
        )
        event = contact.to_event(NOW)
        assert event.channel is Channel.X
        assert event.visibility is Visibility.PUBLIC
        assert event.customer.tier == "vip"
        assert event.attachments[0].filename == "a.png"
        assert event.occurred_at == datetime(2024, 5, 1, 10, 0, tzinfo=UTC)
        assert event.metadata == {"source": "x-api"}


class TestValidation:
    def test_needs_some_content(self) -> None:
        with pytest.raises(ValidationError):
            ContactIn(external_id="x-1")

    def test_subject_alone_is_content(self) -> None:
        assert ContactIn(external_id="x-1", subject="Refund").subject == "Refund"

    def test_unknown_channel(self) -> None:
        with pytest.raises(ValidationError):
            ContactIn.model_validate({"channel": "fax", "external_id": "1", "text": "x"})

    def test_metadata_is_bounded(self) -> None:
        metadata = {f"k{i}": "v" for i in range(33)}
        with pytest.raises(ValidationError):
            ContactIn.model_validate({"external_id": "1", "text": "x", "metadata": metadata})

    def test_email_must_look_like_one(self) -> None:
        with pytest.raises(ValidationError):
            ContactIn.model_validate({"external_id": "1", "text": "x", "customer": {"email": "no"}})
