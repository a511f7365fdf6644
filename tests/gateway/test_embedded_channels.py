"""The new channels through the whole embedded service: one customer, replays change nothing.

Twilio WhatsApp, Meta WhatsApp and a Twilio Voice Intelligence call from one number resolve to
one customer; every webhook posted three times leaves one contact per message.
"""

from __future__ import annotations

import asyncio
import json
import urllib.parse
from datetime import datetime, timedelta

import pytest

from omniroute.gateway.channels.meta import signature_for as meta_signature
from omniroute.gateway.channels.twilio import signature_for as twilio_signature
from omniroute.gateway.channels.x import signature_for as x_signature
from tests.fixtures.embedded import META_SECRET, Embedded
from tests.gateway.test_phone import TWILIO_TRANSCRIPT
from tests.gateway.test_twilio import WHATSAPP
from tests.gateway.test_x import DM, MENTION

TWILIO_TOKEN = "embedded-twilio-token"
X_SECRET = "embedded-x-secret"
BASE = "http://omniroute.test"

META_WHATSAPP = {
    "object": "whatsapp_business_account",
    "entry": [
        {
            "id": "WABA",
            "changes": [
                {
                    "field": "messages",
                    "value": {
                        "messaging_product": "whatsapp",
                        "metadata": {
                            "display_phone_number": "34910000000",
                            "phone_number_id": "P1",
                        },
                        "contacts": [{"profile": {"name": "Ana"}, "wa_id": "34600111222"}],
                        "messages": [
                            {
                                "from": "34600111222",
                                "id": "wamid.EMBEDDED1",
                                "timestamp": "1717000000",
                                "type": "text",
                                "text": {"body": "Sigo sin respuesta sobre el cobro doble"},
                            }
                        ],
                    },
                }
            ],
        }
    ],
}


@pytest.fixture(autouse=True)
def channel_secrets(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("OMNIROUTE_TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("OMNIROUTE_X_CONSUMER_SECRET", X_SECRET)


async def post_three_times(embedded: Embedded, path: str, body: bytes, headers: dict) -> set:
    answers = set()
    for _ in range(3):
        response = await embedded.client.post(path, content=body, headers=headers)
        assert response.status_code in (200, 202), response.text
        answers.add(response.text)
    return answers


def signed_by_meta(payload: dict) -> tuple[bytes, dict[str, str]]:
    """A Meta webhook delivery: the JSON body and its headers, signed with the app secret."""
    body = json.dumps(payload).encode()
    headers = {
        "Content-Type": "application/json",
        "X-Hub-Signature-256": meta_signature(META_SECRET, body),
    }
    return body, headers


class TestOneCustomerAcrossProviders:
    async def test_replays_and_identity(self, embedded: Embedded) -> None:
        ingest = await embedded.key("ingest")
        supervisor = await embedded.key("supervisor")

        params = urllib.parse.parse_qsl(WHATSAPP, keep_blank_values=True)
        twilio_headers = {
            "Content-Type": "application/x-www-form-urlencoded",
            "X-Twilio-Signature": twilio_signature(
                TWILIO_TOKEN, f"{BASE}/v1/channels/twilio", params
            ),
        }
        answers = await post_three_times(
            embedded, "/v1/channels/twilio", WHATSAPP.encode(), twilio_headers
        )
        assert answers == {'<?xml version="1.0" encoding="UTF-8"?><Response/>'}

        meta_body, meta_headers = signed_by_meta(META_WHATSAPP)
        assert (
            len(await post_three_times(embedded, "/v1/channels/meta", meta_body, meta_headers)) == 1
        )

        call = json.dumps(TWILIO_TRANSCRIPT).encode()
        phone_headers = {**ingest, "Content-Type": "application/json"}
        [receipt] = await post_three_times(embedded, "/v1/channels/phone", call, phone_headers)

        found = await embedded.client.get(
            "/v1/customers", params={"phone": "+34 600 111 222"}, headers=supervisor
        )
        assert found.status_code == 200, found.text
        [customer] = found.json()
        profile = await embedded.client.get(f"/v1/customers/{customer['id']}", headers=supervisor)
        conversations = profile.json()["conversations"]
        channels = sorted(conversation["channel"] for conversation in conversations)
        assert channels == ["phone", "whatsapp", "whatsapp"]
        for conversation in conversations:
            detail = await embedded.client.get(
                f"/v1/conversations/{conversation['id']}", headers=embedded.admin
            )
            assert detail.json()["message_count"] == 1
        assert json.loads(receipt)["conversation_id"] in {c["id"] for c in conversations}

    async def test_x_dm_and_mention_replayed(self, embedded: Embedded) -> None:
        supervisor = await embedded.key("supervisor")
        ids = []
        for payload in (DM, MENTION):
            body = json.dumps(payload).encode()
            headers = {
                "Content-Type": "application/json",
                "x-twitter-webhooks-signature": x_signature(X_SECRET, body),
            }
            [answer] = await post_three_times(embedded, "/v1/channels/x", body, headers)
            [receipt] = json.loads(answer)["contacts"]
            ids.append(receipt["conversation_id"])
        dm, mention = [
            (await embedded.client.get(f"/v1/conversations/{cid}", headers=embedded.admin)).json()
            for cid in ids
        ]
        assert dm["channel"] == mention["channel"] == "x"
        assert dm["message_count"] == mention["message_count"] == 1
        found = await embedded.client.get(
            "/v1/customers", params={"handle": "@AnaLopez", "channel": "x"}, headers=supervisor
        )
        assert found.status_code == 200, found.text
        assert len(found.json()) == 1


class TestInstagramMention:
    async def test_a_mention_becomes_a_public_conversation_with_an_early_deadline(
        self, embedded: Embedded
    ) -> None:
        payload = {
            "object": "instagram",
            "entry": [
                {
                    "id": "IGBUSINESS",
                    "time": 1700000000,
                    "changes": [
                        {"field": "mentions", "value": {"media_id": "M1", "comment_id": "C1"}}
                    ],
                }
            ],
        }
        body, headers = signed_by_meta(payload)
        [answer] = await post_three_times(embedded, "/v1/channels/meta", body, headers)
        [receipt] = json.loads(answer)["contacts"]
        async with asyncio.timeout(30):
            while True:
                detail = await embedded.client.get(
                    f"/v1/conversations/{receipt['conversation_id']}", headers=embedded.admin
                )
                if detail.status_code == 200 and detail.json()["status"] != "new":
                    break
                await asyncio.sleep(0.05)
        conversation = detail.json()
        assert conversation["channel"] == "instagram"
        assert conversation["visibility"] == "public"
        assert conversation["message_count"] == 1
        due = datetime.fromisoformat(conversation["first_response_due"])
        received = datetime.fromisoformat(conversation["first_received_at"])
        assert due - received <= timedelta(hours=1)  # public posts: answered within the hour
