"""Hostile and mangled deliveries on every channel: a 2xx or a 4xx, never a 5xx.

Real payloads are mutated deterministically (every leaf replaced by values of the wrong type,
every list and object emptied) and posted with valid signatures, so the adapters, not the
signature checks, are what is exercised.
"""

from __future__ import annotations

import copy
import json
import random
import urllib.parse
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from omniroute.gateway.channels.meta import signature_for as meta_signature
from omniroute.gateway.channels.twilio import signature_for as twilio_signature
from omniroute.gateway.channels.x import signature_for as x_signature
from tests.gateway.conftest import TWILIO_TOKEN, X_SECRET, Gateway, meta_vector
from tests.gateway.test_phone import TWILIO_TRANSCRIPT
from tests.gateway.test_x import DM, MENTION

WRONG = [None, True, -1, 1e308, "", "x" * 600, [], {}, [None], {"a": None}, "\udcff"[:0] + "ñ"]
FORM = "application/x-www-form-urlencoded"


def leaves(value: Any, path: tuple = ()) -> Iterator[tuple]:
    if isinstance(value, dict):
        yield path
        for key, item in value.items():
            yield from leaves(item, (*path, key))
    elif isinstance(value, list):
        yield path
        for index, item in enumerate(value):
            yield from leaves(item, (*path, index))
    else:
        yield path


def replaced(value: Any, path: tuple, new: Any) -> Any:
    if not path:
        return new
    result = copy.deepcopy(value)
    node = result
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = new
    return result


def mutations(payload: Any, count: int = 120, seed: int = 7) -> list[Any]:
    rng = random.Random(seed)
    paths = list(leaves(payload))
    found = [replaced(payload, path, rng.choice(WRONG)) for path in paths]
    rng.shuffle(found)
    return found[:count]


async def assert_no_5xx(gateway: Gateway, path: str, body: bytes, headers: dict) -> None:
    response = await gateway.client.post(path, content=body, headers=headers)
    assert response.status_code < 500, (path, body[:300], response.text)


class TestMutatedPayloads:
    async def test_meta(self, gateway: Gateway, shared_data: Path) -> None:
        secret = str(meta_vector(shared_data)["app_secret"])
        folder = shared_data / "webhooks/whatsapp-cloud-api/pywa-updates"
        samples = [
            payload
            for file in sorted(folder.glob("*.json"))[:12]
            for payload in list(json.loads(file.read_text()).values())[:2]
        ]
        messenger = shared_data / "webhooks/facebook-messenger/botbuilder-dotnet"
        samples.append(json.loads((messenger / "PayloadWithStandby.json").read_text("utf-8-sig")))
        for sample in samples:
            for payload in mutations(sample, count=8):
                body = json.dumps(payload).encode()
                headers = {
                    "Content-Type": "application/json",
                    "X-Hub-Signature-256": meta_signature(secret, body),
                }
                await assert_no_5xx(gateway, "/v1/channels/meta", body, headers)

    async def test_x(self, gateway: Gateway) -> None:
        for sample in (DM, MENTION):
            for payload in mutations(sample, count=60):
                body = json.dumps(payload).encode()
                headers = {
                    "Content-Type": "application/json",
                    "x-twitter-webhooks-signature": x_signature(X_SECRET, body),
                }
                await assert_no_5xx(gateway, "/v1/channels/x", body, headers)

    async def test_twilio(self, gateway: Gateway, shared_data: Path) -> None:
        raw = (shared_data / "webhooks/twilio/botbuilder-dotnet/MediaPayload.txt").read_text()
        fields = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
        rng = random.Random(3)
        for key in list(fields):
            for junk in ("", "x" * 3000, "-5", "99999", "whatsapp:", "%00", "ñ"):
                mutated = {**fields, key: junk}
                if rng.random() < 0.3:
                    mutated.pop("Body", None)
                body = urllib.parse.urlencode(mutated)
                url = "http://test/v1/channels/twilio"
                params = urllib.parse.parse_qsl(body, keep_blank_values=True)
                headers = {
                    "Content-Type": FORM,
                    "X-Twilio-Signature": twilio_signature(TWILIO_TOKEN, url, params),
                }
                await assert_no_5xx(gateway, "/v1/channels/twilio", body.encode(), headers)

    async def test_postmark_and_phone(self, gateway: Gateway, shared_data: Path) -> None:
        postmark = json.loads(
            (shared_data / "webhooks/postmark-inbound/valid_http_post.json").read_text()
        )
        lens = sorted((shared_data / "transcripts/amazon-connect-contact-lens").glob("*.json"))
        cases = [("/v1/channels/postmark", postmark), ("/v1/channels/phone", TWILIO_TRANSCRIPT)]
        cases += [("/v1/channels/phone", json.loads(path.read_text())) for path in lens[:2]]
        for path, sample in cases:
            for payload in mutations(sample, count=60):
                body = json.dumps(payload).encode()
                headers = {**gateway.auth(), "Content-Type": "application/json"}
                await assert_no_5xx(gateway, path, body, headers)


JUNK_BODIES = [
    b"",
    b"null",
    b"[]",
    b"\xff\xfe\x00garbage",
    b"{" * 5000 + b"}" * 5000,
    b'{"object": "page", "entry": [' + b"[" * 3000 + b"]" * 3000 + b"]}",
    b"--x\r\nContent-Disposition: form-data\r\n\r\n--x--",
    b"a=1&a=2&" * 100,
]


class TestJunk:
    @pytest.mark.parametrize(
        ("path", "content_type"),
        [
            ("/v1/channels/email", "message/rfc822"),
            ("/v1/channels/email", "multipart/form-data; boundary=x"),
            ("/v1/channels/email", "application/json"),
            ("/v1/channels/sendgrid", "multipart/form-data"),
            ("/v1/channels/mailgun", FORM),
            ("/v1/channels/postmark", "application/json"),
            ("/v1/channels/chat", "application/json"),
            ("/v1/channels/phone", "application/json"),
        ],
    )
    async def test_api_key_channels(self, gateway: Gateway, path: str, content_type: str) -> None:
        for body in JUNK_BODIES:
            headers = {**gateway.auth(), "Content-Type": content_type}
            await assert_no_5xx(gateway, path, body, headers)

    async def test_signed_channels(self, gateway: Gateway) -> None:
        for body in JUNK_BODIES:
            x_headers = {
                "Content-Type": "application/json",
                "x-twitter-webhooks-signature": x_signature(X_SECRET, body),
            }
            await assert_no_5xx(gateway, "/v1/channels/x", body, x_headers)
            twilio_headers = {"Content-Type": FORM, "X-Twilio-Signature": "bm9wZQ=="}
            await assert_no_5xx(gateway, "/v1/channels/twilio", body, twilio_headers)
            meta_headers = {"Content-Type": "application/json", "X-Hub-Signature-256": "sha256=0"}
            await assert_no_5xx(gateway, "/v1/channels/meta", body, meta_headers)
