"""The phone adapter: generic transcripts and Amazon Connect Contact Lens output."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from omniroute.gateway.channels.phone import PhoneAdapter, is_contact_lens
from omniroute.shared.errors import Unprocessable
from omniroute.shared.events import Channel
from tests.gateway.conftest import delivery

LENS = "transcripts/amazon-connect-contact-lens"
adapter = PhoneAdapter()

CALL = {
    "call_id": "call-77",
    "caller": {"number": "+34 911 222 333", "name": "Luis"},
    "started_at": "2024-05-01T09:00:00Z",
    "language": "es-ES",
    "turns": [
        {"speaker": "agent", "text": "Buenos días", "start_ms": 0, "end_ms": 900},
        {"speaker": "caller", "text": "Quiero darme de baja", "start_ms": 1000, "end_ms": 2500},
        {"speaker": "agent", "text": "¿Por qué motivo?", "start_ms": 2600, "end_ms": 3400},
        {"speaker": "customer", "text": "Es muy caro", "start_ms": 3500, "end_ms": 4200},
    ],
}


def parse(payload: object) -> list:
    return adapter.parse(delivery(payload))


def lens(shared_data: Path, name: str) -> dict:
    return json.loads((shared_data / LENS / name).read_text())


class TestGenericTranscript:
    def test_customer_turns_are_the_text(self) -> None:
        [contact] = parse(CALL)
        assert contact.channel is Channel.PHONE
        assert contact.external_id == "call-77"
        assert contact.text == "Quiero darme de baja\nEs muy caro"
        assert [turn.speaker for turn in contact.transcript] == [
            "agent",
            "customer",
            "agent",
            "customer",
        ]
        assert contact.transcript[1].start_ms == 1000

    def test_caller(self) -> None:
        [contact] = parse(CALL)
        assert contact.customer.phone == "+34911222333"
        assert contact.customer.name == "Luis"
        assert contact.customer.language == "es"

    def test_caller_as_a_plain_number(self) -> None:
        [contact] = parse({**CALL, "caller": "+14155550100"})
        assert contact.customer.phone == "+14155550100"

    def test_unknown_speaker_is_unprocessable(self) -> None:
        turns = [{"speaker": "narrator", "text": "Once upon a time"}]
        with pytest.raises(Unprocessable):
            parse({**CALL, "turns": turns})

    def test_needs_turns(self) -> None:
        with pytest.raises(Unprocessable):
            parse({**CALL, "turns": []})


class TestContactLens:
    @pytest.mark.parametrize(
        "name",
        [
            "contact-lens-example-output-files.example1.json",
            "contact-lens-example-output-files.example2.json",
            "contact-lens-example-output-files-chat.example1.json",
            "contact-lens-example-output-files-chat.example2.json",
        ],
    )
    def test_every_example_becomes_a_phone_contact(self, shared_data: Path, name: str) -> None:
        payload = lens(shared_data, name)
        assert is_contact_lens(payload)
        [contact] = parse(payload)
        assert contact.channel is Channel.PHONE
        assert contact.text
        assert {turn.speaker for turn in contact.transcript} >= {"customer", "agent"}
        assert contact.metadata["source"] == "contact-lens"
        assert contact.customer.language == "en"

    def test_voice_call_turns(self, shared_data: Path) -> None:
        [contact] = parse(lens(shared_data, "contact-lens-example-output-files.example1.json"))
        assert len(contact.transcript) == 10
        assert contact.transcript[0].speaker == "agent"
        assert contact.transcript[1].text == "Just hello. My name is Peter and help."
        assert contact.transcript[3].sentiment == "negative"
        assert contact.text.splitlines()[1] == (
            "I need to cancel. I want to cancel my plan subscription."
        )
        assert "I can offer a 20% discount" not in contact.text

    def test_chat_transcript_skips_events_and_names_the_customer(self, shared_data: Path):
        [contact] = parse(lens(shared_data, "contact-lens-example-output-files-chat.example1.json"))
        assert contact.customer.name == "John"
        assert contact.transcript[0].speaker == "system"
        assert contact.text.startswith("I'd like to see if I can get a refund")
        assert contact.metadata["source_channel"] == "CHAT"
        assert contact.occurred_at is not None

    def test_redacted_names_are_not_names(self, shared_data: Path) -> None:
        [contact] = parse(lens(shared_data, "contact-lens-example-output-files-chat.example2.json"))
        assert contact.customer.name is None
        assert "customer" in {turn.speaker for turn in contact.transcript}

    def test_raw_and_redacted_output_of_one_contact_are_one_contact(self, shared_data: Path):
        [raw] = parse(lens(shared_data, "contact-lens-example-output-files-chat.example1.json"))
        [red] = parse(lens(shared_data, "contact-lens-example-output-files-chat.example2.json"))
        assert raw.contact_id == red.contact_id

    def test_realtime_segment_events_are_not_transcripts(self, shared_data: Path) -> None:
        payload = lens(
            shared_data, "sample-real-time-contact-analysis-segment-stream.example2.json"
        )
        assert not is_contact_lens(payload)
        with pytest.raises(Unprocessable):
            parse(payload)

    def test_no_messages_is_unprocessable(self, shared_data: Path) -> None:
        payload = lens(shared_data, "contact-lens-example-output-files.example1.json")
        with pytest.raises(Unprocessable):
            parse({**payload, "Transcript": []})
