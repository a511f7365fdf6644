"""Operations on every service: liveness, readiness, metrics, and honest 503s in an outage."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from omniroute.services.apps import create_gateway_app
from omniroute.shared.settings import DatabaseSettings, Settings
from tests.fixtures.broker import TansuBroker
from tests.fixtures.embedded import Embedded

ADMIN = "omr_apps-test-admin"


class TestEmbeddedOperations:
    async def test_health_readiness_and_metrics(self, embedded: Embedded) -> None:
        assert (await embedded.client.get("/healthz")).json() == {"status": "ok"}
        ready = await embedded.client.get("/readyz")
        assert ready.status_code == 200
        assert ready.json()["checks"] == {"database": True, "bus": True}
        await embedded.client.post(
            "/v1/contacts",
            json={"channel": "chat", "external_id": "metrics-1", "text": "hello"},
            headers=await embedded.key("ingest"),
        )
        metrics = (await embedded.client.get("/metrics")).text
        assert 'omniroute_contacts_received_total{channel="chat"}' in metrics
        assert "omniroute_contacts_classified_total" in metrics
        assert "omniroute_queue_depth" in metrics


@pytest.fixture
async def kafka_gateway(
    tansu: TansuBroker,
    sqlite_settings: DatabaseSettings,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> AsyncIterator[httpx.AsyncClient]:
    monkeypatch.setenv("OMNIROUTE_BUS", tansu.url)
    monkeypatch.setenv("OMNIROUTE_DATABASE_URL", sqlite_settings.database_url)
    monkeypatch.setenv("OMNIROUTE_ADMIN_KEY", ADMIN)
    monkeypatch.setenv("OMNIROUTE_BUS_SEND_TIMEOUT_SECONDS", "2")
    monkeypatch.setenv("OMNIROUTE_DATA_DIR", str(tmp_path))
    app = create_gateway_app(Settings())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://gateway.test",
            headers={"Authorization": f"Bearer {ADMIN}"},
            timeout=30,
        ) as client,
    ):
        yield client


@pytest.mark.kafka
class TestGatewayOverKafka:
    async def test_a_broker_outage_answers_503_and_recovers(
        self, kafka_gateway: httpx.AsyncClient, tansu: TansuBroker
    ) -> None:
        contact = {"channel": "chat", "external_id": "outage-1", "text": "hola"}
        assert (await kafka_gateway.get("/readyz")).status_code == 200
        async with tansu.paused():
            refused = await kafka_gateway.post("/v1/contacts", json=contact)
            unready = await kafka_gateway.get("/readyz")
        assert refused.status_code == 503
        assert refused.headers["content-type"].startswith("application/problem+json")
        assert int(refused.headers["retry-after"]) > 0
        assert unready.status_code == 503
        assert unready.json()["checks"]["bus"] is False
        accepted = await kafka_gateway.post("/v1/contacts", json=contact)
        assert accepted.status_code == 202, accepted.text


class TestEmbeddedEmailLimit:
    async def test_a_large_email_is_accepted_where_other_bodies_are_not(
        self, embedded: Embedded
    ) -> None:
        ingest = await embedded.key("ingest")
        attachment = "QUJD" * (400 * 1024)  # about 1.6 MB of base64: over the 1 MiB API limit
        raw = (
            "From: ana@example.com\r\nTo: help@omniroute.test\r\nSubject: Invoice\r\n"
            "Message-ID: <big-1@example.com>\r\nMIME-Version: 1.0\r\n"
            'Content-Type: multipart/mixed; boundary="b"\r\n\r\n'
            "--b\r\nContent-Type: text/plain\r\n\r\nMy invoice is attached.\r\n"
            "--b\r\nContent-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n"
            'Content-Disposition: attachment; filename="invoice.pdf"\r\n\r\n'
            f"{attachment}\r\n--b--\r\n"
        ).encode()
        accepted = await embedded.client.post(
            "/v1/channels/email", content=raw, headers={**ingest, "Content-Type": "message/rfc822"}
        )
        assert accepted.status_code == 202, accepted.text
        refused = await embedded.client.post(
            "/v1/contacts",
            content=b'{"text": "' + b"x" * len(raw) + b'"}',
            headers={**ingest, "Content-Type": "application/json"},
        )
        assert refused.status_code == 413
