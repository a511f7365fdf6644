"""Twilio Messaging webhooks: signatures (Twilio's own vectors), SMS, WhatsApp, statuses."""

from __future__ import annotations

import json
import urllib.parse
from pathlib import Path

import pytest

from omniroute.gateway.channels.twilio import TwilioAdapter, signature_for, valid_signature
from omniroute.shared.errors import BadRequest, Unauthorized, Unprocessable
from omniroute.shared.events import Channel, contact_id_for
from tests.gateway.conftest import TWILIO_TOKEN, Gateway, delivery

VECTORS = "webhooks/twilio/twilio_request_validator_vectors.json"
SAMPLES = "webhooks/twilio/botbuilder-dotnet"
FORM = "application/x-www-form-urlencoded"
URL = "http://test/v1/channels/twilio"

WHATSAPP = urllib.parse.urlencode(
    {
        "SmsMessageSid": "SM5f2c3a1b9e8d7c6b5a4f3e2d1c0b9a8f",
        "NumMedia": "1",
        "ProfileName": "Ana García",
        "SmsSid": "SM5f2c3a1b9e8d7c6b5a4f3e2d1c0b9a8f",
        "WaId": "34600111222",
        "SmsStatus": "received",
        "Body": "Hola, mi pedido no ha llegado",
        "To": "whatsapp:+14155238886",
        "NumSegments": "1",
        "ReferralNumMedia": "0",
        "MessageSid": "SM5f2c3a1b9e8d7c6b5a4f3e2d1c0b9a8f",
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": "whatsapp:+34600111222",
        "MediaContentType0": "image/jpeg",
        "MediaUrl0": "https://api.twilio.com/2010-04-01/Accounts/AC01/Messages/SM5f/Media/ME42",
        "ApiVersion": "2010-04-01",
    }
)
SMS = urllib.parse.urlencode(
    {
        "ToCountry": "ES",
        "SmsMessageSid": "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "NumMedia": "0",
        "SmsSid": "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "SmsStatus": "received",
        "Body": "My card was charged twice",
        "To": "+34910000000",
        "MessageSid": "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9",
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": "+34 600 111 222",
        "ApiVersion": "2010-04-01",
    }
)
STATUS = urllib.parse.urlencode(
    {
        "SmsSid": "SM99",
        "SmsStatus": "delivered",
        "MessageStatus": "delivered",
        "To": "+34600111222",
        "MessageSid": "SM99",
        "AccountSid": "AC0123456789abcdef0123456789abcdef",
        "From": "+34910000000",
        "ApiVersion": "2010-04-01",
    }
)


def signed(body: str, url: str = URL, token: str = TWILIO_TOKEN) -> dict[str, str]:
    params = urllib.parse.parse_qsl(body, keep_blank_values=True)
    return {"Content-Type": FORM, "X-Twilio-Signature": signature_for(token, url, params)}


def parse(body: str | bytes) -> list:
    return TwilioAdapter().parse(delivery(body, FORM))


class TestSignatureVectors:
    def test_every_published_vector_verifies(self, shared_data: Path) -> None:
        vectors = json.loads((shared_data / VECTORS).read_text())["vectors"]
        assert len(vectors) == 6
        for vector in vectors:
            params = vector.get("params_multi") or list(vector.get("params", {}).items())
            body = vector["raw_body"].encode() if "raw_body" in vector else None
            ok = valid_signature(
                vector["auth_token"],
                vector["url"],
                [tuple(pair) for pair in params],
                vector["expected_signature"],
                body=body,
            )
            assert ok, vector["name"]

    def test_a_changed_parameter_fails(self, shared_data: Path) -> None:
        vector = json.loads((shared_data / VECTORS).read_text())["vectors"][0]
        params = {**vector["params"], "Digits": "9999"}
        assert not valid_signature(
            vector["auth_token"], vector["url"], list(params.items()), vector["expected_signature"]
        )

    def test_a_tampered_json_body_fails(self, shared_data: Path) -> None:
        vector = json.loads((shared_data / VECTORS).read_text())["vectors"][5]
        assert not valid_signature(
            vector["auth_token"],
            vector["url"],
            [],
            vector["expected_signature"],
            body=b'{"property": "other", "boolean": true}',
        )


class TestEndpointSignatures:
    async def test_valid_signature_is_200_with_empty_twiml(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/twilio", content=SMS, headers=signed(SMS)
        )
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/xml")
        assert "<Response/>" in response.text
        [contact] = gateway.published
        assert contact.channel is Channel.SMS

    async def test_tampered_body_is_401(self, gateway: Gateway) -> None:
        headers = signed(SMS)
        tampered = SMS.replace("twice", "three+times")
        response = await gateway.client.post(
            "/v1/channels/twilio", content=tampered, headers=headers
        )
        assert response.status_code == 401
        assert gateway.published == []

    async def test_missing_signature_is_401(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/twilio", content=SMS, headers={"Content-Type": FORM}
        )
        assert response.status_code == 401

    async def test_wrong_token_is_401(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/twilio", content=SMS, headers=signed(SMS, token="another")
        )
        assert response.status_code == 401

    async def test_behind_a_proxy_the_public_url_is_signed(self, gateway: Gateway) -> None:
        gateway.app.state.settings.gateway.public_url = "https://hooks.example.com/"
        public = "https://hooks.example.com/v1/channels/twilio"
        ok = await gateway.client.post(
            "/v1/channels/twilio", content=SMS, headers=signed(SMS, url=public)
        )
        assert ok.status_code == 200
        internal = await gateway.client.post(
            "/v1/channels/twilio", content=SMS, headers=signed(SMS, url=URL)
        )
        assert internal.status_code == 401

    async def test_replaying_three_times_gives_one_contact_id(self, gateway: Gateway) -> None:
        for _ in range(3):
            response = await gateway.client.post(
                "/v1/channels/twilio", content=WHATSAPP, headers=signed(WHATSAPP)
            )
            assert response.status_code == 200
        assert len({contact.contact_id for contact in gateway.published}) == 1

    async def test_status_callback_creates_nothing(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/twilio", content=STATUS, headers=signed(STATUS)
        )
        assert response.status_code == 200
        assert gateway.published == []

    async def test_invalid_utf8_is_400(self, gateway: Gateway) -> None:
        body = b"Body=%FF&From=%2B34600111222&MessageSid=SM1"
        headers = {"Content-Type": FORM, "X-Twilio-Signature": "x"}
        response = await gateway.client.post("/v1/channels/twilio", content=body, headers=headers)
        assert response.status_code in (400, 401)
        raw = b"Body=\xff&MessageSid=SM1"
        with pytest.raises(BadRequest):
            parse(raw)


class TestMessages:
    def test_sms_sample_without_media(self, shared_data: Path) -> None:
        [contact] = parse((shared_data / SAMPLES / "NoMediaPayload.txt").read_bytes())
        assert contact.channel is Channel.SMS
        assert contact.external_id == "3333"
        assert contact.text == "Hello"
        assert contact.attachments == []
        assert contact.customer.provider_ids["twilio_from"] == "+2222"

    def test_sms_sample_with_media(self, shared_data: Path) -> None:
        [contact] = parse((shared_data / SAMPLES / "MediaPayload.txt").read_bytes())
        [attachment] = contact.attachments
        assert attachment.url == "www.contoso.com"
        assert attachment.content_type == "json"

    def test_sms_number_is_e164(self) -> None:
        [contact] = parse(SMS)
        assert contact.customer.phone == "+34600111222"
        assert contact.external_id == "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9"
        assert contact.contact_id == contact_id_for("sms", "SM0a1b2c3d4e5f60718293a4b5c6d7e8f9")

    def test_whatsapp_from_the_prefix(self) -> None:
        [contact] = parse(WHATSAPP)
        assert contact.channel is Channel.WHATSAPP
        assert contact.customer.phone == "+34600111222"
        assert contact.customer.name == "Ana García"
        assert contact.customer.provider_ids["wa_id"] == "34600111222"
        assert contact.text == "Hola, mi pedido no ha llegado"
        [media] = contact.attachments
        assert media.content_type == "image/jpeg"
        assert media.provider_id == "ME42"

    def test_messages_of_one_customer_share_a_conversation(self) -> None:
        second = WHATSAPP.replace("SM5f2c3a1b9e8d7c6b5a4f3e2d1c0b9a8f", "SM77")
        [one], [two] = parse(WHATSAPP), parse(second)
        assert one.conversation_id == two.conversation_id
        assert one.contact_id != two.contact_id

    @pytest.mark.parametrize("status", ["queued", "sent", "delivered", "read", "failed"])
    def test_statuses_create_nothing(self, status: str) -> None:
        assert parse(STATUS.replace("delivered", status)) == []

    def test_voice_webhook_creates_nothing(self) -> None:
        assert parse("CallSid=CA1&From=%2B34600111222&CallStatus=ringing") == []

    def test_not_a_twilio_form_is_422(self) -> None:
        with pytest.raises(Unprocessable):
            parse("hello=world")

    def test_json_body_creates_nothing(self) -> None:
        assert TwilioAdapter().parse(delivery({"property": "value"})) == []

    def test_without_an_auth_token_nothing_is_accepted(self, settings) -> None:
        settings.gateway.twilio_auth_token = None
        headers = {name.lower(): value for name, value in signed(SMS).items()}
        with pytest.raises(Unauthorized):
            TwilioAdapter().verify(delivery(SMS, FORM, headers=headers), settings)

    def test_whatsapp_location(self) -> None:
        fields = dict(urllib.parse.parse_qsl(WHATSAPP))
        fields.update(
            Body="", NumMedia="0", Latitude="40.4168", Longitude="-3.7038", Address="Sol, Madrid"
        )
        [contact] = parse(urllib.parse.urlencode(fields))
        assert contact.text == "Location: Sol, Madrid (40.4168, -3.7038)"
