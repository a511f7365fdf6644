"""The SMTP listener through a real SMTP client (smtplib in a thread) and a real InProcessBus."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import trustme
from pydantic import ValidationError

from omniroute.gateway.ingest import ContactPublisher
from omniroute.gateway.smtp import smtp_listener
from omniroute.shared import topics
from omniroute.shared.events import Channel, InboundContact
from omniroute.shared.settings import GatewaySettings
from omniroute.shared.transport import Message, decode_event
from omniroute.shared.transport.inprocess import InProcessBus

MAX_BYTES = 256 * 1024
MESSAGE = (
    b"From: Ana Garcia <Ana@Example.com>\r\n"
    b"To: support@omniroute.test\r\n"
    b"Subject: Refund for order 4411\r\n"
    b"Message-ID: <smtp-1@example.com>\r\n"
    b"Date: Mon, 02 Sep 2024 10:00:00 +0200\r\n"
    b"\r\n"
    b"I was charged twice, please refund one payment.\r\n"
)


@dataclass
class Listener:
    port: int
    bus: InProcessBus
    published: list[InboundContact] = field(default_factory=list)
    failing: bool = False


@pytest.fixture
async def listener() -> AsyncIterator[Listener]:
    bus = InProcessBus(attempts=1, backoff_seconds=0)
    harness = Listener(port=0, bus=bus)

    async def store(message: Message) -> None:
        if harness.failing:
            raise RuntimeError("database down")
        harness.published.append(decode_event(InboundContact, message.value))

    bus.subscribe(topics.CONTACTS_INBOUND, "test", store)
    async with smtp_listener(
        ContactPublisher(bus), host="127.0.0.1", port=0, max_bytes=MAX_BYTES
    ) as server:
        harness.port = server.sockets[0].getsockname()[1]
        yield harness


def send(port: int, message: bytes) -> tuple[int, bytes]:
    """Deliver as an MTA would; returns the reply to the end of DATA."""
    with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
        client.ehlo("mta.example.com")
        client.mail("ana@example.com")
        client.rcpt("support@omniroute.test")
        return client.data(message)


async def deliver(port: int, message: bytes) -> tuple[int, bytes]:
    return await asyncio.to_thread(send, port, message)


class TestSmtpIngress:
    async def test_accepted_message_is_one_durable_contact(self, listener: Listener) -> None:
        code, reply = await deliver(listener.port, MESSAGE)
        assert code == 250
        [contact] = listener.published
        assert str(contact.contact_id).encode() in reply
        assert contact.channel is Channel.EMAIL
        assert contact.customer.email == "ana@example.com"
        assert contact.subject == "Refund for order 4411"
        assert contact.text == "I was charged twice, please refund one payment."

    async def test_redelivery_maps_to_the_same_contact(self, listener: Listener) -> None:
        for _ in range(3):
            code, _ = await deliver(listener.port, MESSAGE)
            assert code == 250
        assert len({contact.contact_id for contact in listener.published}) == 1

    async def test_unavailable_bus_is_a_temporary_failure(self, listener: Listener) -> None:
        listener.failing = True
        code, _ = await deliver(listener.port, MESSAGE)
        assert code == 451
        listener.failing = False
        code, _ = await deliver(listener.port, MESSAGE)
        assert code == 250

    async def test_oversized_message_is_552(self, listener: Listener) -> None:
        big = MESSAGE + (b"y" * 998 + b"\r\n") * (MAX_BYTES // 1000 + 10)

        def attempt() -> int:
            try:
                return send(listener.port, big)[0]
            except smtplib.SMTPDataError as exc:
                return exc.smtp_code

        assert await asyncio.to_thread(attempt) == 552
        assert listener.published == []

    async def test_fixture_message_with_attachment(
        self, listener: Listener, shared_data: Path
    ) -> None:
        raw = (shared_data / "email/talon/standard_replies/gmail.eml").read_bytes()
        code, _ = await deliver(listener.port, raw)
        assert code == 250
        [contact] = listener.published
        assert contact.text == "Hello"

    async def test_auto_reply_is_accepted_and_flagged(self, listener: Listener) -> None:
        auto = MESSAGE.replace(b"Subject:", b"Auto-Submitted: auto-replied\r\nSubject:")
        code, _ = await deliver(listener.port, auto)
        assert code == 250
        assert listener.published[0].metadata["auto_submitted"] == "auto-replied"


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class TestGatewayApp:
    async def test_gateway_app_serves_smtp_on_the_given_port(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        from omniroute.services.apps import create_gateway_app
        from omniroute.shared.settings import Settings

        monkeypatch.setenv("OMNIROUTE_DATABASE_URL", f"sqlite:///{tmp_path / 'gw.db'}")
        monkeypatch.setenv("OMNIROUTE_ADMIN_KEY", "omr_smtp-test-admin")
        monkeypatch.setenv("OMNIROUTE_BUS", "inprocess://")
        port = free_port()
        app = create_gateway_app(Settings(), smtp_port=port)
        async with app.router.lifespan_context(app):
            code, reply = await deliver(port, MESSAGE)
            assert code == 250
            assert b"queued as" in reply
        with pytest.raises(ConnectionRefusedError):
            await asyncio.to_thread(send, port, MESSAGE)

    async def test_the_certificate_settings_turn_starttls_on(
        self, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
    ) -> None:
        from omniroute.services.apps import create_gateway_app
        from omniroute.shared.settings import Settings

        ca = trustme.CA()
        issued = ca.issue_cert("127.0.0.1")
        certfile, keyfile = tmp_path / "smtp.pem", tmp_path / "smtp.key"
        issued.cert_chain_pems[0].write_to_path(str(certfile))
        issued.private_key_pem.write_to_path(str(keyfile))
        monkeypatch.setenv("OMNIROUTE_DATABASE_URL", f"sqlite:///{tmp_path / 'gw.db'}")
        monkeypatch.setenv("OMNIROUTE_ADMIN_KEY", "omr_smtp-test-admin")
        monkeypatch.setenv("OMNIROUTE_BUS", "inprocess://")
        monkeypatch.setenv("OMNIROUTE_SMTP_TLS_CERTFILE", str(certfile))
        monkeypatch.setenv("OMNIROUTE_SMTP_TLS_KEYFILE", str(keyfile))
        monkeypatch.setenv("OMNIROUTE_SMTP_REQUIRE_STARTTLS", "true")
        port = free_port()
        app = create_gateway_app(Settings(), smtp_port=port)
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)

        def session() -> tuple[tuple[int, bytes], tuple[int, bytes]]:
            with smtplib.SMTP("127.0.0.1", port, timeout=10) as client:
                client.ehlo("mta.example.com")
                refused = client.docmd("MAIL", "FROM:<ana@example.com>")
                client.starttls(context=client_context)
                client.ehlo("mta.example.com")
                client.mail("ana@example.com")
                client.rcpt("support@omniroute.test")
                return refused, client.data(MESSAGE)

        async with app.router.lifespan_context(app):
            refused, accepted = await asyncio.to_thread(session)
        assert refused[0] == 530
        assert accepted[0] == 250


@pytest.fixture
def ca() -> trustme.CA:
    return trustme.CA()


@pytest.fixture
async def tls_listener(ca: trustme.CA) -> AsyncIterator[Listener]:
    """A listener that requires STARTTLS, with a certificate from a test CA."""
    bus = InProcessBus(attempts=1, backoff_seconds=0)
    harness = Listener(port=0, bus=bus)

    async def store(message: Message) -> None:
        harness.published.append(decode_event(InboundContact, message.value))

    bus.subscribe(topics.CONTACTS_INBOUND, "test", store)
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    async with smtp_listener(
        ContactPublisher(bus),
        host="127.0.0.1",
        port=0,
        max_bytes=MAX_BYTES,
        tls_context=server_context,
        require_starttls=True,
    ) as server:
        harness.port = server.sockets[0].getsockname()[1]
        yield harness


class TestStartTls:
    async def test_a_sender_that_starts_tls_is_served(
        self, tls_listener: Listener, ca: trustme.CA
    ) -> None:
        client_context = ssl.create_default_context()
        ca.configure_trust(client_context)

        def send_over_tls() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", tls_listener.port, timeout=10) as client:
                client.ehlo("mta.example.com")
                assert client.has_extn("starttls")
                client.starttls(context=client_context)
                client.ehlo("mta.example.com")
                client.mail("ana@example.com")
                client.rcpt("support@omniroute.test")
                return client.data(MESSAGE)

        code, _ = await asyncio.to_thread(send_over_tls)
        assert code == 250
        [contact] = tls_listener.published
        assert contact.subject == "Refund for order 4411"

    async def test_mail_before_starttls_is_refused_when_it_is_required(
        self, tls_listener: Listener
    ) -> None:
        def send_in_clear() -> tuple[int, bytes]:
            with smtplib.SMTP("127.0.0.1", tls_listener.port, timeout=10) as client:
                client.ehlo("mta.example.com")
                return client.docmd("MAIL", "FROM:<ana@example.com>")

        code, reply = await asyncio.to_thread(send_in_clear)
        assert code == 530
        assert b"STARTTLS" in reply
        assert tls_listener.published == []

    def test_settings_need_a_certificate_to_require_tls(self) -> None:
        with pytest.raises(ValidationError, match="OMNIROUTE_SMTP_TLS_CERTFILE"):
            GatewaySettings(smtp_require_starttls=True)
        with pytest.raises(ValidationError, match="OMNIROUTE_SMTP_TLS_CERTFILE"):
            GatewaySettings(smtp_tls_keyfile="/etc/omniroute/smtp.key")
