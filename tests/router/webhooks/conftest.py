"""Webhook test fixtures: a real HTTP receiver on 127.0.0.1, the webhook API over the test
router (SQLite and PostgreSQL), and a worker with a tiny retry schedule driven by the test."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest

from omniroute.router.api import router_api
from omniroute.router.conversations.service import ingest_classified
from omniroute.router.runtime import RouterRuntime
from omniroute.router.webhooks.worker import WebhookWorker
from omniroute.shared.auth import KeyStore
from omniroute.shared.events import RoutingEventType
from omniroute.shared.http import create_app
from omniroute.shared.settings import RouterSettings
from tests.builders import classified

ADMIN_KEY = "omr_webhook-test-admin-key"
ADMIN = {"Authorization": f"Bearer {ADMIN_KEY}"}
# Generous bounds so a stuck test fails instead of hanging; never a speed assertion.
WAIT_SECONDS = 30.0


@dataclass
class Request:
    path: str
    headers: dict[str, str]
    body: bytes

    @property
    def json(self) -> Any:
        return json.loads(self.body)


@dataclass
class Receiver:
    """An HTTP/1.1 server that records each POST and answers from a script of status codes."""

    url: str = ""
    requests: list[Request] = field(default_factory=list)
    script: list[int] = field(default_factory=list)  # answers for the next requests, in order
    status: int = 200  # the answer once the script is used up
    hold: asyncio.Event | None = None  # when set up, answers wait until it is set
    _changed: asyncio.Condition = field(default_factory=asyncio.Condition)

    def answer(self) -> int:
        return self.script.pop(0) if self.script else self.status

    async def record(self, request: Request) -> None:
        async with self._changed:
            self.requests.append(request)
            self._changed.notify_all()

    async def wait_for(self, count: int) -> list[Request]:
        async with asyncio.timeout(WAIT_SECONDS), self._changed:
            await self._changed.wait_for(lambda: len(self.requests) >= count)
        return self.requests

    def of_type(self, type_: str) -> list[Request]:
        return [request for request in self.requests if request.json["type"] == type_]


async def _serve_one(
    receiver: Receiver, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
) -> None:
    try:
        head = await reader.readuntil(b"\r\n\r\n")
        request_line, *header_lines = head.decode("latin-1").split("\r\n")
        headers = {}
        for line in header_lines:
            if ":" in line:
                name, _, value = line.partition(":")
                headers[name.strip().lower()] = value.strip()
        body = await reader.readexactly(int(headers.get("content-length", "0")))
        await receiver.record(Request(request_line.split(" ")[1], headers, body))
        if receiver.hold is not None:
            await receiver.hold.wait()
        status = receiver.answer()
        writer.write(
            f"HTTP/1.1 {status} X\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok".encode()
        )
        await writer.drain()
    except (asyncio.IncompleteReadError, ConnectionError):
        pass
    finally:
        writer.close()


@pytest.fixture
async def receiver() -> AsyncIterator[Receiver]:
    receiver = Receiver()

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _serve_one(receiver, reader, writer)

    server = await asyncio.start_server(handle, "127.0.0.1", 0)
    port = server.sockets[0].getsockname()[1]
    receiver.url = f"http://127.0.0.1:{port}/hooks/omniroute"
    async with server:
        yield receiver
        server.close()


@pytest.fixture
def runtime(runtime: RouterRuntime) -> RouterRuntime:
    """The test router, allowed to register and deliver to the receiver on 127.0.0.1."""
    runtime.settings = runtime.settings.model_copy(update={"webhook_allow_private_networks": True})
    return runtime


@pytest.fixture
def webhook_settings() -> RouterSettings:
    """Retries without waiting: two retries, then the dead letter; the receiver is local."""
    return RouterSettings(
        webhook_allow_private_networks=True,
        webhook_retry_schedule=[0, 0],
        webhook_retry_jitter=0,
        webhook_poll_interval_seconds=0.05,
        webhook_timeout_seconds=10,
    )


@pytest.fixture
async def worker(
    runtime: RouterRuntime, webhook_settings: RouterSettings
) -> AsyncIterator[WebhookWorker]:
    worker = WebhookWorker(runtime.sessions, webhook_settings)
    await worker.start()
    yield worker
    await worker.stop()


@pytest.fixture
async def api(runtime: RouterRuntime) -> AsyncIterator[httpx.AsyncClient]:
    """The router's REST API over the test router; the worker is driven by each test."""
    app = create_app("webhooks-test")
    app.include_router(router_api())
    app.state.router_runtime = runtime
    app.state.key_store = KeyStore(runtime.sessions, ADMIN_KEY)
    async with httpx.AsyncClient(
        transport=httpx.ASGITransport(app=app), base_url="http://omniroute.test"
    ) as client:
        yield client


async def register(
    api: httpx.AsyncClient, url: str, event_types: list[str] | None = None, **fields: Any
) -> dict[str, Any]:
    body: dict[str, Any] = {"url": url, **fields}
    if event_types is not None:
        body["event_types"] = event_types
    response = await api.post("/v1/webhooks", json=body, headers=ADMIN)
    assert response.status_code == 201, response.text
    endpoint: dict[str, Any] = response.json()
    return endpoint


async def new_conversation(runtime: RouterRuntime) -> uuid.UUID:
    """A routed contact: contact.received, contact.classified, conversation.queued."""
    contact = classified()
    async with runtime.uow() as uow:
        outcome = await ingest_classified(uow, contact, runtime.rules, runtime.reopen_window)
    return outcome.conversation_id


async def record(
    runtime: RouterRuntime, conversation_id: uuid.UUID, *types: RoutingEventType
) -> None:
    async with runtime.uow() as uow:
        for type_ in types:
            uow.record(conversation_id, type_, {"note": type_.value})


async def drain(worker: WebhookWorker) -> None:
    """Run passes until one makes no attempt (retries are due at once with the test schedule)
    and the fan-out has reached every event (on PostgreSQL it waits for writers in flight)."""
    async with asyncio.timeout(WAIT_SECONDS):
        while True:
            made = await worker.run_once()
            if made == 0 and worker.caught_up:
                return
            if made == 0:
                await asyncio.sleep(0.02)
