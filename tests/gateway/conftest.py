"""Gateway test wiring: the real app, a real in-process bus, a real SQLite key store."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import httpx
import pytest
from fastapi import FastAPI
from sqlalchemy.ext.asyncio import async_sessionmaker, create_async_engine

from omniroute.gateway.channels.base import RawDelivery
from omniroute.gateway.endpoints import body_limits, gateway_router
from omniroute.gateway.ingest import ContactPublisher
from omniroute.gateway.routing import serve_directly
from omniroute.shared import topics
from omniroute.shared.auth import KeyStore, Role, create_key
from omniroute.shared.db import Base
from omniroute.shared.events import InboundContact
from omniroute.shared.http import add_routes, create_app
from omniroute.shared.settings import Settings
from omniroute.shared.transport import Message, decode_event
from omniroute.shared.transport.inprocess import InProcessBus

ADMIN_KEY = "test-admin"
VERIFY_TOKEN = "verify-me-please"
TWILIO_TOKEN = "twilio-test-auth-token"
X_SECRET = "x-test-consumer-secret"


META_VECTORS = "webhooks/meta-signature/x_hub_signature_256_vectors.json"


def meta_vector(shared_data: Path, name: str = "whatsapp_cloud_api_real_capture_pywa") -> dict:
    vectors = json.loads((shared_data / META_VECTORS).read_text())
    return next(vector for vector in vectors["vectors"] if vector["name"] == name)


def delivery(
    body: object,
    content_type: str = "application/json",
    *,
    headers: dict[str, str] | None = None,
    query: dict[str, str] | None = None,
) -> RawDelivery:
    """A RawDelivery as the endpoint builds it; bodies other than bytes/str are JSON-encoded."""
    if isinstance(body, str):
        body = body.encode()
    elif not isinstance(body, bytes):
        body = json.dumps(body).encode()
    return RawDelivery(
        body=body,
        content_type=content_type,
        received_at=datetime.now(UTC),
        headers=headers or {},
        query=query or {},
    )


@pytest.fixture
def settings(monkeypatch: pytest.MonkeyPatch, shared_data: Path) -> Settings:
    monkeypatch.setenv("OMNIROUTE_META_APP_SECRET", str(meta_vector(shared_data)["app_secret"]))
    monkeypatch.setenv("OMNIROUTE_META_VERIFY_TOKEN", VERIFY_TOKEN)
    monkeypatch.setenv("OMNIROUTE_MAX_BODY_BYTES", str(1024 * 1024))
    monkeypatch.delenv("OMNIROUTE_PUBLIC_URL", raising=False)
    monkeypatch.delenv("OMNIROUTE_MAX_BATCH", raising=False)
    monkeypatch.setenv("OMNIROUTE_TWILIO_AUTH_TOKEN", TWILIO_TOKEN)
    monkeypatch.setenv("OMNIROUTE_X_CONSUMER_SECRET", X_SECRET)
    monkeypatch.setenv("OMNIROUTE_MAX_EMAIL_BYTES", str(4 * 1024 * 1024))
    for name in ("OMNIROUTE_MAILGUN_SIGNING_KEY", "OMNIROUTE_SMTP_PORT"):
        monkeypatch.delenv(name, raising=False)
    return Settings()


@dataclass
class Gateway:
    app: FastAPI
    bus: InProcessBus
    client: httpx.AsyncClient
    published: list[InboundContact] = field(default_factory=list)
    ingest_key: str = ""
    agent_key: str = ""

    def auth(self, key: str | None = None) -> dict[str, str]:
        return {"Authorization": f"Bearer {key or self.ingest_key}"}


@pytest.fixture
async def gateway(settings: Settings, tmp_path: Path) -> AsyncIterator[Gateway]:
    engine = create_async_engine(f"sqlite+aiosqlite:///{tmp_path / 'keys.db'}")
    async with engine.begin() as connection:
        await connection.run_sync(Base.metadata.create_all)
    sessions = async_sessionmaker(engine, expire_on_commit=False)
    async with sessions() as session:
        _, ingest_key = await create_key(session, Role.INGEST, name="tests")
        _, agent_key = await create_key(session, Role.AGENT, agent_id=uuid.uuid4())
        await session.commit()

    bus = InProcessBus()
    app = create_app(
        "test",
        max_body_bytes=settings.gateway.max_body_bytes,
        path_limits=body_limits(settings),
    )
    # Served as the gateway service serves them: from the app's own table, answered directly.
    add_routes(app, gateway_router())
    serve_directly(app)
    app.state.settings = settings
    app.state.publisher = ContactPublisher(bus)
    app.state.key_store = KeyStore(sessions, admin_key=ADMIN_KEY)

    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        harness = Gateway(
            app=app, bus=bus, client=client, ingest_key=ingest_key, agent_key=agent_key
        )

        async def collect(message: Message) -> None:
            harness.published.append(decode_event(InboundContact, message.value))

        bus.subscribe(topics.CONTACTS_INBOUND, "test", collect)
        yield harness
    await engine.dispose()
