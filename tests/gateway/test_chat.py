"""The live-chat adapter."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from omniroute.gateway.channels.chat import ChatAdapter
from omniroute.shared.errors import BadRequest, Unprocessable
from omniroute.shared.events import Channel, contact_id_for, conversation_id_for
from tests.gateway.conftest import delivery

adapter = ChatAdapter()

MESSAGE = {
    "session_id": "sess-1",
    "message_id": "msg-1",
    "visitor": {"id": "vis-1", "name": "Ana", "email": "ANA@example.com"},
    "text": "  My parcel never arrived  ",
    "sent_at": "2024-05-01T10:00:00Z",
}


def parse(payload: object) -> list:
    return adapter.parse(delivery(payload))


class TestNormalisation:
    def test_message(self) -> None:
        [contact] = parse(MESSAGE)
        assert contact.channel is Channel.CHAT
        assert contact.contact_id == contact_id_for("chat", "msg-1")
        assert contact.conversation_id == conversation_id_for("chat", "sess-1")
        assert contact.text == "My parcel never arrived"
        assert contact.customer.name == "Ana"
        assert contact.customer.email == "ana@example.com"
        assert contact.customer.provider_ids == {"chat_visitor": "vis-1"}
        assert contact.occurred_at is not None
        assert contact.occurred_at.isoformat() == "2024-05-01T10:00:00+00:00"

    def test_session_is_the_conversation(self) -> None:
        [first] = parse(MESSAGE)
        [second] = parse({**MESSAGE, "message_id": "msg-2", "text": "hello?"})
        assert first.conversation_id == second.conversation_id
        assert first.contact_id != second.contact_id

    def test_naive_sent_at_is_utc(self) -> None:
        [contact] = parse({**MESSAGE, "sent_at": "2024-05-01T10:00:00"})
        assert contact.occurred_at is not None
        assert contact.occurred_at.utcoffset() is not None


class TestIdempotency:
    def test_without_message_id_the_payload_identifies_the_message(self) -> None:
        payload = {key: value for key, value in MESSAGE.items() if key != "message_id"}
        [first] = parse(payload)
        [again] = parse(dict(reversed(list(payload.items()))))
        assert first.external_id.startswith("sha256:")
        assert first.contact_id == again.contact_id

    def test_different_text_is_a_different_message(self) -> None:
        payload = {key: value for key, value in MESSAGE.items() if key != "message_id"}
        [first] = parse(payload)
        [other] = parse({**payload, "text": "another"})
        assert first.contact_id != other.contact_id


class TestValidation:
    @pytest.mark.parametrize("missing", ["session_id", "visitor", "text"])
    def test_required_fields(self, missing: str) -> None:
        payload = {key: value for key, value in MESSAGE.items() if key != missing}
        with pytest.raises(Unprocessable):
            parse(payload)

    def test_blank_text_without_attachments_is_unprocessable(self) -> None:
        with pytest.raises(Unprocessable):
            parse({**MESSAGE, "text": "   "})

    def test_attachment_alone_is_a_message(self) -> None:
        attachment = {"filename": "photo.jpg", "content_type": "image/jpeg", "size": 2048}
        [contact] = parse({**MESSAGE, "text": "", "attachments": [attachment]})
        assert contact.attachments[0].filename == "photo.jpg"

    def test_visitor_needs_an_id(self) -> None:
        with pytest.raises(Unprocessable):
            parse({**MESSAGE, "visitor": {"name": "Ana"}})

    def test_list_is_unprocessable(self) -> None:
        with pytest.raises(Unprocessable):
            parse([MESSAGE])

    def test_broken_json_is_a_bad_request(self) -> None:
        with pytest.raises(BadRequest):
            adapter.parse(delivery(b'{"session_id": "s'))


def chatwoot_sample(shared_data: Path) -> dict:
    """The documented payload, its // comments removed."""
    text = (shared_data / "webhooks/chatwoot/add-webhooks-to-chatwoot.md").read_text()
    block = text.split("```json", 1)[1].split("```", 1)[0]
    lines = [re.sub(r"\s//.*$", "", line) for line in block.splitlines()]
    return json.loads(re.sub(r",(\s*[}\]])", r"\1", "\n".join(lines)))


class TestChatwoot:
    def test_documented_sample(self, shared_data: Path) -> None:
        [contact] = ChatAdapter().parse(delivery(chatwoot_sample(shared_data)))
        assert contact.channel is Channel.CHAT
        assert contact.text == "Hi"
        assert contact.external_id == "chatwoot:1:1"
        assert contact.conversation_key == "chatwoot:1:1"
        assert contact.customer.name == "contact-name"
        assert contact.occurred_at is not None
        assert contact.occurred_at.year == 2020

    def test_outgoing_and_private_create_nothing(self, shared_data: Path) -> None:
        sample = chatwoot_sample(shared_data)
        assert ChatAdapter().parse(delivery({**sample, "message_type": "outgoing"})) == []
        assert ChatAdapter().parse(delivery({**sample, "private": True})) == []
        assert ChatAdapter().parse(delivery({**sample, "event": "conversation_created"})) == []

    def test_messages_of_a_conversation_share_it(self, shared_data: Path) -> None:
        sample = chatwoot_sample(shared_data)
        [one] = ChatAdapter().parse(delivery(sample))
        [two] = ChatAdapter().parse(delivery({**sample, "id": "2", "content": "hello?"}))
        assert one.conversation_id == two.conversation_id
        assert one.contact_id != two.contact_id
