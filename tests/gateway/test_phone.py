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


def twilio_schema(shared_data: Path) -> dict:
    spec = json.loads(
        (shared_data / "transcripts/twilio-intelligence/twilio_intelligence_v2.json").read_text()
    )
    return spec["components"]["schemas"]


# A completed Voice Intelligence transcript and its sentences, in the v2 resources' shape.
TWILIO_TRANSCRIPT = {
    "transcript": {
        "account_sid": "AC" + "0" * 32,
        "service_sid": "GA" + "1" * 32,
        "sid": "GT" + "2" * 32,
        "date_created": "2024-05-02T10:00:05Z",
        "date_updated": "2024-05-02T10:03:00Z",
        "status": "completed",
        "channel": {
            "media_properties": {"source_sid": "RE" + "3" * 32, "source": "Recording"},
            "participants": [
                {
                    "channel_participant": 1,
                    "media_participant_id": "+34 600 111 222",
                    "role": "Customer",
                    "full_name": "Ana García",
                    "email": "Ana@Example.com",
                },
                {
                    "channel_participant": 2,
                    "media_participant_id": "+34910000000",
                    "role": "Agent",
                    "full_name": "Luis",
                },
            ],
            "type": "voice",
        },
        "language_code": "es-ES",
        "customer_key": "crm-991",
        "media_start_time": "2024-05-02T09:58:00Z",
        "duration": 95,
        "redaction": True,
    },
    "sentences": [
        {
            "media_channel": 2,
            "sentence_index": 0,
            "start_time": "0.5",
            "end_time": "2.1",
            "transcript": "Buenos días, le atiende Luis.",
            "sid": "GX" + "a" * 32,
            "confidence": "0.93",
        },
        {
            "media_channel": 1,
            "sentence_index": 1,
            "start_time": "2.4",
            "end_time": "5.0",
            "transcript": "Me han cobrado dos veces la factura.",
            "sid": "GX" + "b" * 32,
            "confidence": "0.91",
        },
        {
            "media_channel": 1,
            "sentence_index": 2,
            "start_time": "5.2",
            "end_time": "6.0",
            "transcript": "Quiero la devolución.",
            "sid": "GX" + "c" * 32,
            "confidence": "0.95",
        },
    ],
}


class TestTwilioIntelligence:
    def test_fixture_fields_are_the_ones_we_read(self, shared_data: Path) -> None:
        schemas = twilio_schema(shared_data)
        transcript = schemas["intelligence.v2.transcript"]["properties"]
        sentence = schemas["intelligence.v2.transcript.sentence"]["properties"]
        for key in ("sid", "channel", "language_code", "customer_key", "media_start_time"):
            assert key in transcript
        for key in ("media_channel", "sentence_index", "start_time", "end_time", "transcript"):
            assert key in sentence

    def test_transcript_becomes_a_phone_contact(self) -> None:
        [contact] = adapter.parse(delivery(TWILIO_TRANSCRIPT))
        assert contact.channel is Channel.PHONE
        assert contact.customer.phone == "+34600111222"
        assert contact.customer.email == "ana@example.com"
        assert contact.customer.name == "Ana García"
        assert contact.customer.language == "es"
        assert contact.customer.provider_ids["twilio_customer_key"] == "crm-991"
        assert contact.text == "Me han cobrado dos veces la factura.\nQuiero la devolución."
        assert [turn.speaker for turn in contact.transcript] == ["agent", "customer", "customer"]
        assert contact.transcript[1].start_ms == 2400
        assert contact.external_id == "twilio-intelligence:GT" + "2" * 32
        assert contact.metadata["source"] == "twilio-intelligence"

    def test_flat_resource_with_sentences(self) -> None:
        flat = {**TWILIO_TRANSCRIPT["transcript"], "sentences": TWILIO_TRANSCRIPT["sentences"]}
        [contact] = adapter.parse(delivery(flat))
        [nested] = adapter.parse(delivery(TWILIO_TRANSCRIPT))
        assert contact.contact_id == nested.contact_id

    def test_without_roles_channel_one_is_the_caller(self) -> None:
        resource = json.loads(json.dumps(TWILIO_TRANSCRIPT))
        for participant in resource["transcript"]["channel"]["participants"]:
            participant.pop("role")
        [contact] = adapter.parse(delivery(resource))
        assert contact.customer.phone == "+34600111222"
        assert contact.text.startswith("Me han cobrado")

    def test_completion_webhook_without_sentences_is_422(self) -> None:
        webhook = {
            "account_sid": "AC" + "0" * 32,
            "service_sid": "GA" + "1" * 32,
            "transcript_sid": "GT" + "2" * 32,
            "customer_key": "crm-991",
            "event_type": "voice_intelligence_transcript_available",
        }
        with pytest.raises(Unprocessable):
            adapter.parse(delivery(webhook))
