"""Inbound-parse webhooks: SendGrid (parsed and raw), Mailgun routes, Postmark JSON."""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import urllib.parse
from pathlib import Path

import pytest
from pydantic import SecretStr

from omniroute.gateway.channels.email import EmailAdapter, parse_email
from omniroute.gateway.channels.inbound_parse import (
    MailgunAdapter,
    PostmarkAdapter,
    SendGridAdapter,
    verify_mailgun,
)
from omniroute.shared.errors import BadRequest, Unauthorized, Unprocessable
from omniroute.shared.events import Channel
from tests.gateway.conftest import Gateway, delivery

SENDGRID = "webhooks/sendgrid-inbound-parse"
MAILGUN = "webhooks/mailgun-routes"
POSTMARK = "webhooks/postmark-inbound/valid_http_post.json"
SENDGRID_FORM = "multipart/form-data; boundary=xYzZY"
MAILGUN_KEY = "key-mailgun-signing-test"


def mailgun_fields(shared_data: Path, name: str = "message-store.rst") -> dict[str, str]:
    """The route's POST fields, as Mailgun's documentation lists them."""
    fields: dict[str, str] = {}
    for line in (shared_data / MAILGUN / name).read_text().splitlines():
        if not line.startswith(" ") or ":" not in line:
            continue
        key, _, value = line.strip().partition(":")
        fields[key] = value.strip()
    return fields


def multipart(fields: dict[str, str | bytes], files: dict[str, tuple[str, bytes]] | None = None):
    boundary = "----omniroute-test-boundary"
    chunks: list[bytes] = []
    for key, value in fields.items():
        chunks.append(
            f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"\r\n\r\n'.encode()
            + (value if isinstance(value, bytes) else value.encode())
            + b"\r\n"
        )
    for key, (filename, content) in (files or {}).items():
        chunks.append(
            (
                f'--{boundary}\r\nContent-Disposition: form-data; name="{key}"; '
                f'filename="{filename}"\r\nContent-Type: application/pdf\r\n\r\n'
            ).encode()
            + content
            + b"\r\n"
        )
    chunks.append(f"--{boundary}--\r\n".encode())
    return b"".join(chunks), f"multipart/form-data; boundary={boundary}"


def mailgun_signed(fields: dict[str, str], key: str = MAILGUN_KEY, age: float = 0) -> dict:
    timestamp = str(int(time.time() - age))
    token = "a71d0000ed34da6768198da96f9daaf8fb98adbccfdbd2fdaf"
    signature = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    return {**fields, "timestamp": timestamp, "token": token, "signature": signature}


class TestSendGrid:
    def parse(self, shared_data: Path, name: str) -> list:
        body = (shared_data / SENDGRID / name).read_bytes()
        return SendGridAdapter().parse(delivery(body, SENDGRID_FORM))

    def test_parsed_mode(self, shared_data: Path) -> None:
        [contact] = self.parse(shared_data, "default_data.txt")
        assert contact.channel is Channel.EMAIL
        assert contact.customer.email == "test@example.com"
        assert contact.customer.name == "Example User"
        assert contact.subject == "Inbound Parse Test Data"
        assert contact.text == "Hello Twilio SendGrid!"

    def test_parsed_mode_is_deterministic(self, shared_data: Path) -> None:
        [one], [two] = (self.parse(shared_data, "default_data.txt") for _ in range(2))
        assert one.contact_id == two.contact_id

    def test_raw_mode(self, shared_data: Path) -> None:
        [contact] = self.parse(shared_data, "raw_data.txt")
        assert contact.subject == "Inbound Parse Test Raw Data"
        assert contact.text == "Hello Twilio SendGrid!"

    def test_raw_mode_with_attachment(self, shared_data: Path) -> None:
        [contact] = self.parse(shared_data, "raw_data_with_attachments.txt")
        [attachment] = contact.attachments
        assert attachment.filename == "SendGrid.jpg"

    def test_parsed_mode_files_are_listed(self) -> None:
        fields = {
            "headers": "From: Ana <ana@example.com>\nSubject: Invoice\nMessage-ID: <sg-1@x>\n",
            "text": "See the attached invoice, it is wrong.",
            "from": "Ana <ana@example.com>",
            "subject": "Invoice",
            "attachments": "1",
            "attachment-info": json.dumps({"attachment1": {"filename": "inv.pdf"}}),
            "charsets": json.dumps({"text": "UTF-8"}),
        }
        body, content_type = multipart(fields, {"attachment1": ("inv.pdf", b"%PDF-1.4 ...")})
        [contact] = SendGridAdapter().parse(delivery(body, content_type))
        assert contact.external_id == "<sg-1@x>"
        [attachment] = contact.attachments
        assert attachment.filename == "inv.pdf"
        assert attachment.size == len(b"%PDF-1.4 ...")

    def test_charsets_are_honoured(self) -> None:
        fields: dict[str, str | bytes] = {
            "headers": "From: a@example.com\nSubject: x\n",
            "charsets": json.dumps({"text": "iso-8859-1"}),
            "text": "Adiós señor".encode("latin-1"),
        }
        body, content_type = multipart(fields)
        [contact] = SendGridAdapter().parse(delivery(body, content_type))
        assert contact.text == "Adiós señor"


class TestMailgun:
    def test_parsed_fields_multipart(self, shared_data: Path) -> None:
        body, content_type = multipart(mailgun_fields(shared_data))
        [contact] = MailgunAdapter().parse(delivery(body, content_type))
        assert contact.customer.email == "user@samples.mailgun.com"
        assert contact.customer.name == "Excited User"
        assert contact.subject == "Message Routes"
        assert contact.text == "Testing Mailgun's forwarded and stored message routes :)"
        assert contact.external_id.startswith("<CABPem2N_Ucj3wRRZnLVpVF_fRjkTBXHZReZC3zY")

    def test_parsed_fields_urlencoded(self, shared_data: Path) -> None:
        body = urllib.parse.urlencode(mailgun_fields(shared_data, "message-forward.rst"))
        adapter = MailgunAdapter()
        [contact] = adapter.parse(delivery(body, "application/x-www-form-urlencoded"))
        assert contact.subject == "Message Routes"
        # The same message through the store route is the same contact.
        stored, content_type = multipart(mailgun_fields(shared_data))
        [again] = adapter.parse(delivery(stored, content_type))
        assert again.contact_id == contact.contact_id

    def test_mime_route(self, shared_data: Path) -> None:
        raw = (shared_data / "email/talon/standard_replies/gmail.eml").read_text()
        body, content_type = multipart({"recipient": "x@y", "body-mime": raw})
        [contact] = MailgunAdapter().parse(delivery(body, content_type))
        assert contact.text == "Hello"

    def test_valid_signature(self, shared_data: Path) -> None:
        body = urllib.parse.urlencode(mailgun_signed(mailgun_fields(shared_data))).encode()
        form = "application/x-www-form-urlencoded"
        verify_mailgun(body, form, form, MAILGUN_KEY)

    def test_tampered_signature(self, shared_data: Path) -> None:
        fields = mailgun_signed(mailgun_fields(shared_data))
        fields["token"] = "f" * 50
        body, content_type = multipart(fields)
        with pytest.raises(Unauthorized):
            verify_mailgun(body, "multipart/form-data", content_type, MAILGUN_KEY)

    def test_stale_timestamp(self, shared_data: Path) -> None:
        body, content_type = multipart(mailgun_signed(mailgun_fields(shared_data), age=3600))
        with pytest.raises(Unauthorized, match="stale"):
            verify_mailgun(body, "multipart/form-data", content_type, MAILGUN_KEY)

    async def test_endpoint_checks_the_signature_when_configured(
        self, gateway: Gateway, shared_data: Path
    ) -> None:
        gateway.app.state.settings.gateway.mailgun_signing_key = SecretStr(MAILGUN_KEY)
        fields = mailgun_fields(shared_data)
        good, content_type = multipart(mailgun_signed(fields))
        bad, bad_type = multipart(mailgun_signed(fields, key="other"))
        headers = gateway.auth()
        ok = await gateway.client.post(
            "/v1/channels/mailgun", content=good, headers={**headers, "Content-Type": content_type}
        )
        assert ok.status_code == 202
        refused = await gateway.client.post(
            "/v1/channels/mailgun", content=bad, headers={**headers, "Content-Type": bad_type}
        )
        assert refused.status_code == 401


class TestPostmark:
    def test_inbound_json(self, shared_data: Path) -> None:
        body = (shared_data / POSTMARK).read_bytes()
        [contact] = PostmarkAdapter().parse(delivery(body))
        assert contact.customer.email == "bob@bob.com"
        assert contact.customer.name == "Bob Bobson"
        assert contact.subject == "Hi There"
        assert contact.text == "This is awesome!"
        assert contact.external_id == (
            "<CAGXpo2WKfxHWZ5UFYCR3H_J9SNMG+5AXUovfEFL6DjWBJSyZaA@mail.gmail.com>"
        )
        assert [a.filename for a in contact.attachments] == ["chart.png", "chart2.png"]
        assert contact.attachments[0].size == 2000
        assert contact.metadata["postmark_message_id"] == "a8c1040e-db1c-4e18-ac79-bc5f64c7ce2c"

    def test_email_channel_takes_postmark_too(self, shared_data: Path) -> None:
        body = (shared_data / POSTMARK).read_bytes()
        [via_email] = EmailAdapter().parse(delivery(body))
        [via_postmark] = PostmarkAdapter().parse(delivery(body))
        assert via_email.contact_id == via_postmark.contact_id

    def test_html_only(self) -> None:
        payload = {
            "FromFull": {"Email": "Ana@Example.com", "Name": "Ana"},
            "Subject": "Help",
            "HtmlBody": "<p>My <b>router</b> is broken</p>",
            "Headers": [{"Name": "Message-ID", "Value": "<pm-2@example.com>"}],
        }
        [contact] = PostmarkAdapter().parse(delivery(payload))
        assert contact.text == "My router is broken"
        assert contact.customer.email == "ana@example.com"

    def test_auto_reply_headers_are_flagged(self) -> None:
        payload = {
            "From": "ana@example.com",
            "Subject": "Re: your ticket",
            "TextBody": "I am away until Monday.",
            "Headers": [{"Name": "Auto-Submitted", "Value": "auto-replied"}],
        }
        [contact] = PostmarkAdapter().parse(delivery(payload))
        assert contact.metadata["auto_submitted"] == "auto-replied"

    def test_not_postmark_is_422(self) -> None:
        with pytest.raises(Unprocessable):
            PostmarkAdapter().parse(delivery({"hello": "world"}))

    def test_malformed_json_is_400(self) -> None:
        with pytest.raises(BadRequest):
            PostmarkAdapter().parse(delivery(b'{"From": '))


class TestThreadingAcrossProviders:
    def test_parsed_headers_keep_the_thread(self) -> None:
        original = parse_email(
            b"From: ana@example.com\r\nMessage-ID: <root@example.com>\r\nSubject: Help\r\n\r\nHi"
        )
        payload = {
            "From": "ana@example.com",
            "Subject": "Re: Help",
            "TextBody": "Any news?\n\nOn Mon, 1 Jan 2024 at 10:00, Support <s@x.com> wrote:\n> Hi",
            "Headers": [
                {"Name": "Message-ID", "Value": "<reply@example.com>"},
                {"Name": "In-Reply-To", "Value": "<root@example.com>"},
                {"Name": "References", "Value": "<root@example.com>"},
            ],
        }
        [reply] = PostmarkAdapter().parse(delivery(payload))
        assert reply.conversation_id == original.conversation_id
        assert reply.text == "Any news?"


class TestMachineMailThroughProviders:
    def test_sendgrid_parsed_auto_reply(self) -> None:
        fields: dict[str, str | bytes] = {
            "headers": (
                "From: Ana <ana@example.com>\nSubject: Automatic reply: Order 42\n"
                "Auto-Submitted: auto-replied\nMessage-ID: <ooo@example.com>\n"
            ),
            "text": "I am out of the office until Monday.",
            "from": "Ana <ana@example.com>",
        }
        body, content_type = multipart(fields)
        [contact] = SendGridAdapter().parse(delivery(body, content_type))
        assert contact.metadata["auto_submitted"] == "auto-replied"

    def test_mailgun_parsed_precedence(self, shared_data: Path) -> None:
        fields = mailgun_fields(shared_data)
        headers = json.loads(fields["message-headers"]) + [["X-Autoreply", "yes"]]
        fields["message-headers"] = json.dumps(headers)
        body, content_type = multipart(fields)
        [contact] = MailgunAdapter().parse(delivery(body, content_type))
        assert contact.metadata["auto_submitted"] == "auto-replied"

    def test_postmark_bounce_from_a_mailer_daemon(self) -> None:
        payload = {
            "From": "MAILER-DAEMON@mx.example.com",
            "Subject": "Undelivered Mail Returned to Sender",
            "TextBody": "This is the mail system at host mx.example.com.",
            "Headers": [{"Name": "Message-ID", "Value": "<bounce-1@mx.example.com>"}],
        }
        [contact] = PostmarkAdapter().parse(delivery(payload))
        assert contact.metadata["auto_submitted"] == "bounce"

    @pytest.mark.parametrize("record", ["Bounce", "SpamComplaint", "Delivery", "Open"])
    def test_postmark_event_webhooks_create_nothing(self, record: str) -> None:
        payload = {"RecordType": record, "MessageID": "x", "Email": "ana@example.com"}
        assert PostmarkAdapter().parse(delivery(payload)) == []


class TestGenericForms:
    def test_from_and_text_without_headers(self) -> None:
        body = urllib.parse.urlencode(
            {"from": "Ana <ana@example.com>", "subject": "Hola", "text": "Necesito ayuda"}
        )
        [contact] = EmailAdapter().parse(delivery(body, "application/x-www-form-urlencoded"))
        assert contact.customer.email == "ana@example.com"
        assert contact.text == "Necesito ayuda"
