"""KafkaBus over TLS, against a real Tansu behind a TLS-terminating proxy; security settings.

Tansu 0.6's own TLS listener cannot be configured (its command line refuses --cert with --key),
so the broker advertises a proxy that terminates TLS with a certificate from a test CA
(trustme) and forwards the bytes to it: every connection the clients make, bootstrap and
broker alike, is TLS, verified against that CA.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest
import trustme
from pydantic import ValidationError

from omniroute.shared.settings import BusSettings, Settings
from omniroute.shared.transport import BusUnavailable, Message
from omniroute.shared.transport.kafka import KafkaBus, connection_security
from tests.fixtures.broker import TansuBroker, free_port, start_tansu

pytestmark = pytest.mark.kafka

DEADLINE = 60.0


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while chunk := await reader.read(65536):
            writer.write(chunk)
            await writer.drain()
    except (ConnectionError, ssl.SSLError):
        pass
    finally:
        writer.close()


@contextlib.asynccontextmanager
async def tls_proxy(port: int, upstream: int, context: ssl.SSLContext) -> AsyncIterator[None]:
    async def forward(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        up_reader, up_writer = await asyncio.open_connection("127.0.0.1", upstream)
        await asyncio.gather(_pipe(reader, up_writer), _pipe(up_reader, writer))

    server = await asyncio.start_server(forward, "127.0.0.1", port, ssl=context)
    try:
        yield
    finally:
        server.close()


@pytest.fixture
def ca(tmp_path: Path) -> trustme.CA:
    return trustme.CA()


@pytest.fixture
def proxied_tansu(tansu_log_dir: Path) -> Iterator[tuple[TansuBroker, int]]:
    proxy_port = free_port()
    broker = start_tansu(tansu_log_dir, advertised_port=proxy_port)
    try:
        yield broker, proxy_port
    finally:
        broker.stop()


def tls_settings(port: int, **overrides: Any) -> BusSettings:
    values: dict[str, Any] = {
        "bus": f"kafka://127.0.0.1:{port}",
        "bus_partitions": 1,
        "bus_send_timeout_seconds": 5.0,
        "bus_security_protocol": "SSL",
    }
    values.update(overrides)
    return BusSettings(**values)


async def test_publish_and_consume_over_verified_tls(
    proxied_tansu: tuple[TansuBroker, int], ca: trustme.CA, tmp_path: Path
) -> None:
    broker, proxy_port = proxied_tansu
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1", "localhost").configure_cert(server_context)
    cafile = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(cafile))
    received: list[Message] = []
    arrived = asyncio.Event()

    async def handle(message: Message) -> None:
        received.append(message)
        arrived.set()

    bus = KafkaBus(tls_settings(proxy_port, bus_ssl_cafile=cafile), topics=["tls.contacts"])
    bus.subscribe("tls.contacts", "tls-group", handle)
    async with tls_proxy(proxy_port, broker.port, server_context):
        await bus.start()
        try:
            async with asyncio.timeout(DEADLINE):
                while True:
                    try:
                        await bus.publish("tls.contacts", "conversation-1", b'{"text": "hola"}')
                        break
                    except BusUnavailable:  # still connecting
                        await asyncio.sleep(0.2)
                await arrived.wait()
            assert received[0].value == b'{"text": "hola"}'
            assert received[0].key == "conversation-1"
        finally:
            await bus.stop()


async def test_a_broker_the_ca_does_not_vouch_for_is_refused(
    proxied_tansu: tuple[TansuBroker, int], ca: trustme.CA
) -> None:
    broker, proxy_port = proxied_tansu
    server_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_context)
    # No cafile: the system's CAs, which do not include the test CA.
    bus = KafkaBus(tls_settings(proxy_port), topics=["tls.refused"])
    async with tls_proxy(proxy_port, broker.port, server_context):
        await bus.start()
        try:
            with pytest.raises(BusUnavailable):
                await bus.publish("tls.refused", "k", b"x")
            assert not await bus.ping()
        finally:
            await bus.stop()


class TestSettings:
    def test_plaintext_by_default(self) -> None:
        assert connection_security(BusSettings()) == {"security_protocol": "PLAINTEXT"}

    def test_sasl_over_tls_carries_the_login_and_a_verifying_context(self) -> None:
        settings = BusSettings(
            bus_security_protocol="SASL_SSL",
            bus_sasl_mechanism="SCRAM-SHA-256",
            bus_sasl_username="omniroute",
            bus_sasl_password="s3cr3t-from-the-vault",
        )
        options = connection_security(settings)
        assert options["security_protocol"] == "SASL_SSL"
        assert options["sasl_mechanism"] == "SCRAM-SHA-256"
        assert options["sasl_plain_username"] == "omniroute"
        assert options["sasl_plain_password"] == "s3cr3t-from-the-vault"
        context = options["ssl_context"]
        assert context.verify_mode is ssl.CERT_REQUIRED
        assert context.check_hostname

    def test_a_client_certificate_is_loaded(self, ca: trustme.CA, tmp_path: Path) -> None:
        client = ca.issue_cert("omniroute-client")
        certfile, keyfile = tmp_path / "client.pem", tmp_path / "client.key"
        client.cert_chain_pems[0].write_to_path(str(certfile))
        client.private_key_pem.write_to_path(str(keyfile))
        options = connection_security(
            BusSettings(
                bus_security_protocol="SSL", bus_ssl_certfile=certfile, bus_ssl_keyfile=keyfile
            )
        )
        assert isinstance(options["ssl_context"], ssl.SSLContext)

    @pytest.mark.parametrize(
        ("values", "message"),
        [
            ({"bus_security_protocol": "SASL_SSL"}, "OMNIROUTE_BUS_SASL_USERNAME"),
            (
                {"bus_security_protocol": "SASL_PLAINTEXT", "bus_sasl_username": "u"},
                "OMNIROUTE_BUS_SASL_PASSWORD",
            ),
            ({"bus_ssl_cafile": "/etc/ca.pem"}, "use SSL or SASL_SSL"),
            (
                {"bus_security_protocol": "SSL", "bus_ssl_keyfile": "/k.pem"},
                "needs OMNIROUTE_BUS_SSL_CERTFILE",
            ),
        ],
    )
    def test_incomplete_settings_are_explained(self, values: dict[str, Any], message: str) -> None:
        with pytest.raises(ValidationError, match=message):
            BusSettings(**values)

    def test_production_refuses_a_placeholder_sasl_password(
        self, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setenv("OMNIROUTE_ENV", "production")
        monkeypatch.setenv("OMNIROUTE_ADMIN_KEY", "a-real-admin-key-of-some-length")
        monkeypatch.setenv("OMNIROUTE_BUS_SECURITY_PROTOCOL", "SASL_SSL")
        monkeypatch.setenv("OMNIROUTE_BUS_SASL_USERNAME", "omniroute")
        monkeypatch.setenv("OMNIROUTE_BUS_SASL_PASSWORD", "changeme")
        with pytest.raises(ValueError, match="OMNIROUTE_BUS_SASL_PASSWORD"):
            Settings().validate_for_production()
