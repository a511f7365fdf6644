"""The ingestion HTTP API, end to end through the ASGI app and a real in-process bus."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import structlog

from omniroute.gateway.channels import AdapterRegistry, default_registry
from omniroute.gateway.channels.base import load_json
from omniroute.gateway.channels.meta import signature_for
from omniroute.gateway.endpoints import gateway_router
from omniroute.shared import topics
from omniroute.shared.errors import PROBLEM_JSON
from omniroute.shared.events import Channel, InboundContact, contact_id_for, conversation_id_for
from tests.gateway.conftest import ADMIN_KEY, VERIFY_TOKEN, Gateway, meta_vector

MESSENGER = "webhooks/facebook-messenger/botbuilder-dotnet"
WHATSAPP = "webhooks/whatsapp-cloud-api/pywa-updates"
LENS = "transcripts/amazon-connect-contact-lens"

CONTACT = {
    "channel": "api",
    "external_id": "crm-123",
    "customer": {"name": "Ana", "email": "Ana@Example.com", "phone": "+34 600 111 222"},
    "subject": "Refund",
    "text": "I want my money back",
}


def assert_problem(response, status: int) -> None:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert body["detail"]


class TestPostContact:
    async def test_accepts_and_publishes(self, gateway: Gateway) -> None:
        response = await gateway.client.post("/v1/contacts", json=CONTACT, headers=gateway.auth())
        assert response.status_code == 202
        body = response.json()
        assert body["contact_id"] == str(contact_id_for("api", "crm-123"))
        assert body["conversation_id"] == str(conversation_id_for("api", "crm-123"))
        [published] = gateway.published
        assert published.customer.email == "ana@example.com"
        assert published.customer.phone == "+34600111222"
        assert published.text == "I want my money back"

    async def test_a_national_number_is_read_in_the_default_region(self, gateway: Gateway) -> None:
        contact = {**CONTACT, "customer": {"name": "Ana", "phone": "600 111 222"}}
        response = await gateway.client.post("/v1/contacts", json=contact, headers=gateway.auth())
        assert response.status_code == 202, response.text
        assert gateway.published[0].customer.phone == "+34600111222"

    async def test_a_number_that_is_none_is_a_clear_422(self, gateway: Gateway) -> None:
        contact = {**CONTACT, "customer": {"name": "Ana", "phone": "4930123456"}}
        response = await gateway.client.post("/v1/contacts", json=contact, headers=gateway.auth())
        assert_problem(response, 422)
        assert "OMNIROUTE_DEFAULT_PHONE_REGION" in response.text
        assert gateway.published == []

    async def test_conversation_key_groups_messages(self, gateway: Gateway) -> None:
        first = {**CONTACT, "external_id": "m1", "conversation_key": "thread-9"}
        second = {**CONTACT, "external_id": "m2", "conversation_key": "thread-9"}
        one = await gateway.client.post("/v1/contacts", json=first, headers=gateway.auth())
        two = await gateway.client.post("/v1/contacts", json=second, headers=gateway.auth())
        assert one.json()["conversation_id"] == two.json()["conversation_id"]
        assert one.json()["contact_id"] != two.json()["contact_id"]

    async def test_card_numbers_never_reach_the_bus(self, gateway: Gateway) -> None:
        contact = {**CONTACT, "text": "my card is 4111 1111 1111 1111"}
        await gateway.client.post("/v1/contacts", json=contact, headers=gateway.auth())
        assert "4111" not in gateway.published[0].text


class TestIdempotency:
    async def test_same_external_id_gives_same_ids(self, gateway: Gateway) -> None:
        first = await gateway.client.post("/v1/contacts", json=CONTACT, headers=gateway.auth())
        again = await gateway.client.post("/v1/contacts", json=CONTACT, headers=gateway.auth())
        assert first.json() == again.json()

    async def test_same_email_twice_gives_same_ids(self, gateway: Gateway, shared_data: Path):
        raw = (shared_data / "email/talon/standard_replies/gmail.eml").read_bytes()
        headers = {**gateway.auth(), "Content-Type": "message/rfc822"}
        first = await gateway.client.post("/v1/channels/email", content=raw, headers=headers)
        again = await gateway.client.post("/v1/channels/email", content=raw, headers=headers)
        assert first.status_code == 202
        assert first.json() == again.json()

    async def test_same_chat_message_without_id_gives_same_ids(self, gateway: Gateway) -> None:
        message = {"session_id": "s1", "visitor": {"id": "v1"}, "text": "hello?"}
        first = await gateway.client.post("/v1/channels/chat", json=message, headers=gateway.auth())
        again = await gateway.client.post("/v1/channels/chat", json=message, headers=gateway.auth())
        assert first.status_code == 202
        assert first.json() == again.json()

    async def test_same_meta_delivery_twice_gives_same_ids(
        self, gateway: Gateway, shared_data: Path
    ) -> None:
        vector = meta_vector(shared_data)
        body = (shared_data / "webhooks/meta-signature" / vector["raw_body_file"]).read_bytes()
        headers = {
            "X-Hub-Signature-256": vector["x_hub_signature_256"],
            "Content-Type": "application/json",
        }
        first = await gateway.client.post("/v1/channels/meta", content=body, headers=headers)
        again = await gateway.client.post("/v1/channels/meta", content=body, headers=headers)
        assert first.status_code == 200
        assert first.json() == again.json()
        assert len(first.json()["contacts"]) == 1


class TestBatch:
    async def test_accepts_a_batch_in_order(self, gateway: Gateway) -> None:
        contacts = [{**CONTACT, "external_id": f"b{i}"} for i in range(3)]
        response = await gateway.client.post(
            "/v1/contacts/batch", json={"contacts": contacts}, headers=gateway.auth()
        )
        assert response.status_code == 202
        receipts = response.json()["contacts"]
        assert [r["contact_id"] for r in receipts] == [
            str(contact_id_for("api", f"b{i}")) for i in range(3)
        ]
        assert [c.external_id for c in gateway.published] == ["b0", "b1", "b2"]

    async def test_refuses_more_than_max_batch(self, gateway: Gateway) -> None:
        contacts = [{"external_id": f"b{i}", "text": "x"} for i in range(501)]
        response = await gateway.client.post(
            "/v1/contacts/batch", json={"contacts": contacts}, headers=gateway.auth()
        )
        assert_problem(response, 413)
        assert gateway.published == []

    async def test_one_invalid_contact_refuses_the_batch(self, gateway: Gateway) -> None:
        contacts = [CONTACT, {"external_id": "", "text": "x"}]
        response = await gateway.client.post(
            "/v1/contacts/batch", json={"contacts": contacts}, headers=gateway.auth()
        )
        assert_problem(response, 422)
        assert gateway.published == []

    async def test_empty_batch_is_invalid(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/contacts/batch", json={"contacts": []}, headers=gateway.auth()
        )
        assert_problem(response, 422)


class TestAuthentication:
    @pytest.mark.parametrize(
        "path", ["/v1/contacts", "/v1/contacts/batch", "/v1/channels/chat", "/v1/channels/phone"]
    )
    async def test_missing_bearer_is_401(self, gateway: Gateway, path: str) -> None:
        response = await gateway.client.post(path, json=CONTACT)
        assert_problem(response, 401)

    async def test_missing_bearer_on_email_is_401(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/email",
            content=b"From: a@b.c\r\n\r\nhi",
            headers={"Content-Type": "message/rfc822"},
        )
        assert_problem(response, 401)

    async def test_unknown_key_is_401(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/contacts", json=CONTACT, headers=gateway.auth("omr_not-a-key")
        )
        assert_problem(response, 401)

    async def test_agent_key_is_403(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/contacts", json=CONTACT, headers=gateway.auth(gateway.agent_key)
        )
        assert_problem(response, 403)
        assert gateway.published == []

    async def test_admin_key_may_ingest(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/contacts", json=CONTACT, headers=gateway.auth(ADMIN_KEY)
        )
        assert response.status_code == 202


class TestBadInput:
    async def test_invalid_json_is_400(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/contacts",
            content=b'{"external_id": ',
            headers={**gateway.auth(), "Content-Type": "application/json"},
        )
        assert_problem(response, 400)

    async def test_invalid_utf8_is_400(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/chat",
            content=b'{"text": "\xff\xfe"}',
            headers={**gateway.auth(), "Content-Type": "application/json"},
        )
        assert_problem(response, 400)

    @pytest.mark.parametrize(
        ("body", "status"),
        [
            (b"", 400),
            (b"  \n", 400),
            (b'{"external_id": "a", "text": "x"} and more', 400),
            (b'{"external_id": "a", "text": "caf\xe9"}', 400),
            (b'{"external_id": "a", "text": NaN}', 422),
            (b'{"external_id": "a", "text": "\\ud800"}', 422),
            (b'"a string"', 422),
        ],
        ids=["empty", "blank", "trailing-data", "latin-1", "nan", "lone-surrogate", "string"],
    )
    async def test_refused_bodies_get_the_right_status(
        self, gateway: Gateway, body: bytes, status: int
    ) -> None:
        response = await gateway.client.post(
            "/v1/contacts",
            content=body,
            headers={**gateway.auth(), "Content-Type": "application/json"},
        )
        assert_problem(response, status)
        assert gateway.published == []

    async def test_utf8_bom_is_tolerated(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/contacts",
            content=b"\xef\xbb\xbf" + json.dumps(CONTACT).encode(),
            headers={**gateway.auth(), "Content-Type": "application/json"},
        )
        assert response.status_code == 202, response.text
        assert response.json()["contact_id"] == str(contact_id_for("api", "crm-123"))

    async def test_missing_external_id_is_422(self, gateway: Gateway) -> None:
        contact = {key: value for key, value in CONTACT.items() if key != "external_id"}
        response = await gateway.client.post("/v1/contacts", json=contact, headers=gateway.auth())
        assert_problem(response, 422)
        assert any(error["loc"] == ["external_id"] for error in response.json()["errors"])

    async def test_unknown_field_is_422(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/contacts", json={**CONTACT, "txt": "typo"}, headers=gateway.auth()
        )
        assert_problem(response, 422)

    async def test_json_array_is_422(self, gateway: Gateway) -> None:
        response = await gateway.client.post("/v1/contacts", json=[CONTACT], headers=gateway.auth())
        assert_problem(response, 422)

    async def test_bad_phone_is_422(self, gateway: Gateway) -> None:
        contact = {**CONTACT, "customer": {"phone": "call me maybe"}}
        response = await gateway.client.post("/v1/contacts", json=contact, headers=gateway.auth())
        assert_problem(response, 422)

    async def test_wrong_content_type_is_415(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/contacts",
            content=json.dumps(CONTACT),
            headers={**gateway.auth(), "Content-Type": "text/plain"},
        )
        assert_problem(response, 415)

    async def test_plain_text_to_the_email_channel_is_415(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/email",
            content=b"hello",
            headers={**gateway.auth(), "Content-Type": "text/plain"},
        )
        assert_problem(response, 415)

    async def test_json_that_is_not_postmark_is_422(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/email", json=CONTACT, headers=gateway.auth()
        )
        assert_problem(response, 422)

    async def test_empty_email_is_400(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/email",
            content=b"\r\n",
            headers={**gateway.auth(), "Content-Type": "message/rfc822"},
        )
        assert_problem(response, 400)


class TestBodyLimit:
    async def test_declared_oversized_body_is_413(self, gateway: Gateway) -> None:
        contact = {**CONTACT, "text": "x" * (1024 * 1024 + 1)}
        response = await gateway.client.post("/v1/contacts", json=contact, headers=gateway.auth())
        assert_problem(response, 413)
        assert gateway.published == []

    async def test_streamed_oversized_body_is_413(self, gateway: Gateway) -> None:
        async def chunks():
            for _ in range(20):
                yield b"x" * 65536

        # E-mail paths have their own, larger limit (tests/gateway/test_body_limits.py).
        response = await gateway.client.post(
            "/v1/channels/chat",
            content=chunks(),
            headers={**gateway.auth(), "Content-Type": "application/json"},
        )
        assert_problem(response, 413)

    async def test_oversized_meta_delivery_is_413(self, gateway: Gateway) -> None:
        body = b"{" + b" " * (1024 * 1024) + b"}"
        response = await gateway.client.post(
            "/v1/channels/meta",
            content=body,
            headers={"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=00"},
        )
        assert_problem(response, 413)


class TestBusUnavailable:
    async def test_publisher_failure_is_503_with_retry_after(self, gateway: Gateway) -> None:
        async def failing(message) -> None:
            raise RuntimeError("router down")

        gateway.bus.subscribe(topics.CONTACTS_INBOUND, "broken", failing)
        response = await gateway.client.post("/v1/contacts", json=CONTACT, headers=gateway.auth())
        assert_problem(response, 503)
        assert "retry-after" in response.headers


class TestMetaRoutes:
    async def test_handshake_answers_the_challenge(self, gateway: Gateway) -> None:
        response = await gateway.client.get(
            "/v1/channels/meta",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": VERIFY_TOKEN,
                "hub.challenge": "1158201444",
            },
        )
        assert response.status_code == 200
        assert response.text == "1158201444"
        assert response.headers["content-type"].startswith("text/plain")

    async def test_handshake_with_wrong_token_is_403(self, gateway: Gateway) -> None:
        response = await gateway.client.get(
            "/v1/channels/meta",
            params={"hub.mode": "subscribe", "hub.verify_token": "nope", "hub.challenge": "1"},
        )
        assert_problem(response, 403)

    async def test_signed_delivery_is_accepted(self, gateway: Gateway, shared_data: Path) -> None:
        vector = meta_vector(shared_data)
        body = (shared_data / "webhooks/meta-signature" / vector["raw_body_file"]).read_bytes()
        response = await gateway.client.post(
            "/v1/channels/meta",
            content=body,
            headers={
                "X-Hub-Signature-256": vector["x_hub_signature_256"],
                "Content-Type": "application/json",
            },
        )
        assert response.status_code == 200
        [published] = gateway.published
        assert published.channel == "whatsapp"
        assert published.text == "Hey there! I am using PyWa."

    async def test_tampered_body_is_401(self, gateway: Gateway, shared_data: Path) -> None:
        vector = meta_vector(shared_data)
        body = (shared_data / "webhooks/meta-signature" / vector["raw_body_file"]).read_bytes()
        tampered = body.replace(b"I am using PyWa", b"I am using PyWb")
        response = await gateway.client.post(
            "/v1/channels/meta",
            content=tampered,
            headers={
                "X-Hub-Signature-256": vector["x_hub_signature_256"],
                "Content-Type": "application/json",
            },
        )
        assert_problem(response, 401)
        assert gateway.published == []

    async def test_unsigned_delivery_is_401(self, gateway: Gateway, shared_data: Path) -> None:
        body = (
            shared_data / "webhooks/facebook-messenger/botbuilder-dotnet/Payload.json"
        ).read_bytes()
        response = await gateway.client.post(
            "/v1/channels/meta", content=body, headers={"Content-Type": "application/json"}
        )
        assert_problem(response, 401)

    async def test_bearer_key_does_not_replace_the_signature(
        self, gateway: Gateway, shared_data: Path
    ) -> None:
        body = (
            shared_data / "webhooks/facebook-messenger/botbuilder-dotnet/Payload.json"
        ).read_bytes()
        response = await gateway.client.post(
            "/v1/channels/meta",
            content=body,
            headers={**gateway.auth(ADMIN_KEY), "Content-Type": "application/json"},
        )
        assert_problem(response, 401)

    async def test_status_only_delivery_is_acknowledged_with_no_contacts(
        self, gateway: Gateway, shared_data: Path
    ) -> None:
        updates = json.loads(
            (
                shared_data / "webhooks/whatsapp-cloud-api/pywa-updates/message_status.json"
            ).read_text()
        )
        body = json.dumps(updates["read"]).encode()
        secret = meta_vector(shared_data)["app_secret"]
        response = await gateway.client.post(
            "/v1/channels/meta",
            content=body,
            headers={
                "X-Hub-Signature-256": signature_for(secret, body),
                "Content-Type": "application/json",
            },
        )
        assert response.status_code == 200
        assert response.json() == {"contacts": []}
        assert gateway.published == []

    async def test_bom_prefixed_messenger_delivery(self, gateway: Gateway, shared_data: Path):
        body = (shared_data / MESSENGER / "PayloadWithStandby.json").read_bytes()
        assert body.startswith(b"\xef\xbb\xbf")
        secret = meta_vector(shared_data)["app_secret"]
        response = await gateway.client.post(
            "/v1/channels/meta",
            content=body,
            headers={
                "X-Hub-Signature-256": signature_for(secret, body),
                "Content-Type": "application/json",
            },
        )
        assert response.status_code == 200
        assert [c.channel for c in gateway.published] == ["messenger"]


class TestLogs:
    async def test_message_bodies_never_reach_the_logs(self, gateway: Gateway) -> None:
        secret_words = "the password to my account is hunter2"
        with structlog.testing.capture_logs() as logs:
            response = await gateway.client.post(
                "/v1/contacts", json={**CONTACT, "text": secret_words}, headers=gateway.auth()
            )
            await gateway.client.post(
                "/v1/channels/chat",
                json={"session_id": "s", "visitor": {"id": "v"}, "text": secret_words},
                headers=gateway.auth(),
            )
        assert response.status_code == 202
        assert any(entry["event"] == "gateway.contact.accepted" for entry in logs)
        assert "hunter2" not in repr(logs)


class TestChannelRoutes:
    async def test_email_is_accepted(self, gateway: Gateway, shared_data: Path) -> None:
        raw = (shared_data / "email/ruby-mail/rfc2822/example06.eml").read_bytes()
        response = await gateway.client.post(
            "/v1/channels/email",
            content=raw,
            headers={**gateway.auth(), "Content-Type": "message/rfc822"},
        )
        assert response.status_code == 202
        assert set(response.json()) == {"contact_id", "conversation_id"}
        assert gateway.published[0].channel == "email"

    async def test_inbound_parse_form_is_accepted(self, gateway: Gateway, shared_data: Path):
        body = (shared_data / "webhooks/sendgrid-inbound-parse/raw_data.txt").read_bytes()
        response = await gateway.client.post(
            "/v1/channels/email",
            content=body,
            headers={**gateway.auth(), "Content-Type": "multipart/form-data; boundary=xYzZY"},
        )
        assert response.status_code == 202
        assert gateway.published[0].subject == "Inbound Parse Test Raw Data"

    async def test_chat_is_accepted(self, gateway: Gateway) -> None:
        message = {
            "session_id": "s-42",
            "message_id": "m-1",
            "visitor": {"id": "v-7", "name": "Ana"},
            "text": "Where is my order?",
        }
        response = await gateway.client.post(
            "/v1/channels/chat", json=message, headers=gateway.auth()
        )
        assert response.status_code == 202
        assert response.json()["contact_id"] == str(contact_id_for("chat", "m-1"))

    async def test_contact_lens_is_accepted(self, gateway: Gateway, shared_data: Path) -> None:
        path = f"{LENS}/contact-lens-example-output-files.example1.json"
        response = await gateway.client.post(
            "/v1/channels/phone",
            content=(shared_data / path).read_bytes(),
            headers={**gateway.auth(), "Content-Type": "application/json"},
        )
        assert response.status_code == 202
        assert gateway.published[0].channel == "phone"

    async def test_unknown_meta_object_is_422(self, gateway: Gateway, shared_data: Path) -> None:
        body = json.dumps({"object": "permissions", "entry": []}).encode()
        secret = meta_vector(shared_data)["app_secret"]
        response = await gateway.client.post(
            "/v1/channels/meta",
            content=body,
            headers={
                "X-Hub-Signature-256": signature_for(secret, body),
                "Content-Type": "application/json",
            },
        )
        assert_problem(response, 422)

    async def test_unknown_channel_is_404(self, gateway: Gateway) -> None:
        response = await gateway.client.post("/v1/channels/pigeon", json={}, headers=gateway.auth())
        assert_problem(response, 404)


class TestEveryEmailFixture:
    async def test_no_email_fixture_gets_a_5xx(self, gateway: Gateway, shared_data: Path) -> None:
        files = sorted(path for path in (shared_data / "email").rglob("*") if path.is_file())
        assert len(files) > 200
        statuses: dict[str, int] = {}
        for path in files:
            response = await gateway.client.post(
                "/v1/channels/email",
                content=path.read_bytes(),
                headers={**gateway.auth(), "Content-Type": "message/rfc822"},
            )
            statuses[str(path.relative_to(shared_data))] = response.status_code
            assert response.status_code < 500, (path, response.text)
        accepted = sum(1 for status in statuses.values() if status == 202)
        assert accepted >= 0.9 * len(files), statuses


class TestOpenApi:
    async def test_every_route_is_documented(self, gateway: Gateway) -> None:
        schema = (await gateway.client.get("/openapi.json")).json()
        for path in (
            "/v1/contacts",
            "/v1/contacts/batch",
            "/v1/channels/email",
            "/v1/channels/chat",
            "/v1/channels/phone",
            "/v1/channels/meta",
        ):
            for operation in schema["paths"][path].values():
                assert operation["summary"]
                assert operation["description"]
        body = schema["paths"]["/v1/contacts"]["post"]["requestBody"]
        properties = body["content"]["application/json"]["schema"]["properties"]
        assert "external_id" in properties


class _SmsAdapter:
    """A channel added by a test, to show that one registration is all a new channel needs."""

    name = "sms"
    authentication = "api_key"
    content_types = ("application/json",)
    summary = "Ingest one SMS"
    body_model = None

    def verify(self, delivery, settings) -> None:
        return None

    def handshake(self, delivery, settings):
        return None

    def reply(self, contacts):
        return None

    def parse(self, delivery):
        payload = load_json(delivery)
        return [
            InboundContact.build(
                channel=Channel.SMS,
                external_id=payload["sid"],
                conversation_key=payload["from"],
                text=payload["body"],
            )
        ]


class _BrokenAdapter(_SmsAdapter):
    name = "broken"

    def parse(self, delivery):
        raise KeyError("an adapter bug")


class TestRegistryRoutes:
    async def test_a_registered_adapter_gets_its_route(self, gateway: Gateway) -> None:
        registry = default_registry()
        registry.register(_SmsAdapter())
        gateway.app.include_router(gateway_router(registry), prefix="/extra")
        response = await gateway.client.post(
            "/extra/v1/channels/sms",
            json={"sid": "SM1", "from": "+34600111222", "body": "hola"},
            headers=gateway.auth(),
        )
        assert response.status_code == 202
        assert response.json()["contact_id"] == str(contact_id_for("sms", "SM1"))
        assert gateway.published[-1].channel == "sms"

    async def test_channel_bodies_are_documented(self, gateway: Gateway) -> None:
        schema = (await gateway.client.get("/openapi.json")).json()
        chat = schema["paths"]["/v1/channels/chat"]["post"]["requestBody"]["content"]
        assert "session_id" in chat["application/json"]["schema"]["properties"]
        email = schema["paths"]["/v1/channels/email"]["post"]["requestBody"]["content"]
        assert email["message/rfc822"]["schema"]["format"] == "binary"
        assert "$ref" not in json.dumps(chat)

    async def test_an_adapter_bug_is_422_not_500(self, gateway: Gateway) -> None:
        registry = AdapterRegistry([_BrokenAdapter()])
        gateway.app.include_router(gateway_router(registry), prefix="/extra")
        response = await gateway.client.post(
            "/extra/v1/channels/broken", json={"sid": "x"}, headers=gateway.auth()
        )
        assert_problem(response, 422)
