"""E-mail paths take whole messages (OMNIROUTE_MAX_EMAIL_BYTES); every other path keeps 1 MiB."""

from __future__ import annotations

from collections.abc import AsyncIterator

from omniroute.shared.http import BodyLimitMiddleware
from tests.gateway.conftest import Gateway

MIB = 1024 * 1024


def big_email(size: int) -> bytes:
    head = (
        b"From: ana@example.com\r\nSubject: Scanned invoice\r\nMessage-ID: <big@example.com>\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: text/plain\r\n\r\nInvoice attached.\r\n--b\r\n"
        b"Content-Type: application/pdf\r\nContent-Disposition: attachment; filename=a.pdf\r\n"
        b"Content-Transfer-Encoding: base64\r\n\r\n"
    )
    line = b"QUJD" * 19 + b"\r\n"
    return head + line * ((size - len(head)) // len(line)) + b"--b--\r\n"


class TestPerPathLimits:
    async def test_a_two_mib_email_is_accepted(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/email",
            content=big_email(2 * MIB),
            headers={**gateway.auth(), "Content-Type": "message/rfc822"},
        )
        assert response.status_code == 202
        [contact] = gateway.published
        assert contact.attachments[0].filename == "a.pdf"

    async def test_provider_routes_share_the_email_limit(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/postmark",
            content=b'{"From": "a@b.c", "TextBody": "' + b"x" * (2 * MIB) + b'"}',
            headers={**gateway.auth(), "Content-Type": "application/json"},
        )
        assert response.status_code == 202

    async def test_over_the_email_limit_is_413(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/email",
            content=big_email(5 * MIB),
            headers={**gateway.auth(), "Content-Type": "message/rfc822"},
        )
        assert response.status_code == 413
        assert gateway.published == []

    async def test_the_api_keeps_its_limit(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/contacts",
            content=b'{"external_id": "x", "text": "' + b"x" * (2 * MIB) + b'"}',
            headers={**gateway.auth(), "Content-Type": "application/json"},
        )
        assert response.status_code == 413

    async def test_webhooks_keep_the_api_limit(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/meta",
            content=b"x" * (2 * MIB),
            headers={"Content-Type": "application/json"},
        )
        assert response.status_code == 413

    async def test_streamed_body_without_length_is_cut(self, gateway: Gateway) -> None:
        async def chunks() -> AsyncIterator[bytes]:
            for _ in range(6):
                yield b"x" * MIB

        response = await gateway.client.post(
            "/v1/channels/email",
            content=chunks(),
            headers={**gateway.auth(), "Content-Type": "message/rfc822"},
        )
        assert response.status_code == 413


class TestLimitFor:
    def test_longest_prefix_wins_and_siblings_do_not_match(self) -> None:
        middleware = BodyLimitMiddleware(
            app=None,  # type: ignore[arg-type]
            max_body_bytes=10,
            path_limits={"/v1/channels/email": 100, "/v1/channels": 50},
        )
        assert middleware.limit_for("/v1/channels/email") == 100
        assert middleware.limit_for("/v1/channels/email/") == 100
        assert middleware.limit_for("/v1/channels/emailx") == 50
        assert middleware.limit_for("/v1/channels/meta") == 50
        assert middleware.limit_for("/v1/contacts") == 10
