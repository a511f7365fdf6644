"""Our Standard Webhooks signatures, checked by the scheme's reference package."""

from __future__ import annotations

import base64
import time

import pytest
from standardwebhooks import Webhook, WebhookVerificationError

from omniroute.router.webhooks.signing import generate_secret, signature_headers


class TestSecrets:
    def test_a_secret_is_whsec_and_32_random_bytes(self) -> None:
        secret = generate_secret()
        assert secret.startswith("whsec_")
        assert len(base64.b64decode(secret.removeprefix("whsec_"))) == 32

    def test_every_secret_is_new(self) -> None:
        assert generate_secret() != generate_secret()


class TestSignatures:
    BODY = b'{"type":"contact.received","data":{"text":"se\xc3\xb1or"}}'

    def test_the_reference_package_verifies_our_signature(self) -> None:
        secret = generate_secret()
        headers = signature_headers(secret, "msg_1", int(time.time()), self.BODY)
        assert Webhook(secret).verify(self.BODY, headers)["type"] == "contact.received"

    def test_a_tampered_body_fails_verification(self) -> None:
        secret = generate_secret()
        headers = signature_headers(secret, "msg_1", int(time.time()), self.BODY)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(self.BODY.replace(b"received", b"classified"), headers)

    def test_another_message_id_fails_verification(self) -> None:
        secret = generate_secret()
        headers = signature_headers(secret, "msg_1", int(time.time()), self.BODY)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(self.BODY, {**headers, "webhook-id": "msg_2"})

    def test_another_secret_fails_verification(self) -> None:
        headers = signature_headers(generate_secret(), "msg_1", int(time.time()), self.BODY)
        with pytest.raises(WebhookVerificationError):
            Webhook(generate_secret()).verify(self.BODY, headers)

    def test_a_stale_timestamp_fails_verification(self) -> None:
        secret = generate_secret()
        headers = signature_headers(secret, "msg_1", int(time.time()) - 3600, self.BODY)
        with pytest.raises(WebhookVerificationError):
            Webhook(secret).verify(self.BODY, headers)
