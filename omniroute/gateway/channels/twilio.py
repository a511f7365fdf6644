"""SMS and WhatsApp through Twilio Messaging webhooks.

Twilio posts application/x-www-form-urlencoded and signs each request with X-Twilio-Signature:
base64(HMAC-SHA1(auth token, URL + every parameter name and value, sorted)). The URL is the one
Twilio called, so behind a proxy we use the configured public URL (the endpoint builds
`delivery.url` from OMNIROUTE_PUBLIC_URL). Twilio's own validators accept the URL with and without
its default port, and so do we. For JSON bodies the URL carries `bodySHA256` and the signature
covers only the URL.

Inbound messages become contacts; status callbacks (MessageStatus without a body) and voice
webhooks create nothing. We answer with empty TwiML, so Twilio sends nothing back.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import urllib.parse
from collections.abc import Iterable

import structlog
from fastapi import Response
from pydantic import BaseModel

from omniroute.gateway.channels.base import (
    Authentication,
    RawDelivery,
    bounded_identifier,
    canonical_json,
    decode_form,
    sha256_hex,
    short,
)
from omniroute.shared.errors import Unauthorized, Unprocessable
from omniroute.shared.events import (
    MAX_TEXT_CHARS,
    Attachment,
    Channel,
    CustomerRef,
    InboundContact,
)
from omniroute.shared.identity import normalise_phone
from omniroute.shared.settings import Settings

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "x-twilio-signature"
EMPTY_TWIML = '<?xml version="1.0" encoding="UTF-8"?><Response/>'
MAX_MEDIA = 10  # Twilio delivers at most 10 media per message
# States of a message we sent; an inbound message is "received" (or has no status at all).
_INBOUND_STATES = {"", "received", "receiving"}
_FORM = "application/x-www-form-urlencoded"


def signature_for(auth_token: str, url: str, params: Iterable[tuple[str, str]] = ()) -> str:
    """The X-Twilio-Signature Twilio computes: names sorted, each name's values sorted, deduped."""
    values: dict[str, set[str]] = {}
    for name, value in params:
        values.setdefault(name, set()).add(value)
    data = url + "".join(name + value for name in sorted(values) for value in sorted(values[name]))
    digest = hmac.new(auth_token.encode(), data.encode("utf-8"), hashlib.sha1).digest()
    return base64.b64encode(digest).decode("ascii")


def url_variants(url: str) -> list[str]:
    """The URL as given, with its default port removed, and with it added."""
    parts = urllib.parse.urlsplit(url)
    default = {"https": 443, "http": 80}.get(parts.scheme)
    variants = [url]
    if default is None or not parts.hostname:
        return variants
    host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
    userinfo = parts.netloc.rpartition("@")[0]
    prefix = userinfo + "@" if userinfo else ""
    try:
        port = parts.port
    except ValueError:
        return variants
    if port == default or port is None:
        for netloc in (prefix + host, f"{prefix}{host}:{default}"):
            candidate = urllib.parse.urlunsplit(parts._replace(netloc=netloc))
            if candidate not in variants:
                variants.append(candidate)
    return variants


def valid_signature(
    auth_token: str,
    url: str,
    params: list[tuple[str, str]],
    signature: str,
    *,
    body: bytes | None = None,
) -> bool:
    """Twilio's validation: form parameters, or for a JSON body the bodySHA256 in the URL."""
    if body is not None:
        query = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(url).query))
        expected_hash = query.get("bodySHA256", "")
        actual = hashlib.sha256(body).hexdigest()
        if not expected_hash or not hmac.compare_digest(actual, expected_hash.lower()):
            return False
        params = []
    given = signature.strip().encode()
    return any(
        hmac.compare_digest(signature_for(auth_token, candidate, params).encode(), given)
        for candidate in url_variants(url)
    )


class TwilioAdapter:
    name = "twilio"
    authentication: Authentication = "signature"
    content_types = (_FORM, "application/json")
    summary = "Twilio Messaging webhook: SMS and WhatsApp (X-Twilio-Signature)"
    body_model: type[BaseModel] | None = None

    def verify(self, delivery: RawDelivery, settings: Settings) -> None:
        token = settings.gateway.twilio_auth_token
        if token is None or not token.get_secret_value():
            log.warning("gateway.twilio.no_auth_token")
            raise Unauthorized("webhook signatures cannot be verified: no auth token configured")
        given = delivery.headers.get(SIGNATURE_HEADER, "").strip()
        if not given:
            raise Unauthorized("missing X-Twilio-Signature")
        if delivery.media_type == "application/json":
            ok = valid_signature(
                token.get_secret_value(), delivery.url, [], given, body=delivery.body
            )
        else:
            ok = valid_signature(
                token.get_secret_value(), delivery.url, decode_form(delivery.body), given
            )
        if not ok:
            log.info("gateway.twilio.bad_signature")
            raise Unauthorized("invalid X-Twilio-Signature")

    def handshake(self, delivery: RawDelivery, settings: Settings) -> Response | None:
        return None

    def reply(self, contacts: list[InboundContact]) -> Response | None:
        # Any other body would be sent to the customer as a reply (or break the call).
        return Response(EMPTY_TWIML, media_type="text/xml")

    def parse(self, delivery: RawDelivery) -> list[InboundContact]:
        if delivery.media_type != _FORM:
            # JSON deliveries are Twilio's event streams, not inbound messages.
            return []
        fields: dict[str, str] = {}
        for key, value in decode_form(delivery.body):
            fields.setdefault(key, value)
        contact = parse_message(fields, delivery)
        return [contact] if contact is not None else []


def parse_message(fields: dict[str, str], delivery: RawDelivery) -> InboundContact | None:
    """One inbound message as a contact; None for status callbacks and voice webhooks."""
    sid = fields.get("MessageSid") or fields.get("SmsMessageSid") or fields.get("SmsSid") or ""
    status = (fields.get("MessageStatus") or fields.get("SmsStatus") or "").strip().lower()
    if not sid.strip():
        if fields.get("CallSid"):
            return None  # a voice webhook: transcripts arrive on the phone channel
        raise Unprocessable("not a Twilio message webhook: MessageSid is missing")
    if status not in _INBOUND_STATES:
        return None  # a status callback for a message we sent
    sender = fields.get("From", "").strip()
    if not sender:
        raise Unprocessable("the message has no From")
    body = fields.get("Body", "")
    attachments = _media(fields)
    location = _location(fields)
    if location and not body.strip():
        body = location  # a shared WhatsApp location arrives with an empty Body
    if "Body" not in fields and not attachments and not location:
        return None  # a status callback without MessageStatus (older API versions)
    if not body.strip() and not attachments:
        return None
    whatsapp = sender.lower().startswith("whatsapp:")
    channel = Channel.WHATSAPP if whatsapp else Channel.SMS
    to = fields.get("To", "").strip()
    phone = normalise_phone(sender)
    provider_ids = {"twilio_from": short(sender)}
    wa_id = fields.get("WaId", "").strip()
    if wa_id:
        provider_ids["wa_id"] = short(wa_id)
    # The conversation is one customer with one of our numbers.
    ours = normalise_phone(to) or to or "-"
    theirs = phone or sender
    metadata = {"provider": "twilio", "message_sid": short(sid)}
    if to:
        metadata["to"] = short(to)
    for key, name in (
        ("AccountSid", "account_sid"),
        ("MessagingServiceSid", "messaging_service_sid"),
        ("OptOutType", "opt_out"),
        ("OriginalRepliedMessageSid", "reply_to"),
        ("ButtonPayload", "button_payload"),
    ):
        value = fields.get(key, "").strip()
        if value:
            metadata[name] = short(value)
    external_id = sid.strip() or "sha256:" + sha256_hex(canonical_json(fields))
    profile = fields.get("ProfileName", "").strip() or None
    return InboundContact.build(
        channel=channel,
        external_id=bounded_identifier(external_id),
        conversation_key=bounded_identifier(f"{ours}:{theirs}"),
        received_at=delivery.received_at,
        customer=CustomerRef(
            name=short(profile) if profile else None, phone=phone, provider_ids=provider_ids
        ),
        text=body.strip()[:MAX_TEXT_CHARS],
        attachments=attachments,
        metadata=metadata,
    )


def _location(fields: dict[str, str]) -> str | None:
    latitude, longitude = fields.get("Latitude", "").strip(), fields.get("Longitude", "").strip()
    if not (latitude and longitude):
        return None
    label = ", ".join(
        value for key in ("Label", "Address") if (value := fields.get(key, "").strip())
    )
    where = f"{latitude}, {longitude}"
    return f"Location: {label} ({where})" if label else f"Location: {where}"


def _media(fields: dict[str, str]) -> list[Attachment]:
    try:
        count = int(fields.get("NumMedia", "0") or 0)
    except ValueError:
        count = 0
    found: list[Attachment] = []
    for index in range(max(0, min(count, MAX_MEDIA))):
        url = fields.get(f"MediaUrl{index}", "").strip()
        if not url:
            continue
        content_type = fields.get(f"MediaContentType{index}", "").strip()
        found.append(
            Attachment(
                content_type=short(content_type or "application/octet-stream"),
                url=url if len(url) <= 2048 else None,
                # The media's sid is the last path segment of its URL.
                provider_id=short(url.rstrip("/").rsplit("/", 1)[-1]),
            )
        )
    return found
