"""E-mail as inbound-parse providers post it: SendGrid, Mailgun routes and Postmark.

Each provider has a raw mode (the whole RFC 822 message in one field) and a parsed mode (headers
and bodies in separate fields). The raw message is always preferred. A parsed delivery is turned
back into a small RFC 822 message (the provider's headers, a text/plain and a text/html part)
and read by the same `parse_email` as everything else, so threading, auto-reply and bounce
detection, quote and signature stripping behave identically whichever way the mail arrived.
Attachments of a parsed delivery are listed from the provider's own metadata.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from omniroute.gateway.channels.base import (
    RawDelivery,
    decode_form,
    decode_json,
    optional_str,
    require_object,
    short,
)
from omniroute.gateway.channels.email import (
    EmailAdapter,
    decode_bytes,
    parse_email,
    parse_message,
)
from omniroute.shared.errors import BadRequest, Unauthorized, Unprocessable
from omniroute.shared.events import Attachment, InboundContact
from omniroute.shared.settings import Settings

# Form fields that carry the full raw message: SendGrid Inbound Parse in raw mode, and Mailgun
# routes forwarding to a URL ending in "mime".
RAW_FORM_FIELDS = ("email", "body-mime")
MAX_FORM_ATTACHMENTS = 100
# Mailgun signs timestamp+token; an older signature is a replay.
MAILGUN_MAX_AGE_SECONDS = 15 * 60
_BOUNDARY = "omniroute-inbound-parse-boundary"
# Headers describing the provider's original body; we rebuild the body, so they must go.
_CONTENT_HEADERS = {
    "content-type",
    "content-transfer-encoding",
    "mime-version",
    "content-disposition",
    "content-length",
}
_HEADER_NAME = re.compile(r"^[!-9;-~]{1,76}$")


@dataclass
class ParsedMail:
    """A parsed-mode delivery: the provider's headers, bodies and attachment metadata."""

    headers: list[tuple[str, str]] = field(default_factory=list)
    text: str | None = None
    html: str | None = None
    attachments: list[Attachment] = field(default_factory=list)

    def has(self, name: str) -> bool:
        return any(key.lower() == name.lower() for key, _ in self.headers)

    def add(self, name: str, value: str | None) -> None:
        """Add a header unless one by that name exists (the provider's headers come first)."""
        if value and not self.has(name):
            self.headers.append((name, value))

    def to_rfc822(self) -> bytes:
        """A deterministic RFC 822 rendering, so a re-delivery maps onto the same ids."""
        lines = [
            f"{name}: {_fold(value)}"
            for name, value in self.headers
            if name.lower() not in _CONTENT_HEADERS and _HEADER_NAME.match(name)
        ]
        lines.append("MIME-Version: 1.0")
        bodies = [
            (subtype, content)
            for subtype, content in (("plain", self.text), ("html", self.html))
            if content is not None and content.strip()
        ]
        if not bodies:
            bodies = [("plain", "")]
        if len(bodies) == 1:
            subtype, content = bodies[0]
            lines.extend(_part_headers(subtype))
            lines.extend(["", _b64(content)])
        else:
            lines.append(f'Content-Type: multipart/alternative; boundary="{_BOUNDARY}"')
            lines.append("")
            for subtype, content in bodies:
                lines.extend([f"--{_BOUNDARY}", *_part_headers(subtype), "", _b64(content)])
            lines.append(f"--{_BOUNDARY}--")
        return ("\r\n".join(lines) + "\r\n").encode("utf-8", "surrogatepass")

    def to_contact(self, received_at: datetime) -> InboundContact:
        contact = parse_email(self.to_rfc822(), received_at=received_at)
        if not self.attachments:
            return contact
        attachments = [*self.attachments, *contact.attachments][:MAX_FORM_ATTACHMENTS]
        return contact.model_copy(update={"attachments": attachments})


def _part_headers(subtype: str) -> list[str]:
    return [f"Content-Type: text/{subtype}; charset=utf-8", "Content-Transfer-Encoding: base64"]


def _b64(text: str) -> str:
    data = base64.b64encode(text.encode("utf-8", "replace")).decode("ascii")
    return "\r\n".join(data[start : start + 76] for start in range(0, len(data), 76))


def _fold(value: str) -> str:
    """One header value on header lines: continuation lines start with whitespace."""
    value = value.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = [line for line in value.split("\n") if line.strip()]
    if not lines:
        return ""
    return "\r\n".join([lines[0], *(" " + line.strip() for line in lines[1:])])


# Forms


@dataclass
class Form:
    """A multipart/form-data or urlencoded delivery: text fields and uploaded files."""

    fields: dict[str, bytes] = field(default_factory=dict)
    charsets: dict[str, str | None] = field(default_factory=dict)
    files: list[Attachment] = field(default_factory=list)

    def text(self, name: str) -> str | None:
        value = self.fields.get(name)
        if value is None:
            return None
        return decode_bytes(value, self.charsets.get(name) or "utf-8")

    def json(self, name: str) -> Any:
        value = self.fields.get(name)
        if value is None or not value.strip():
            return None
        try:
            return json.loads(decode_bytes(value, "utf-8"))
        except (json.JSONDecodeError, RecursionError):
            return None


def read_form(delivery: RawDelivery) -> Form:
    if delivery.media_type == "application/x-www-form-urlencoded":
        form = Form()
        for name, value in decode_form(delivery.body):
            form.fields.setdefault(name, value.encode("utf-8", "surrogatepass"))
        return form
    return read_multipart(delivery.body, delivery.content_type)


def read_multipart(body: bytes, content_type: str) -> Form:
    """The fields of a multipart/form-data body, read by the bounded mail parser."""
    header = b"Content-Type: " + content_type.encode("ascii", "replace") + b"\r\n\r\n"
    message, _ = parse_message(header + body)
    if not message.is_multipart():
        raise BadRequest("the form-data body has no parts (missing or wrong boundary?)")
    form = Form()
    for part in message.iter_parts():
        name = part.get_param("name", header="content-disposition")
        filename = part.get_filename()
        try:
            payload = part.get_payload(decode=True)
        except Exception:
            payload = None
        data = payload if isinstance(payload, bytes) else b""
        if filename:
            if len(form.files) < MAX_FORM_ATTACHMENTS:
                form.files.append(
                    Attachment(
                        filename=short(filename),
                        content_type=short(part.get_content_type()),
                        size=len(data),
                    )
                )
            continue
        if isinstance(name, str) and name not in form.fields:
            form.fields[name] = data
            charset = part.get_content_charset()
            form.charsets[name] = charset
    return form


# Providers


def parse_form_delivery(delivery: RawDelivery) -> InboundContact:
    """A SendGrid or Mailgun form, raw or parsed mode, as one contact."""
    form = read_form(delivery)
    for name in RAW_FORM_FIELDS:
        raw = form.fields.get(name)
        if raw is not None and raw.strip():
            return parse_email(raw, received_at=delivery.received_at)
    if "headers" in form.fields or "envelope" in form.fields:
        return sendgrid_parsed(form).to_contact(delivery.received_at)
    if any(key in form.fields for key in ("message-headers", "body-plain", "stripped-text")):
        return mailgun_parsed(form).to_contact(delivery.received_at)
    if "from" in form.fields and ("text" in form.fields or "html" in form.fields):
        # SendGrid-like fields without the header block (other parse services, hand-made posts).
        return sendgrid_parsed(form).to_contact(delivery.received_at)
    raise Unprocessable(
        "the form is neither a raw message ('email', 'body-mime') nor a SendGrid or Mailgun "
        "parsed message"
    )


def sendgrid_parsed(form: Form) -> ParsedMail:
    charsets = form.json("charsets")
    if isinstance(charsets, dict):
        for key, value in charsets.items():
            if isinstance(key, str) and isinstance(value, str):
                form.charsets.setdefault(key, value)
                if form.charsets.get(key) is None:
                    form.charsets[key] = value
    mail = ParsedMail(headers=_header_block(form.fields.get("headers", b"")))
    mail.add("From", form.text("from"))
    mail.add("To", form.text("to"))
    mail.add("Cc", form.text("cc"))
    mail.add("Subject", form.text("subject"))
    mail.text = form.text("text")
    mail.html = form.text("html")
    mail.attachments = _sendgrid_attachments(form)
    return mail


def _sendgrid_attachments(form: Form) -> list[Attachment]:
    info = form.json("attachment-info")
    if form.files or not isinstance(info, dict):
        return form.files
    # The files were not posted (or not parsed): list what SendGrid describes.
    found = []
    for item in list(info.values())[:MAX_FORM_ATTACHMENTS]:
        if isinstance(item, dict):
            name = optional_str(item.get("filename")) or optional_str(item.get("name"))
            found.append(
                Attachment(
                    filename=short(name) if name else None,
                    content_type=short(
                        optional_str(item.get("type")) or "application/octet-stream"
                    ),
                )
            )
    return found


def mailgun_parsed(form: Form) -> ParsedMail:
    headers: list[tuple[str, str]] = []
    pairs = form.json("message-headers")
    if isinstance(pairs, list):
        for pair in pairs[:500]:
            if (
                isinstance(pair, list)
                and len(pair) == 2
                and all(isinstance(item, str) for item in pair)
            ):
                headers.append((pair[0], pair[1]))
    mail = ParsedMail(headers=headers)
    mail.add("From", form.text("from") or form.text("sender"))
    mail.add("To", form.text("To") or form.text("recipient"))
    mail.add("Subject", form.text("subject"))
    for name in ("Message-Id", "In-Reply-To", "References"):
        mail.add(name, form.text(name))
    mail.text = form.text("body-plain")
    if mail.text is None:
        mail.text = form.text("stripped-text")
    mail.html = form.text("body-html")
    mail.attachments = form.files
    return mail


def verify_mailgun(form_body: bytes, media_type: str, content_type: str, key: str) -> None:
    """Mailgun's HMAC-SHA256(signing key, timestamp + token), refused when stale."""
    delivery_form = (
        Form(fields={k: v.encode() for k, v in decode_form(form_body)})
        if media_type == "application/x-www-form-urlencoded"
        else read_multipart(form_body, content_type)
    )
    timestamp = delivery_form.text("timestamp") or ""
    token = delivery_form.text("token") or ""
    signature = (delivery_form.text("signature") or "").strip().lower()
    if not (timestamp and token and signature):
        raise Unauthorized("missing Mailgun timestamp, token or signature")
    try:
        age = abs(time.time() - float(timestamp))
    except ValueError as exc:
        raise Unauthorized("invalid Mailgun timestamp") from exc
    if age > MAILGUN_MAX_AGE_SECONDS:
        raise Unauthorized("the Mailgun signature is stale")
    expected = hmac.new(key.encode(), (timestamp + token).encode(), hashlib.sha256).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise Unauthorized("invalid Mailgun signature")


def parse_postmark(delivery: RawDelivery) -> InboundContact | None:
    """Postmark's inbound JSON; `RawEmail` (when enabled) is the whole message."""
    payload = require_object(decode_json(delivery.body))
    record = optional_str(payload.get("RecordType"))
    if record is not None and record.lower() != "inbound":
        # Postmark's event webhooks (Bounce, SpamComplaint, Delivery, Open...) posted here
        # by mistake or on purpose: machine events, never work for an agent.
        return None
    raw = optional_str(payload.get("RawEmail"))
    if raw:
        return parse_email(raw.encode("utf-8", "surrogatepass"), received_at=delivery.received_at)
    if not any(key in payload for key in ("From", "FromFull", "Headers", "TextBody", "HtmlBody")):
        raise Unprocessable("not a Postmark inbound message: From, Headers or a body is required")
    headers = [
        (name, value)
        for item in _list(payload.get("Headers"))[:500]
        if isinstance(item, dict)
        and (name := optional_str(item.get("Name")))
        and (value := optional_str(item.get("Value")))
    ]
    mail = ParsedMail()
    sender = payload.get("FromFull")
    if isinstance(sender, dict) and optional_str(sender.get("Email")):
        mail.add("From", _address(optional_str(sender.get("Name")), str(sender["Email"])))
    mail.add("From", optional_str(payload.get("From")))
    for name, key in (("To", "To"), ("Cc", "Cc"), ("Subject", "Subject"), ("Date", "Date")):
        mail.add(name, optional_str(payload.get(key)))
    mail.add("Reply-To", optional_str(payload.get("ReplyTo")))
    # Postmark's own headers after its top-level fields; Message-ID lives in Headers.
    for name, value in headers:
        if name.lower() in ("from", "to", "subject", "date"):
            mail.add(name, value)
        else:
            mail.headers.append((name, value))
    text = payload.get("TextBody")
    html = payload.get("HtmlBody")
    mail.text = text if isinstance(text, str) else None
    mail.html = html if isinstance(html, str) else None
    for item in _list(payload.get("Attachments"))[:MAX_FORM_ATTACHMENTS]:
        if not isinstance(item, dict):
            continue
        name = optional_str(item.get("Name"))
        length = item.get("ContentLength")
        mail.attachments.append(
            Attachment(
                filename=short(name) if name else None,
                content_type=short(
                    optional_str(item.get("ContentType")) or "application/octet-stream"
                ),
                size=length if isinstance(length, int) and length >= 0 else None,
            )
        )
    contact = mail.to_contact(delivery.received_at)
    postmark_id = optional_str(payload.get("MessageID"))
    if postmark_id and len(contact.metadata) < 32:
        metadata = {**contact.metadata, "postmark_message_id": short(postmark_id)}
        contact = contact.model_copy(update={"metadata": metadata})
    return contact


def _address(name: str | None, email: str) -> str:
    if not name:
        return email
    quoted = name.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{quoted}" <{email}>'


def _header_block(raw: bytes) -> list[tuple[str, str]]:
    """Name/value pairs of a raw header block (SendGrid's `headers` field)."""
    text = decode_bytes(raw, "utf-8").replace("\r\n", "\n")
    pairs: list[tuple[str, str]] = []
    for line in text.split("\n"):
        if not line.strip():
            continue
        if line[:1] in (" ", "\t") and pairs:
            name, value = pairs[-1]
            pairs[-1] = (name, value + "\n" + line)
            continue
        name, sep, value = line.partition(":")
        if sep and _HEADER_NAME.match(name.strip()):
            pairs.append((name.strip(), value.strip()))
        if len(pairs) >= 500:
            break
    return pairs


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


# One route per provider, so each integration is configured (and documented) on its own path.
# They read the same formats as /v1/channels/email, which also accepts all of them.


class SendGridAdapter(EmailAdapter):
    name = "sendgrid"
    content_types = ("multipart/form-data",)
    summary = "SendGrid Inbound Parse webhook (raw or parsed mode)"

    def parse(self, delivery: RawDelivery) -> list[InboundContact]:
        return [parse_form_delivery(delivery)]


class MailgunAdapter(EmailAdapter):
    """Mailgun routes; its signature is checked too when OMNIROUTE_MAILGUN_SIGNING_KEY is set."""

    name = "mailgun"
    content_types = ("multipart/form-data", "application/x-www-form-urlencoded")
    summary = "Mailgun route (store/forward: parsed fields, or mime)"

    def verify(self, delivery: RawDelivery, settings: Settings) -> None:
        key = settings.gateway.mailgun_signing_key
        if key is not None and key.get_secret_value():
            verify_mailgun(
                delivery.body, delivery.media_type, delivery.content_type, key.get_secret_value()
            )

    def parse(self, delivery: RawDelivery) -> list[InboundContact]:
        return [parse_form_delivery(delivery)]


class PostmarkAdapter(EmailAdapter):
    name = "postmark"
    content_types = ("application/json",)
    summary = "Postmark inbound webhook (JSON)"

    def parse(self, delivery: RawDelivery) -> list[InboundContact]:
        contact = parse_postmark(delivery)
        return [contact] if contact is not None else []
