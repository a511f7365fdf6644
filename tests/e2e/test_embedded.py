"""End to end through the HTTP API of the embedded app: every channel becomes a classified
conversation, offered to the right agent, accepted and completed."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import json
import time
import uuid

import pytest

from tests.fixtures.embedded import ALL_SKILLS, META_SECRET, META_VERIFY, Embedded

EMAIL = (
    "From: =?utf-8?q?Luc=C3=ADa_P=C3=A9rez?= <Lucia.Perez@Example.es>\r\n"
    "To: soporte@omniroute.test\r\n"
    "Subject: =?utf-8?q?Factura_duplicada_-_cobro_dos_veces?=\r\n"
    "Message-ID: <factura-1@example.es>\r\n"
    "Date: Mon, 23 Nov 2026 09:15:00 +0100\r\n"
    "MIME-Version: 1.0\r\n"
    "Content-Type: text/plain; charset=utf-8\r\n"
    "Content-Transfer-Encoding: 8bit\r\n"
    "\r\n"
    "Buenos días, me han cobrado la factura de noviembre dos veces en la tarjeta. "
    "¿Pueden devolverme el importe duplicado?\r\nGracias, Lucía\r\n"
).encode()


def whatsapp_payload(message_id: str, text: str) -> bytes:
    return json.dumps(
        {
            "object": "whatsapp_business_account",
            "entry": [
                {
                    "id": "102290129340398",
                    "changes": [
                        {
                            "field": "messages",
                            "value": {
                                "messaging_product": "whatsapp",
                                "metadata": {
                                    "display_phone_number": "15550783881",
                                    "phone_number_id": "106540352242922",
                                },
                                "contacts": [{"profile": {"name": "Ana"}, "wa_id": "34600111222"}],
                                "messages": [
                                    {
                                        "from": "34600111222",
                                        "id": message_id,
                                        "timestamp": str(int(time.time())),
                                        "type": "text",
                                        "text": {"body": text},
                                    }
                                ],
                            },
                        }
                    ],
                }
            ],
        }
    ).encode()


def meta_signature(body: bytes) -> str:
    return "sha256=" + hmac.new(META_SECRET.encode(), body, hashlib.sha256).hexdigest()


async def handle_one(
    app: Embedded, agent_id: str, headers: dict[str, str], conversation_id: str
) -> dict[str, object]:
    """The agent desktop's loop: long-poll, accept, read, complete."""
    offers = await app.offers(agent_id, headers)
    assert [offer["conversation_id"] for offer in offers] == [conversation_id]
    accepted = await app.client.post(f"/v1/offers/{offers[0]['id']}/accept", headers=headers)
    assert accepted.status_code == 200, accepted.text
    conversation = (
        await app.client.get(f"/v1/conversations/{conversation_id}", headers=headers)
    ).json()
    assert conversation["status"] == "assigned"
    assert conversation["agent_id"] == agent_id
    done = await app.client.post(f"/v1/conversations/{conversation_id}/complete", headers=headers)
    assert done.status_code == 200, done.text
    assert done.json()["status"] == "completed"
    return dict(conversation)


class TestEveryChannelEndToEnd:
    async def test_email_to_the_billing_agent(self, embedded: Embedded) -> None:
        general = await embedded.create_agent("Gen", {"general": 3})
        billing = await embedded.create_agent("Bill", {"billing": 4, "lang:es": 5})
        ingest = await embedded.key("ingest")
        response = await embedded.client.post(
            "/v1/channels/email",
            content=EMAIL,
            headers={**ingest, "Content-Type": "message/rfc822"},
        )
        assert response.status_code == 202, response.text
        receipt = response.json()
        agent_headers = await embedded.key("agent", billing)
        conversation = await handle_one(
            embedded, billing, agent_headers, receipt["conversation_id"]
        )
        assert conversation["channel"] == "email"
        assert conversation["language"] == "es"
        assert conversation["category"] == "billing"
        assert conversation["queue"] == "billing"
        assert conversation["first_response_due"]
        [message] = conversation["messages"]  # type: ignore[misc]
        assert "cobrado" in message["text"]
        types = [event["type"] for event in conversation["events"]]  # type: ignore[attr-defined]
        assert types[:2] == ["contact.received", "contact.classified"]
        assert "offer.accepted" in types
        assert await embedded.offers(general, await embedded.key("agent", general), wait=0) == []

    async def test_chat_message_and_its_follow_up(self, embedded: Embedded) -> None:
        agent = await embedded.create_agent("Gen", {s: 3 for s in ALL_SKILLS})
        ingest = await embedded.key("ingest")
        first = await embedded.client.post(
            "/v1/channels/chat",
            json={
                "session_id": "sess-42",
                "visitor": {"id": "v-1", "name": "Tom", "email": "tom@example.com"},
                "text": "Hi, where is my order? It has not arrived yet.",
                "message_id": "m-1",
            },
            headers=ingest,
        )
        assert first.status_code == 202, first.text
        conversation_id = first.json()["conversation_id"]
        headers = await embedded.key("agent", agent)
        [offer] = await embedded.offers(agent, headers)
        await embedded.client.post(f"/v1/offers/{offer['id']}/accept", headers=headers)

        follow_up = await embedded.client.post(
            "/v1/channels/chat",
            json={
                "session_id": "sess-42",
                "visitor": {"id": "v-1", "name": "Tom"},
                "text": "Order number is 12345",
                "message_id": "m-2",
            },
            headers=ingest,
        )
        assert follow_up.json()["conversation_id"] == conversation_id
        conversation = (
            await embedded.client.get(f"/v1/conversations/{conversation_id}", headers=headers)
        ).json()
        assert conversation["message_count"] == 2
        assert conversation["status"] == "assigned"
        assert conversation["language"] == "en"
        # The follow-up went to its agent; it created no new work.
        assert await embedded.offers(agent, headers, wait=0.5) == []

    async def test_whatsapp_through_the_meta_webhook(self, embedded: Embedded) -> None:
        agent = await embedded.create_agent("Gen", {s: 3 for s in ALL_SKILLS})
        challenge = await embedded.client.get(
            "/v1/channels/meta",
            params={
                "hub.mode": "subscribe",
                "hub.verify_token": META_VERIFY,
                "hub.challenge": "42",
            },
        )
        assert challenge.status_code == 200
        assert challenge.text == "42"
        body = whatsapp_payload("wamid.TEST1", "Hola, no puedo entrar en mi cuenta")
        response = await embedded.client.post(
            "/v1/channels/meta",
            content=body,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": meta_signature(body),
            },
        )
        assert response.status_code == 200, response.text
        [receipt] = response.json()["contacts"]
        conversation = await handle_one(
            embedded, agent, await embedded.key("agent", agent), receipt["conversation_id"]
        )
        assert conversation["channel"] == "whatsapp"

        tampered = body.replace(b"cuenta", b"cuentas")
        refused = await embedded.client.post(
            "/v1/channels/meta",
            content=tampered,
            headers={
                "Content-Type": "application/json",
                "X-Hub-Signature-256": meta_signature(body),
            },
        )
        assert refused.status_code == 401
        assert refused.headers["content-type"].startswith("application/problem+json")

    async def test_phone_transcript(self, embedded: Embedded) -> None:
        agent = await embedded.create_agent("Gen", {s: 3 for s in ALL_SKILLS})
        ingest = await embedded.key("ingest")
        response = await embedded.client.post(
            "/v1/channels/phone",
            json={
                "call_id": "call-7",
                "caller_number": "+34600111333",
                "turns": [
                    {"speaker": "agent", "text": "Gracias por llamar, ¿en qué puedo ayudarle?"},
                    {"speaker": "customer", "text": "Quiero saber cuándo llega mi pedido."},
                ],
            },
            headers=ingest,
        )
        assert response.status_code == 202, response.text
        conversation = await handle_one(
            embedded, agent, await embedded.key("agent", agent), response.json()["conversation_id"]
        )
        assert conversation["channel"] == "phone"
        [message] = conversation["messages"]  # type: ignore[misc]
        assert len(message["transcript"]) == 2

    async def test_a_retried_post_returns_the_same_ids(self, embedded: Embedded) -> None:
        ingest = await embedded.key("ingest")
        payload = {
            "channel": "sms",
            "external_id": "SM123",
            "customer": {"phone": "+34600999888"},
            "text": "Necesito una factura",
        }
        first = await embedded.client.post("/v1/contacts", json=payload, headers=ingest)
        second = await embedded.client.post("/v1/contacts", json=payload, headers=ingest)
        assert first.status_code == second.status_code == 202
        assert first.json() == second.json()
        conversation = (
            await embedded.client.get(
                f"/v1/conversations/{first.json()['conversation_id']}", headers=embedded.admin
            )
        ).json()
        assert conversation["message_count"] == 1


class TestLongPoll:
    async def test_after_waits_for_an_offer_newer_than_the_desktops_newest(
        self, embedded: Embedded
    ) -> None:
        agent = await embedded.create_agent("Gen", {s: 3 for s in ALL_SKILLS}, capacity={"chat": 5})
        headers = await embedded.key("agent", agent)
        ingest = await embedded.key("ingest")

        async def chat(session: str) -> None:
            response = await embedded.client.post(
                "/v1/channels/chat",
                json={
                    "session_id": session,
                    "visitor": {"id": session, "name": "Tom"},
                    "text": "Hi, where is my order?",
                    "message_id": f"{session}-1",
                },
                headers=ingest,
            )
            assert response.status_code == 202, response.text

        await chat("first")
        [first] = await embedded.offers(agent, headers, wait=15)

        async def second_later() -> None:
            await asyncio.sleep(0.3)
            await chat("second")

        later = asyncio.create_task(second_later())
        # Without `after` this would answer at once with the first offer alone.
        response = await embedded.client.get(
            f"/v1/agents/{agent}/offers",
            params={"wait": 15, "after": first["id"]},
            headers=headers,
        )
        await later
        assert response.status_code == 200, response.text
        offers = response.json()["offers"]
        assert len(offers) == 2
        assert first["id"] in [offer["id"] for offer in offers]


class TestOfferExpiry:
    @pytest.fixture
    def offer_timeout(self) -> float:
        return 1.0

    async def test_an_unaccepted_offer_goes_back_and_to_another_agent(
        self, embedded: Embedded
    ) -> None:
        slow = await embedded.create_agent("Slow", {"general": 3})
        ingest = await embedded.key("ingest")
        receipt = (
            await embedded.client.post(
                "/v1/contacts",
                json={"channel": "chat", "external_id": "x-1", "text": "hello, a question"},
                headers=ingest,
            )
        ).json()
        slow_headers = await embedded.key("agent", slow)
        [offer] = await embedded.offers(slow, slow_headers)
        prompt = await embedded.create_agent("Prompt", {"general": 3}, status="away")
        await embedded.client.patch(
            f"/v1/agents/{prompt}", json={"status": "available"}, headers=embedded.admin
        )
        prompt_headers = await embedded.key("agent", prompt)
        [second] = await embedded.offers(prompt, prompt_headers, wait=15)
        assert second["conversation_id"] == receipt["conversation_id"]
        late = await embedded.client.post(f"/v1/offers/{offer['id']}/accept", headers=slow_headers)
        assert late.status_code == 409
        conversation = (
            await embedded.client.get(
                f"/v1/conversations/{receipt['conversation_id']}", headers=embedded.admin
            )
        ).json()
        assert "offer.expired" in [event["type"] for event in conversation["events"]]


class TestAuthorization:
    async def test_an_agent_sees_nothing_of_another_agent(self, embedded: Embedded) -> None:
        everything = {s: 3 for s in ALL_SKILLS}
        owner = await embedded.create_agent("Owner", everything)
        other = await embedded.create_agent("Other", everything, status="away")
        ingest = await embedded.key("ingest")
        receipt = (
            await embedded.client.post(
                "/v1/contacts",
                json={"channel": "chat", "external_id": "auth-1", "text": "hello"},
                headers=ingest,
            )
        ).json()
        owner_headers = await embedded.key("agent", owner)
        other_headers = await embedded.key("agent", other)
        [offer] = await embedded.offers(owner, owner_headers)

        assert (
            await embedded.client.get(f"/v1/agents/{owner}/offers", headers=other_headers)
        ).status_code == 404
        assert (
            await embedded.client.post(f"/v1/offers/{offer['id']}/accept", headers=other_headers)
        ).status_code == 404
        assert (
            await embedded.client.get(
                f"/v1/conversations/{receipt['conversation_id']}", headers=other_headers
            )
        ).status_code == 404
        # The rightful agent can.
        assert (
            await embedded.client.get(
                f"/v1/conversations/{receipt['conversation_id']}", headers=owner_headers
            )
        ).status_code == 200
        assert (
            await embedded.client.post(f"/v1/offers/{offer['id']}/accept", headers=owner_headers)
        ).status_code == 200

    async def test_roles_are_enforced(self, embedded: Embedded) -> None:
        ingest = await embedded.key("ingest")
        assert (await embedded.client.get("/v1/queues", headers=ingest)).status_code == 403
        assert (await embedded.client.get("/v1/queues")).status_code == 401
        bogus = {"Authorization": f"Bearer omr_{uuid.uuid4().hex}"}
        response = await embedded.client.get("/v1/queues", headers=bogus)
        assert response.status_code == 401
        assert response.headers["content-type"].startswith("application/problem+json")

    async def test_queue_stats(self, embedded: Embedded) -> None:
        ingest = await embedded.key("ingest")
        receipt = (
            await embedded.client.post(
                "/v1/contacts",
                json={"channel": "chat", "external_id": "q-1", "text": "where is my parcel?"},
                headers=ingest,
            )
        ).json()
        conversation = (
            await embedded.client.get(
                f"/v1/conversations/{receipt['conversation_id']}", headers=embedded.admin
            )
        ).json()
        stats = (
            await embedded.client.get(
                f"/v1/queues/{conversation['queue_id']}/stats", headers=embedded.admin
            )
        ).json()
        assert stats["name"] == conversation["queue"]
        assert stats["waiting"] == 1
        assert stats["agents_available"] == 0
        assert stats["longest_wait_seconds"] >= 0


def email_from_lucia(message_id: str, subject: str, body: str) -> bytes:
    return (
        "From: =?utf-8?q?Luc=C3=ADa_P=C3=A9rez?= <Lucia.Perez@Example.es>\r\n"
        "To: soporte@omniroute.test\r\n"
        f"Subject: {subject}\r\n"
        f"Message-ID: <{message_id}@example.es>\r\n"
        "Date: Mon, 23 Nov 2026 09:15:00 +0100\r\n"
        "MIME-Version: 1.0\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        "\r\n"
        f"{body}\r\n"
    ).encode()


async def wait_for_notice(
    app: Embedded, conversation_id: str, kind: str, count: int = 1
) -> list[dict[str, object]]:
    """Notices are produced by the router's timer: poll the conversation until they appear."""
    for _ in range(100):
        response = await app.client.get(f"/v1/conversations/{conversation_id}", headers=app.admin)
        assert response.status_code == 200, response.text
        notices = [n for n in response.json()["notifications"] if n["kind"] == kind]
        if len(notices) >= count:
            return notices
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {kind} notice for {conversation_id}")


class TestCustomersAndNotices:
    @pytest.fixture(autouse=True)
    def _fast_notices(self, monkeypatch: pytest.MonkeyPatch) -> None:
        monkeypatch.setenv("OMNIROUTE_NOTIFICATION_INTERVAL_SECONDS", "0.05")
        monkeypatch.setenv("OMNIROUTE_BRAND_NAME", "Tiendas Sol")

    async def test_a_customer_kept_informed_from_first_mail_to_survey(
        self, embedded: Embedded
    ) -> None:
        billing = await embedded.create_agent("Marta Gil", {"billing": 4, "lang:es": 5})
        agent = await embedded.key("agent", billing)
        ingest = await embedded.key("ingest")
        supervisor = await embedded.key("supervisor")
        mail = {**ingest, "Content-Type": "message/rfc822"}

        received = await embedded.client.post("/v1/channels/email", content=EMAIL, headers=mail)
        assert received.status_code == 202, received.text
        conversation_id = received.json()["conversation_id"]
        [ack] = await wait_for_notice(embedded, conversation_id, "acknowledgement")
        detail = (
            await embedded.client.get(
                f"/v1/conversations/{conversation_id}", headers=embedded.admin
            )
        ).json()
        reference = detail["reference"]
        assert ack["recipient"] == "email:lucia.perez@example.es"
        assert ack["language"] == "es"
        assert ack["subject"] == f"[#{reference}] Hemos recibido su mensaje"
        assert "gracias por escribir a Tiendas Sol" in str(ack["text"])

        [offer] = await embedded.offers(billing, agent)
        accepted = await embedded.client.post(f"/v1/offers/{offer['id']}/accept", headers=agent)
        assert accepted.status_code == 200, accepted.text
        [assigned] = await wait_for_notice(embedded, conversation_id, "assigned")
        assert "le atiende Marta" in str(assigned["text"])

        # The customer, found by a differently written address, with the history.
        found = await embedded.client.get(
            "/v1/customers", params={"email": " LUCIA.PEREZ@example.ES"}, headers=supervisor
        )
        assert found.status_code == 200, found.text
        [customer] = found.json()
        profile = await embedded.client.get(f"/v1/customers/{customer['id']}", headers=agent)
        assert profile.status_code == 200, profile.text
        assert [c["id"] for c in profile.json()["conversations"]] == [conversation_id]
        assert profile.json()["conversations"][0]["category"] == "billing"

        done = await embedded.client.post(
            f"/v1/conversations/{conversation_id}/complete", headers=agent
        )
        assert done.status_code == 200, done.text
        await wait_for_notice(embedded, conversation_id, "survey")
        # Once the conversation is over, the agent no longer reads the customer.
        gone = await embedded.client.get(f"/v1/customers/{customer['id']}", headers=agent)
        assert gone.status_code == 404

        answer = {"csat": 5, "nps": 10, "comment": "Muy amables"}
        url = f"/v1/conversations/{conversation_id}/feedback"
        assert (await embedded.client.post(url, json=answer, headers=agent)).status_code == 403
        first = await embedded.client.post(url, json=answer, headers=ingest)
        again = await embedded.client.post(url, json=answer, headers=ingest)
        assert (first.status_code, again.status_code) == (201, 200)
        invalid = await embedded.client.post(url, json={"csat": 9}, headers=ingest)
        assert invalid.status_code == 422
        stats = await embedded.client.get(
            f"/v1/queues/{detail['queue_id']}/stats", headers=supervisor
        )
        satisfaction = {
            k: stats.json()[k] for k in ("survey_responses", "csat_average", "nps_score")
        }
        assert satisfaction == {"survey_responses": 1, "csat_average": 5.0, "nps_score": 100.0}
        overall = (await embedded.client.get("/v1/stats", headers=supervisor)).json()
        assert overall["survey_responses"] == 1
        assert overall["notifications"]["acknowledgement"] == 1

        # Headers lost, reference in the subject: the reply reopens the same conversation.
        reply = email_from_lucia(
            "reply-9", f"Otra duda [#{reference}]", "Sigo sin ver la devolución del cobro."
        )
        reopened = await embedded.client.post("/v1/channels/email", content=reply, headers=mail)
        assert reopened.status_code == 202, reopened.text
        await wait_for_notice(embedded, conversation_id, "acknowledgement", count=2)
        thread = await embedded.client.get(
            f"/v1/conversations/{conversation_id}", headers=embedded.admin
        )
        assert thread.json()["message_count"] == 2
        # The gateway's receipt names the thread it computed; it leads to the joined conversation.
        by_receipt = await embedded.client.get(
            f"/v1/conversations/{reopened.json()['conversation_id']}", headers=embedded.admin
        )
        assert by_receipt.status_code == 200
        assert by_receipt.json()["id"] == conversation_id

    async def test_merge_and_erasure_over_http(self, embedded: Embedded) -> None:
        ingest = await embedded.key("ingest")
        supervisor = await embedded.key("supervisor")
        by_sms = await embedded.client.post(
            "/v1/contacts",
            json={
                "channel": "sms",
                "external_id": "SM-merge-1",
                "customer": {"phone": "+34 611 000 111", "name": "Lucía"},
                "text": "¿Dónde está mi pedido?",
            },
            headers=ingest,
        )
        by_mail = await embedded.client.post(
            "/v1/channels/email",
            content=EMAIL,
            headers={**ingest, "Content-Type": "message/rfc822"},
        )
        assert by_sms.status_code == by_mail.status_code == 202
        [sms_customer] = (
            await embedded.client.get(
                "/v1/customers", params={"phone": "611000111"}, headers=supervisor
            )
        ).json()
        [mail_customer] = (
            await embedded.client.get(
                "/v1/customers", params={"email": "lucia.perez@example.es"}, headers=supervisor
            )
        ).json()
        agent = await embedded.key("agent", await embedded.create_agent("Gen", {"general": 1}))
        forbidden = await embedded.client.post(
            f"/v1/customers/{mail_customer['id']}/merge",
            json={"other_id": sms_customer["id"]},
            headers=agent,
        )
        assert forbidden.status_code == 403
        merged = await embedded.client.post(
            f"/v1/customers/{mail_customer['id']}/merge",
            json={"other_id": sms_customer["id"]},
            headers=supervisor,
        )
        assert merged.status_code == 200, merged.text
        assert merged.json()["conversations_moved"] == 1
        profile = (
            await embedded.client.get(f"/v1/customers/{mail_customer['id']}", headers=supervisor)
        ).json()
        assert {c["channel"] for c in profile["conversations"]} == {"sms", "email"}
        assert profile["phone"] == "+34611000111"
        patched = await embedded.client.patch(
            f"/v1/customers/{mail_customer['id']}",
            json={"timezone": "Atlantic/Canary", "consent": {"surveys": False}, "tier": "vip"},
            headers=supervisor,
        )
        assert patched.status_code == 200, patched.text
        assert (patched.json()["timezone"], patched.json()["consent"]) == (
            "Atlantic/Canary",
            {"surveys": False},
        )
        bad_zone = await embedded.client.patch(
            f"/v1/customers/{mail_customer['id']}",
            json={"timezone": "Mars/Olympus"},
            headers=supervisor,
        )
        assert bad_zone.status_code == 400

        assert (
            await embedded.client.delete(f"/v1/customers/{mail_customer['id']}", headers=agent)
        ).status_code == 403
        erased = await embedded.client.delete(
            f"/v1/customers/{mail_customer['id']}", headers=supervisor
        )
        assert erased.status_code == 200, erased.text
        assert erased.json()["conversations"] == 2
        assert (
            await embedded.client.get(f"/v1/customers/{mail_customer['id']}", headers=supervisor)
        ).status_code == 404
        conversation = (
            await embedded.client.get(
                f"/v1/conversations/{by_mail.json()['conversation_id']}", headers=embedded.admin
            )
        ).json()
        assert conversation["subject"] is None
        assert [m["text"] for m in conversation["messages"]] == [""]
        assert conversation["category"] == "billing"
        assert "customer.erased" in [e["type"] for e in conversation["events"]]
