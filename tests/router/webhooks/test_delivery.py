"""Deliveries to a real local receiver, on SQLite and PostgreSQL: signatures, retries, dead
letters and replay, filters, disabled endpoints, restarts and concurrent workers."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import httpx
import pytest
from prometheus_client import REGISTRY
from sqlalchemy import func, select, update
from standardwebhooks import Webhook, WebhookVerificationError

from omniroute.router.models import ConversationEvent
from omniroute.router.runtime import RouterRuntime
from omniroute.router.webhooks.models import WebhookDelivery, WebhookEndpoint
from omniroute.router.webhooks.worker import WebhookWorker
from omniroute.shared.events import RoutingEventType
from omniroute.shared.settings import RouterSettings
from tests.router.webhooks.conftest import (
    ADMIN,
    Receiver,
    Request,
    drain,
    new_conversation,
    record,
    register,
)

ROUTED = ["contact.received", "contact.classified", "conversation.queued"]


def verified(endpoint: dict[str, Any], request: Request) -> dict[str, Any]:
    """The body, once the reference Standard Webhooks package accepts its signature."""
    payload: dict[str, Any] = Webhook(endpoint["secret"]).verify(request.body, request.headers)
    return payload


async def deliveries(api: httpx.AsyncClient, endpoint_id: str, **params: str) -> list[Any]:
    response = await api.get(f"/v1/webhooks/{endpoint_id}/deliveries", params=params, headers=ADMIN)
    assert response.status_code == 200, response.text
    found: list[Any] = response.json()["deliveries"]
    return found


async def delivery(api: httpx.AsyncClient, delivery_id: str) -> dict[str, Any]:
    response = await api.get(f"/v1/webhooks/deliveries/{delivery_id}", headers=ADMIN)
    assert response.status_code == 200, response.text
    found: dict[str, Any] = response.json()
    return found


def metric(name: str) -> float:
    return REGISTRY.get_sample_value(name) or 0.0


class TestSignedDeliveries:
    async def test_each_routing_event_is_posted_signed(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        endpoint = await register(api, receiver.url)
        conversation_id = await new_conversation(runtime)
        await drain(worker)

        payloads = [verified(endpoint, request) for request in receiver.requests]
        assert sorted(p["type"] for p in payloads) == sorted(ROUTED)
        assert {p["conversation_id"] for p in payloads} == {str(conversation_id)}
        assert all(
            set(p) == {"type", "event_id", "conversation_id", "occurred_at", "data"}
            for p in payloads
        )
        classified = next(p for p in payloads if p["type"] == "contact.classified")
        assert classified["data"]["category"] == "general"
        assert receiver.requests[0].path == "/hooks/omniroute"
        assert receiver.requests[0].headers["content-type"] == "application/json"

    async def test_the_webhook_id_is_the_delivery_and_the_event_id_the_log_row(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        endpoint = await register(api, receiver.url)
        await new_conversation(runtime)
        await drain(worker)

        listed = await deliveries(api, endpoint["id"])
        assert {d["message_id"] for d in listed} == {
            r.headers["webhook-id"] for r in receiver.requests
        }
        async with runtime.sessions() as session:
            logged = set((await session.scalars(select(ConversationEvent.event_id))).all())
        assert {uuid.UUID(r.json["event_id"]) for r in receiver.requests} == logged

    async def test_events_before_registration_are_not_sent(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        await new_conversation(runtime)
        await register(api, receiver.url)
        await drain(worker)
        assert receiver.requests == []

    async def test_a_rotated_secret_signs_from_then_on(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        endpoint = await register(api, receiver.url, ["conversation.queued"])
        rotated = await api.post(f"/v1/webhooks/{endpoint['id']}/secret", headers=ADMIN)
        assert rotated.status_code == 200, rotated.text
        assert rotated.json()["secret"] != endpoint["secret"]
        await new_conversation(runtime)
        await drain(worker)
        [request] = receiver.requests
        assert verified(rotated.json(), request)["type"] == "conversation.queued"
        with pytest.raises(WebhookVerificationError):
            verified(endpoint, request)


class TestRetries:
    async def test_two_failures_then_delivered_on_the_third_attempt(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        endpoint = await register(api, receiver.url, ["conversation.queued"])
        receiver.script = [500, 503]
        await new_conversation(runtime)
        await drain(worker)

        assert len(receiver.requests) == 3
        for request in receiver.requests:
            assert verified(endpoint, request)["type"] == "conversation.queued"
        assert len({r.headers["webhook-id"] for r in receiver.requests}) == 1
        [listed] = await deliveries(api, endpoint["id"])
        detail = await delivery(api, listed["id"])
        assert detail["status"] == "delivered"
        assert detail["attempt_count"] == 3
        assert detail["delivered_at"] is not None
        attempts = detail["attempts"]
        assert [a["number"] for a in attempts] == [1, 2, 3]
        assert [a["status_code"] for a in attempts] == [500, 503, 200]
        assert [a["succeeded"] for a in attempts] == [False, False, True]
        assert detail["payload"] == receiver.requests[0].json
        assert all(a["duration_ms"] >= 0 and a["attempted_at"] for a in attempts)

    async def test_a_network_error_is_retried_and_recorded(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        # Nothing listens on port 9 of 127.0.0.1 (discard): the connection is refused.
        endpoint = await register(api, "http://127.0.0.1:9/hook", ["conversation.queued"])
        await new_conversation(runtime)
        await drain(worker)

        [dead] = await deliveries(api, endpoint["id"], status="dead")
        detail = await delivery(api, dead["id"])
        assert len(detail["attempts"]) == 3
        assert all(a["status_code"] is None and a["error"] for a in detail["attempts"])
        assert "Connect" in detail["last_error"]

    async def test_dead_lettered_when_the_schedule_is_exhausted_then_replayed(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        endpoint = await register(api, receiver.url, ["conversation.queued"])
        receiver.status = 500
        dead_before = metric("omniroute_webhook_deliveries_dead_lettered_total")
        await new_conversation(runtime)
        await drain(worker)

        assert len(receiver.requests) == 3  # the first attempt and the two retries scheduled
        [dead] = await deliveries(api, endpoint["id"], status="dead")
        assert dead["dead_lettered_at"] is not None
        assert await deliveries(api, endpoint["id"], status="pending") == []
        assert metric("omniroute_webhook_deliveries_dead_lettered_total") == dead_before + 1
        await drain(worker)
        assert len(receiver.requests) == 3  # a dead letter is left alone

        receiver.status = 204
        replayed = await api.post(f"/v1/webhooks/deliveries/{dead['id']}/replay", headers=ADMIN)
        assert replayed.status_code == 200, replayed.text
        assert replayed.json()["status"] == "pending"
        await drain(worker)

        assert len(receiver.requests) == 4
        verified(endpoint, receiver.requests[-1])
        assert receiver.requests[-1].headers["webhook-id"] == dead["message_id"]
        detail = await delivery(api, dead["id"])
        assert detail["status"] == "delivered"
        assert detail["replay_count"] == 1
        assert [a["status_code"] for a in detail["attempts"]] == [500, 500, 500, 204]

    async def test_only_a_dead_letter_can_be_replayed(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        endpoint = await register(api, receiver.url, ["conversation.queued"])
        await new_conversation(runtime)
        await drain(worker)
        [done] = await deliveries(api, endpoint["id"])
        response = await api.post(f"/v1/webhooks/deliveries/{done['id']}/replay", headers=ADMIN)
        assert response.status_code == 409
        assert response.headers["content-type"] == "application/problem+json"
        missing = await api.post(f"/v1/webhooks/deliveries/{uuid.uuid4()}/replay", headers=ADMIN)
        assert missing.status_code == 404

    async def test_the_schedule_spaces_retries(
        self, runtime: RouterRuntime, api: httpx.AsyncClient, receiver: Receiver
    ) -> None:
        """With an hour before the first retry, a failed delivery waits instead of retrying."""
        settings = RouterSettings(
            webhook_allow_private_networks=True,
            webhook_retry_schedule=[3600],
            webhook_retry_jitter=0,
        )
        worker = WebhookWorker(runtime.sessions, settings)
        await worker.start()
        try:
            endpoint = await register(api, receiver.url, ["conversation.queued"])
            receiver.status = 500
            await new_conversation(runtime)
            await drain(worker)
        finally:
            await worker.stop()
        assert len(receiver.requests) == 1
        [pending] = await deliveries(api, endpoint["id"], status="pending")
        waited = _seconds_between(pending["next_attempt_at"], pending["updated_at"])
        assert waited == 3600


def _seconds_between(later: str, earlier: str) -> float:
    from datetime import datetime

    return round((datetime.fromisoformat(later) - datetime.fromisoformat(earlier)).total_seconds())


class TestFilters:
    async def test_an_endpoint_gets_only_the_types_it_asked_for(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        await register(api, receiver.url, ["sla.warning", "conversation.completed"])
        everything = await register(api, receiver.url.replace("omniroute", "all"))
        conversation_id = await new_conversation(runtime)
        await record(
            runtime,
            conversation_id,
            RoutingEventType.SLA_WARNING,
            RoutingEventType.OFFER_CREATED,
            RoutingEventType.CONVERSATION_COMPLETED,
        )
        await drain(worker)

        filtered = [r.json["type"] for r in receiver.requests if r.path == "/hooks/omniroute"]
        assert sorted(filtered) == ["conversation.completed", "sla.warning"]
        unfiltered = [r for r in receiver.requests if r.path == "/hooks/all"]
        assert len(unfiltered) == 6
        assert all(verified(everything, r) for r in unfiltered)

    async def test_a_changed_filter_applies_from_then_on(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        endpoint = await register(api, receiver.url, ["sla.warning"])
        conversation_id = await new_conversation(runtime)
        await drain(worker)
        assert receiver.requests == []
        response = await api.patch(
            f"/v1/webhooks/{endpoint['id']}", json={"event_types": ["sla.breach"]}, headers=ADMIN
        )
        assert response.status_code == 200, response.text
        await record(
            runtime, conversation_id, RoutingEventType.SLA_WARNING, RoutingEventType.SLA_BREACH
        )
        await drain(worker)
        assert [r.json["type"] for r in receiver.requests] == ["sla.breach"]


class TestDisabledEndpoints:
    async def test_a_disabled_endpoint_receives_nothing(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        endpoint = await register(api, receiver.url)
        response = await api.patch(
            f"/v1/webhooks/{endpoint['id']}", json={"enabled": False}, headers=ADMIN
        )
        assert response.json()["enabled"] is False
        await new_conversation(runtime)
        await drain(worker)
        assert receiver.requests == []
        assert await deliveries(api, endpoint["id"]) == []

    async def test_pending_deliveries_wait_while_disabled(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        endpoint = await register(api, receiver.url, ["conversation.queued"])
        await new_conversation(runtime)
        await worker.fan_out()  # the delivery exists, not yet sent
        await api.patch(f"/v1/webhooks/{endpoint['id']}", json={"enabled": False}, headers=ADMIN)
        await drain(worker)
        assert receiver.requests == []
        await api.patch(f"/v1/webhooks/{endpoint['id']}", json={"enabled": True}, headers=ADMIN)
        await drain(worker)
        assert [r.json["type"] for r in receiver.requests] == ["conversation.queued"]

    async def test_a_deleted_endpoint_takes_its_deliveries_along(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        endpoint = await register(api, receiver.url)
        await new_conversation(runtime)
        await worker.fan_out()
        response = await api.delete(f"/v1/webhooks/{endpoint['id']}", headers=ADMIN)
        assert response.status_code == 204
        await drain(worker)
        assert receiver.requests == []
        async with runtime.sessions() as session:
            assert await session.scalar(select(func.count()).select_from(WebhookDelivery)) == 0


class TestExactlyOnceCreation:
    async def test_nothing_is_delivered_twice_across_a_worker_restart(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        webhook_settings: RouterSettings,
        receiver: Receiver,
    ) -> None:
        endpoint = await register(api, receiver.url)
        await new_conversation(runtime)
        receiver.hold = asyncio.Event()  # the next answer waits: the worker stops mid-request

        first = WebhookWorker(runtime.sessions, webhook_settings)
        await first.start()
        running = asyncio.create_task(first.run())
        await receiver.wait_for(1)
        running.cancel()
        receiver.hold.set()
        await asyncio.gather(running, return_exceptions=True)
        await first.stop()

        second = WebhookWorker(runtime.sessions, webhook_settings)
        await second.start()
        try:
            await drain(second)
            conversation_id = await new_conversation(runtime)
            await drain(second)
        finally:
            await second.stop()

        ids = [r.headers["webhook-id"] for r in receiver.requests]
        assert len(ids) == len(set(ids)) == 6
        assert all(verified(endpoint, r) for r in receiver.requests)
        assert (
            len([r for r in receiver.requests if r.json["conversation_id"] == str(conversation_id)])
            == 3
        )
        listed = await deliveries(api, endpoint["id"])
        assert [d["status"] for d in listed] == ["delivered"] * 6
        assert all(d["attempt_count"] == 1 for d in listed)

    async def test_concurrent_workers_create_and_send_each_delivery_once(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        webhook_settings: RouterSettings,
        receiver: Receiver,
    ) -> None:
        endpoint = await register(api, receiver.url)
        for _ in range(3):
            await new_conversation(runtime)
        workers = [WebhookWorker(runtime.sessions, webhook_settings) for _ in range(3)]
        for worker in workers:
            await worker.start()
        try:
            await asyncio.gather(*(w.run_once() for w in workers))
            await asyncio.gather(*(drain(w) for w in workers))
        finally:
            for worker in workers:
                await worker.stop()

        ids = [r.headers["webhook-id"] for r in receiver.requests]
        assert len(ids) == len(set(ids)) == 9
        assert len(await deliveries(api, endpoint["id"], status="delivered")) == 9

    async def test_an_event_committed_behind_the_cursor_is_still_sent(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        worker: WebhookWorker,
        receiver: Receiver,
    ) -> None:
        """As when a PostgreSQL transaction commits an id lower than one already fanned out."""
        endpoint = await register(api, receiver.url)
        await new_conversation(runtime)
        async with runtime.sessions() as session:
            head = await session.scalar(select(func.max(ConversationEvent.id)))
            # The cursor already past these events, as if read before they committed.
            await session.execute(
                update(WebhookEndpoint)
                .where(WebhookEndpoint.id == uuid.UUID(endpoint["id"]))
                .values(cursor=head)
            )
            await session.commit()
        await drain(worker)
        assert sorted(r.json["type"] for r in receiver.requests) == sorted(ROUTED)


class TestCommitOrder:
    @pytest.mark.postgres
    @pytest.mark.parametrize("database_settings", ["postgres"], indirect=True)
    async def test_an_event_committed_after_a_later_one_is_not_skipped(
        self,
        runtime: RouterRuntime,
        api: httpx.AsyncClient,
        webhook_settings: RouterSettings,
        receiver: Receiver,
    ) -> None:
        """PostgreSQL hands out ids before commit; SQLite's single writer cannot do this."""
        settings = webhook_settings.model_copy(update={"webhook_fanout_lookback": 0})
        worker = WebhookWorker(runtime.sessions, settings)
        await worker.start()
        await register(api, receiver.url, ["sla.warning"])
        conversation_id = await new_conversation(runtime)
        try:
            async with runtime.sessions() as slow:
                slow.add(
                    ConversationEvent(
                        conversation_id=conversation_id,
                        type=RoutingEventType.SLA_WARNING.value,
                        data={"note": "slow"},
                    )
                )
                await slow.flush()  # its id is taken; the commit comes last
                async with runtime.uow() as uow:
                    uow.record(conversation_id, RoutingEventType.SLA_WARNING, {"note": "fast"})
                for _ in range(3):  # the slow writer holds the horizon: no drain to the end
                    await worker.run_once()
                assert not worker.caught_up
                await slow.commit()
            await drain(worker)
        finally:
            await worker.stop()
        assert sorted(r.json["data"]["note"] for r in receiver.requests) == ["fast", "slow"]
