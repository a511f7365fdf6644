"""End to end through the embedded app: a contact posted to the gateway reaches a registered
endpoint as signed deliveries, sent by the router's background worker."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from standardwebhooks import Webhook

from tests.fixtures.embedded import Embedded
from tests.router.webhooks.conftest import WAIT_SECONDS, Receiver

ROUTED = ["contact.received", "contact.classified", "conversation.queued"]


@pytest.fixture
def poll_seconds() -> str:
    return "0.1"


@pytest.fixture
def webhook_env(monkeypatch: pytest.MonkeyPatch, poll_seconds: str) -> None:
    """Set before the embedded app reads its settings: one immediate retry, then dead; the
    receiver is on this machine."""
    monkeypatch.setenv("OMNIROUTE_WEBHOOK_ALLOW_PRIVATE_NETWORKS", "true")
    monkeypatch.setenv("OMNIROUTE_WEBHOOK_RETRY_SCHEDULE", "[0]")
    monkeypatch.setenv("OMNIROUTE_WEBHOOK_POLL_INTERVAL_SECONDS", poll_seconds)


@pytest.fixture
def app(webhook_env: None, embedded: Embedded) -> Embedded:
    return embedded


async def eventually(check: Callable[[], Awaitable[bool]]) -> None:
    """Poll the API until `check` holds (the worker runs in the background)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            if await check():
                return
            await asyncio.sleep(0.05)


async def post_chat(app: Embedded, message_id: str) -> dict[str, Any]:
    response = await app.client.post(
        "/v1/channels/chat",
        json={
            "session_id": f"sess-{message_id}",
            "visitor": {"id": "v-1", "name": "Tom", "email": "tom@example.com"},
            "text": "Hi, where is my order? It has not arrived yet.",
            "message_id": message_id,
        },
        headers=await app.key("ingest"),
    )
    assert response.status_code == 202, response.text
    receipt: dict[str, Any] = response.json()
    return receipt


async def register(app: Embedded, url: str) -> dict[str, Any]:
    response = await app.client.post(
        "/v1/webhooks", json={"url": url, "event_types": ROUTED}, headers=app.admin
    )
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


async def listed(app: Embedded, endpoint_id: str, status: str) -> list[Any]:
    response = await app.client.get(
        f"/v1/webhooks/{endpoint_id}/deliveries", params={"status": status}, headers=app.admin
    )
    assert response.status_code == 200, response.text
    found: list[Any] = response.json()["deliveries"]
    return found


class TestEmbeddedWebhooks:
    @pytest.fixture
    def poll_seconds(self) -> str:
        return "3600"  # only the wake-up after commit can deliver in time

    async def test_a_posted_contact_is_delivered_signed(
        self, app: Embedded, receiver: Receiver
    ) -> None:
        endpoint = await register(app, receiver.url)
        receipt = await post_chat(app, "m-1")

        requests = await receiver.wait_for(3)
        payloads = [Webhook(endpoint["secret"]).verify(r.body, r.headers) for r in requests]
        assert sorted(p["type"] for p in payloads) == sorted(ROUTED)
        assert {p["conversation_id"] for p in payloads} == {receipt["conversation_id"]}

        async def all_delivered() -> bool:
            return len(await listed(app, endpoint["id"], "delivered")) == 3

        await eventually(all_delivered)
        assert len(receiver.requests) == 3


class TestEmbeddedDeadLetters:
    async def test_a_dead_letter_is_replayed_through_the_api(
        self, app: Embedded, receiver: Receiver
    ) -> None:
        endpoint = await register(app, receiver.url)
        receiver.status = 503
        await post_chat(app, "m-2")

        async def all_dead() -> bool:
            return len(await listed(app, endpoint["id"], "dead")) == 3

        await eventually(all_dead)
        assert len(receiver.requests) == 6  # each delivery: the attempt and its one retry

        receiver.status = 200
        dead = await listed(app, endpoint["id"], "dead")
        for delivery in dead:
            response = await app.client.post(
                f"/v1/webhooks/deliveries/{delivery['id']}/replay", headers=app.admin
            )
            assert response.status_code == 200, response.text

        async def all_delivered() -> bool:
            return len(await listed(app, endpoint["id"], "delivered")) == 3

        await eventually(all_delivered)
        replayed = receiver.requests[6:]
        assert sorted(r.headers["webhook-id"] for r in replayed) == sorted(
            d["message_id"] for d in dead
        )
        for request in replayed:
            Webhook(endpoint["secret"]).verify(request.body, request.headers)
