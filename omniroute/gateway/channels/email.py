"""E-mail: raw RFC 822 messages, as an MTA, SMTP listener or inbound-parse hook hands them over.

Mail in the wild is broken in every way a parser can imagine, so everything here degrades
instead of failing: undecodable headers fall back to their raw text, unknown charsets to a
lenient decode, malformed MIME to whatever structure the stdlib recovered. Parsing is bounded in
time and memory: MIME parts are counted as the parser creates them and feeding stops at a limit,
and the tree is never walked deeper than MAX_DEPTH.
"""

from __future__ import annotations

import codecs
import email.utils
import re
from collections.abc import Iterator
from datetime import UTC, datetime
from email.feedparser import BytesFeedParser
from email.header import decode_header
from email.message import EmailMessage, Message
from email.policy import EmailPolicy
from typing import Any

import structlog
from fastapi import Response
from inscriptis import get_text
from pydantic import BaseModel

from omniroute.gateway.channels.base import (
    Authentication,
    RawDelivery,
    bounded_identifier,
    sha256_hex,
    short,
)
from omniroute.gateway.channels.replies import latest_reply, strip_signature
from omniroute.shared.errors import BadRequest
from omniroute.shared.events import (
    MAX_TEXT_CHARS,
    Attachment,
    Channel,
    CustomerRef,
    InboundContact,
)
from omniroute.shared.reference import find_reference
from omniroute.shared.settings import Settings

log = structlog.get_logger(__name__)

MAX_PARTS = 200
MAX_DEPTH = 12
MAX_ATTACHMENTS = 100
# HTML beyond this is not worth converting: the customer's words are at the top, and the
# converter's cost grows with the markup, which an attacker controls.
MAX_HTML_CHARS = 300_000
_FEED_CHUNK = 64 * 1024
# The stdlib's structured header parser is quadratic in the header's length (a 200 KB subject
# of encoded words costs a second), so values are cut before they are parsed.
MAX_HEADER_CHARS = 8192

# Charsets seen in real mail that Python does not know by these names.
_CHARSET_ALIASES = {
    "x-mac-cyrillic": "mac_cyrillic",
    "x-mac-roman": "mac_roman",
    "macintosh": "mac_roman",
    "ks_c_5601-1987": "cp949",
    "ks_c_5601": "cp949",
    "ks_c_5601-1989": "cp949",
    "euc-kr": "cp949",
    "gb2312": "gb18030",
    "gbk": "gb18030",
    "x-gbk": "gb18030",
    "iso-8859-8-i": "iso-8859-8",
    "iso-8859-6-i": "iso-8859-6",
    "windows-874": "cp874",
    "x-sjis": "shift_jis",
    "shift-jis": "shift_jis",
    "x-user-defined": "cp1252",
    "ansi_x3.4-1968": "ascii",
    "us-ascii": "cp1252",  # "ASCII" mail routinely carries 8-bit bytes
    "ascii": "cp1252",
    "iso-8859-1": "cp1252",  # what senders mean by latin-1 (smart quotes in 0x80-0x9f)
    "latin1": "cp1252",
}

_MESSAGE_ID = re.compile(r"<([^<>\s]{1,500})>")
# Only the fixed forms mail clients put in front of an auto-reply's subject, followed by ":" or
# nothing: a flagged message is recorded but not routed, so "Ausencia de respuesta" or
# "Out of office hours support?" from a real customer must never match.
_OUT_OF_OFFICE = re.compile(
    r"^\W*(?:"
    r"automatic reply|auto[- ]?reply|autoreply|auto[- ]?response|"
    r"out of (?:the )?office(?: (?:reply|auto[- ]?reply|notice))?|"
    r"respuesta autom[aá]tica|fuera de (?:la )?oficina|r[eé]ponse automatique"
    r")\s*(?::|$)",
    re.IGNORECASE,
)
_BOUNCE_SUBJECT = re.compile(
    r"^\W*(?:undeliver(?:able|ed)|delivery status notification|delivery (?:has )?failed|"
    r"mail delivery (?:failed|failure|subsystem)|returned mail|failure notice|"
    r"delivery failure|non[- ]?delivery|message not delivered|warning: could not send)",
    re.IGNORECASE,
)
_DAEMON_SENDERS = ("mailer-daemon@", "postmaster@", "mail-daemon@", "mailerdaemon@")
_REPORT_PARTS = {
    "message/delivery-status": "bounce",
    "message/feedback-report": "feedback-report",
    "message/disposition-notification": "read-receipt",
}
_PRECEDENCE_FLAGS = {"bulk": "bulk", "junk": "junk", "auto_reply": "auto-replied"}


class _BoundedPolicy(EmailPolicy):
    """policy.default, except that header values are cut to MAX_HEADER_CHARS before parsing."""

    def header_fetch_parse(self, name: str, value: str) -> Any:
        if isinstance(value, str) and not hasattr(value, "name") and len(value) > MAX_HEADER_CHARS:
            value = value[:MAX_HEADER_CHARS]
        return super().header_fetch_parse(name, value)


POLICY = _BoundedPolicy()


class _CountingFactory:
    """The parser's message factory, counting the parts it creates so we can stop feeding."""

    def __init__(self) -> None:
        self.parts = 0

    def __call__(self, policy: Any = POLICY) -> EmailMessage:
        self.parts += 1
        return EmailMessage(policy=policy)


def parse_message(raw: bytes) -> tuple[EmailMessage, bool]:
    """Parse with policy.default, bounded: returns the message and whether it was truncated."""
    factory = _CountingFactory()
    parser = BytesFeedParser(_factory=factory, policy=POLICY)
    truncated = False
    for start in range(0, len(raw), _FEED_CHUNK):
        parser.feed(raw[start : start + _FEED_CHUNK])
        if factory.parts > MAX_PARTS:
            # close() finishes the tree from what was fed; the rest is left unread.
            truncated = True
            break
    message = parser.close()
    assert isinstance(message, EmailMessage)
    return message, truncated


class EmailAdapter:
    name = "email"
    authentication: Authentication = "api_key"
    content_types: tuple[str, ...] = (
        "message/rfc822",
        "multipart/form-data",
        "application/x-www-form-urlencoded",
        "application/json",
    )
    summary = (
        "Ingest one e-mail: raw RFC 822, or an inbound-parse webhook (SendGrid, Mailgun, "
        "Postmark; raw or parsed mode)"
    )
    body_model: type[BaseModel] | None = None

    def verify(self, delivery: RawDelivery, settings: Settings) -> None:
        return None

    def reply(self, contacts: list[InboundContact]) -> Response | None:
        return None

    def handshake(self, delivery: RawDelivery, settings: Settings) -> Response | None:
        return None

    def parse(self, delivery: RawDelivery) -> list[InboundContact]:
        # Imported here: the provider formats are built on parse_email from this module.
        from omniroute.gateway.channels import inbound_parse

        media_type = delivery.media_type
        if media_type in ("multipart/form-data", "application/x-www-form-urlencoded"):
            return [inbound_parse.parse_form_delivery(delivery)]
        if media_type == "application/json":
            return [inbound_parse.parse_postmark(delivery)]
        return [parse_email(delivery.body, received_at=delivery.received_at)]


def parse_email(raw: bytes, *, received_at: datetime | None = None) -> InboundContact:
    """Normalise one raw message; never raises on malformed mail, only on an empty body."""
    if not raw.strip():
        raise BadRequest("the message is empty")
    try:
        message, truncated = parse_message(raw)
    except RecursionError:
        # Defensive: the part limit keeps nesting shallow, but a parser bug must not be a 500.
        message, truncated = _headers_only(raw), True
    metadata: dict[str, str] = {}
    if truncated:
        metadata["mime_truncated"] = "true"
    if message.defects:
        metadata["mime_defects"] = str(len(message.defects))

    message_id = _first_id(_header(message, "message-id"))
    external_id = message_id or "sha256:" + sha256_hex(raw)
    references = _all_ids(_header(message, "references"))
    in_reply_to = _first_id(_header(message, "in-reply-to"))
    conversation_key = (references[0] if references else None) or in_reply_to or external_id

    name, address = _sender(message)
    subject = _collapse(_header(message, "subject"))[:2000] or None
    text, quoted = latest_reply(_body_text(message), subject=subject)
    text, signed = strip_signature(text, sender_name=name, sender_email=address)
    attachments = _attachments(message)
    flag = auto_submitted(message, subject or "", address or "")
    if flag:
        metadata["auto_submitted"] = flag
    if quoted:
        metadata["quoted_text_removed"] = "true"
    if signed:
        metadata["signature_removed"] = "true"
    reference = find_reference(subject or "")
    if reference and not (references or in_reply_to):
        # The headers were lost (webmail, a forward, a new message): the subject still threads.
        metadata["reference"] = reference
    if message_id:
        metadata["message_id"] = short(message_id)
    if in_reply_to:
        metadata["in_reply_to"] = short(in_reply_to)
    to = _collapse(_header(message, "to"))
    if to:
        metadata["to"] = short(to)

    provider_ids = {"email": short(address)} if address else {}
    return InboundContact.build(
        channel=Channel.EMAIL,
        external_id=bounded_identifier(external_id),
        conversation_key=bounded_identifier(conversation_key),
        received_at=received_at,
        occurred_at=_date(_header(message, "date")),
        customer=CustomerRef(
            name=short(name) if name else None,
            email=short(address) if address else None,
            provider_ids=provider_ids,
        ),
        subject=subject,
        text=text[:MAX_TEXT_CHARS],
        attachments=attachments,
        metadata=metadata,
    )


def auto_submitted(message: Message, subject: str, sender: str) -> str | None:
    """Why this message is machine-sent (the router records but does not route it), or None."""
    content_type = message.get_content_type()
    if content_type in _REPORT_PARTS:
        # A bare report part, its multipart/report wrapper lost on the way.
        return _REPORT_PARTS[content_type]
    if content_type == "multipart/report":
        report_type = (message.get_param("report-type") or "").__str__().lower()
        if report_type == "delivery-status":
            return "bounce"
        if report_type == "feedback-report":
            return "feedback-report"
        if report_type == "disposition-notification":
            return "read-receipt"
        return "bounce"
    value = _header(message, "auto-submitted").strip().lower()
    if value and value != "no":
        return "auto-replied" if value.startswith("auto-replied") else value.split(";")[0][:64]
    for name in ("x-autoreply", "x-autorespond", "x-autoresponder"):
        if _header(message, name).strip():
            return "auto-replied"
    precedence = _header(message, "precedence").strip().lower()
    if precedence in _PRECEDENCE_FLAGS:
        return _PRECEDENCE_FLAGS[precedence]
    if sender.startswith(_DAEMON_SENDERS) and _BOUNCE_SUBJECT.search(subject):
        return "bounce"
    if _OUT_OF_OFFICE.search(subject):
        return "auto-replied"
    return None


# Headers


def _header(message: Message, name: str) -> str:
    """A header as decoded text; its raw form (best-effort decoded) when the parser chokes."""
    try:
        value = message.get(name)
        if value is None:
            return ""
        text = clean(str(value))
        # Encoded words the stdlib could not decode (unknown charset) are left as "=?...?=" or
        # replaced by U+FFFD; our own decoder knows more charset names.
        if "=?" not in text and "\ufffd" not in text:
            return text
    except Exception:
        pass
    for key, raw in message.raw_items():
        if key.lower() == name:
            return clean(_decode_rfc2047(str(raw)[:MAX_HEADER_CHARS]))
    return ""


def clean(text: str) -> str:
    """Valid Unicode from parser output: raw 8-bit bytes arrive as surrogate escapes.

    Unencoded 8-bit headers are mostly UTF-8 (RFC 6532), otherwise usually Windows-1252.
    """
    if not any("\ud800" <= char <= "\udfff" for char in text):
        return text
    data = text.encode("utf-8", "surrogateescape") if _escapes_only(text) else b""
    if data:
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError:
            return data.decode("cp1252", errors="replace")
    return text.encode("utf-8", "replace").decode("utf-8")


def _escapes_only(text: str) -> bool:
    """Whether every surrogate in text is a surrogateescape (U+DC80..U+DCFF) byte."""
    return all(not ("\ud800" <= char <= "\udfff") or "\udc80" <= char <= "\udcff" for char in text)


def _decode_rfc2047(value: str) -> str:
    """Decode encoded words with our charset aliases, which the stdlib does not know."""
    try:
        chunks = decode_header(value)
    except Exception:
        return value
    decoded: list[str] = []
    for chunk, charset in chunks:
        if isinstance(chunk, bytes):
            decoded.append(decode_bytes(chunk, charset))
        else:
            decoded.append(chunk)
    return "".join(decoded)


def _collapse(value: str) -> str:
    return " ".join(value.split())


def _first_id(value: str) -> str | None:
    ids = _all_ids(value)
    return ids[0] if ids else None


def _all_ids(value: str) -> list[str]:
    """Message ids in a Message-ID/References/In-Reply-To header, with or without brackets."""
    if not value.strip():
        return []
    found = _MESSAGE_ID.findall(value)
    if found:
        return [f"<{item}>" for item in found]
    # Some senders omit the brackets; a lone token is still a usable id.
    tokens = [token for token in value.split() if "@" in token]
    return [f"<{token.strip('<>')}>" for token in tokens[:64]]


def _sender(message: Message) -> tuple[str | None, str | None]:
    try:
        parsed = _sender_parsed(message)
    except Exception:
        parsed = None
    if parsed is not None:
        return parsed
    raw = _header(message, "from")
    name, address = email.utils.parseaddr(raw)
    if address and "@" in address:
        return (_collapse(name) or None), address.lower()
    return (_collapse(raw) or None), None


def _sender_parsed(message: Message) -> tuple[str | None, str | None] | None:
    header = message.get("from")
    for address in getattr(header, "addresses", ()) if header is not None else ():
        spec = clean(address.addr_spec or "")
        if spec and "@" in spec:
            return (clean(address.display_name) or None), spec.lower()
    return None


def _date(value: str) -> datetime | None:
    if not value.strip():
        return None
    try:
        parsed = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError, OverflowError):
        return None
    if parsed is None:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _headers_only(raw: bytes) -> EmailMessage:
    from email.parser import BytesHeaderParser

    message = BytesHeaderParser(policy=POLICY).parsebytes(raw)
    assert isinstance(message, EmailMessage)
    message.set_payload("")
    return message


# Body and attachments


def _parts(message: Message) -> Iterator[tuple[Message, bool]]:
    """Leaf parts in order, with whether each sits inside an attached (forwarded) message."""
    stack: list[tuple[Message, int, bool]] = [(message, 0, False)]
    seen = 0
    while stack:
        part, depth, enclosed = stack.pop()
        seen += 1
        if seen > MAX_PARTS:
            return
        if part.is_multipart():
            if depth >= MAX_DEPTH:
                continue
            payload = part.get_payload()
            if not isinstance(payload, list):
                continue
            inner = enclosed or part.get_content_type() == "message/rfc822"
            if part.get_content_type() == "message/rfc822":
                yield part, enclosed
            stack.extend(
                (child, depth + 1, inner)
                for child in reversed(payload)
                if isinstance(child, Message)
            )
        else:
            yield part, enclosed


def _is_attachment(part: Message) -> bool:
    try:
        disposition = part.get_content_disposition()
    except Exception:
        disposition = None
    if disposition == "attachment":
        return True
    maintype = part.get_content_maintype()
    if maintype in ("text", "multipart"):
        return disposition == "inline" and bool(_filename(part))
    return True


def _body_text(message: Message) -> str:
    plain: list[str] = []
    html: str | None = None
    for part, enclosed in _parts(message):
        if enclosed or part.is_multipart() or _is_attachment(part):
            continue
        content_type = part.get_content_type()
        if content_type == "text/plain":
            text = _decode_text(part)
            if text.strip():
                plain.append(text)
        elif content_type == "text/html" and html is None:
            html = _decode_text(part)
        if sum(len(chunk) for chunk in plain) > MAX_TEXT_CHARS:
            break
    if plain:
        return _tidy("\n\n".join(plain))
    if html:
        return _tidy(html_to_text(html))
    return ""


def html_to_text(html: str) -> str:
    try:
        return get_text(html[:MAX_HTML_CHARS])
    except (RecursionError, ValueError, AssertionError) as exc:
        log.warning("gateway.email.html_unconvertible", error=type(exc).__name__)
        return re.sub(r"<[^>]*>", " ", html[:MAX_HTML_CHARS])


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n").replace("\x00", "")
    lines = [line.rstrip() for line in text.split("\n")]
    return re.sub(r"\n{3,}", "\n\n", "\n".join(lines)).strip()


def _decode_text(part: Message) -> str:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        payload = None
    if payload is None:
        raw = part.get_payload()
        return clean(raw) if isinstance(raw, str) else ""
    if not isinstance(payload, bytes):
        return str(payload)
    try:
        charset = part.get_content_charset()
    except Exception:
        charset = None
    return decode_bytes(payload, charset)


def decode_bytes(payload: bytes, charset: str | None) -> str:
    """Decode with the declared charset when Python knows it, else the likeliest guesses."""
    codec = _codec(charset)
    if codec is not None:
        try:
            return payload.decode(codec)
        except UnicodeDecodeError:
            pass
    # Pure ASCII also "decodes" as UTF-8, which would hide escape-based charsets (ISO-2022).
    if not payload.isascii():
        try:
            return payload.decode("utf-8")
        except UnicodeDecodeError:
            pass
    return payload.decode(codec or "cp1252", errors="replace")


def _codec(charset: str | None) -> str | None:
    if not charset:
        return None
    name = charset.strip().strip("\"'").lower()
    name = _CHARSET_ALIASES.get(name, name)
    try:
        return codecs.lookup(name).name
    except (LookupError, ValueError):
        return None


def _filename(part: Message) -> str | None:
    try:
        name = part.get_filename()
    except Exception:
        name = None
    if not name:
        for header, param in (("content-disposition", "filename"), ("content-type", "name")):
            raw = _raw_param(part, header, param)
            if raw:
                name = raw
                break
    if not name:
        location = _header(part, "content-location").strip()
        name = location.rsplit("/", 1)[-1] or None
    if not name:
        return None
    return _collapse(clean(_decode_rfc2047(str(name)))) or None


def _raw_param(part: Message, header: str, param: str) -> str | None:
    for key, value in part.raw_items():
        if key.lower() != header:
            continue
        match = re.search(rf"(?i)\b{param}\s*=\s*(\"[^\"]*\"|[^;]+)", str(value))
        if match:
            return match.group(1).strip().strip('"') or None
    return None


def _attachments(message: Message) -> list[Attachment]:
    found: list[Attachment] = []
    for part, enclosed in _parts(message):
        if enclosed:
            continue
        is_forward = part.get_content_type() == "message/rfc822"
        if not is_forward and (part.is_multipart() or not _is_attachment(part)):
            continue
        found.append(
            Attachment(
                filename=short(name) if (name := _filename(part)) else None,
                content_type=short(part.get_content_type()),
                size=None if is_forward else _size(part),
            )
        )
        if len(found) >= MAX_ATTACHMENTS:
            break
    return found


def _size(part: Message) -> int | None:
    try:
        payload = part.get_payload(decode=True)
    except Exception:
        return None
    return len(payload) if isinstance(payload, bytes) else None
