"""What every channel adapter is: one Protocol, one registry, and the helpers they share.

Adding a channel is one new module implementing `ChannelAdapter` and one line in
`omniroute.gateway.channels.default_registry`; the HTTP routes are generated from the registry.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal, Protocol, runtime_checkable

from fastapi import Response
from pydantic import BaseModel, ValidationError

from omniroute.shared.errors import BadRequest, Unprocessable
from omniroute.shared.events import InboundContact
from omniroute.shared.settings import Settings

Authentication = Literal["api_key", "signature"]

# Provider ids and keys longer than an event Identifier allows are replaced by their digest, so
# a hostile provider id can neither break validation nor fork the deterministic ids.
MAX_IDENTIFIER = 512
MAX_SHORT_TEXT = 512


@dataclass(frozen=True, slots=True)
class RawDelivery:
    """One inbound HTTP delivery as an adapter sees it: the raw bytes, never re-serialised."""

    body: bytes
    content_type: str
    received_at: datetime
    headers: Mapping[str, str] = field(default_factory=dict)  # lower-case names
    query: Mapping[str, str] = field(default_factory=dict)
    url: str = ""

    @property
    def media_type(self) -> str:
        """The content type without parameters, lower-cased (`application/json`)."""
        return self.content_type.split(";", 1)[0].strip().lower()


@runtime_checkable
class ChannelAdapter(Protocol):
    """Normalises one channel's deliveries into inbound contacts."""

    @property
    def name(self) -> str:
        """The path segment under /v1/channels/."""
        ...

    @property
    def authentication(self) -> Authentication:
        """`api_key`: an ingest bearer key; `signature`: the provider signs each delivery."""
        ...

    @property
    def content_types(self) -> tuple[str, ...]:
        """Media types accepted on POST; anything else is answered 415."""
        ...

    @property
    def summary(self) -> str:
        """One line for the API docs."""
        ...

    @property
    def body_model(self) -> type[BaseModel] | None:
        """The request body documented in /docs; None for a provider's or a raw format."""
        ...

    def verify(self, delivery: RawDelivery, settings: Settings) -> None:
        """Raise Unauthorized unless the delivery is authentic (no-op for api_key channels)."""
        ...

    def handshake(self, delivery: RawDelivery, settings: Settings) -> Response | None:
        """Answer a provider's GET verification challenge, or None when there is none."""
        ...

    def parse(self, delivery: RawDelivery) -> list[InboundContact]:
        """The contacts in the delivery (may be none); BadRequest/Unprocessable if malformed."""
        ...

    def reply(self, contacts: list[InboundContact]) -> Response | None:
        """The answer the provider expects once the contacts are durable (e.g. Twilio's TwiML);
        None for the default JSON receipts."""
        ...


class AdapterDefaults:
    """What most adapters do for the optional steps: no signature of their own (an ingest key
    guards them), no handshake, and the default JSON receipts as the answer."""

    def verify(self, delivery: RawDelivery, settings: Settings) -> None:
        return None

    def handshake(self, delivery: RawDelivery, settings: Settings) -> Response | None:
        return None

    def reply(self, contacts: list[InboundContact]) -> Response | None:
        return None


class AdapterRegistry:
    """Adapters by name; the endpoints iterate it to generate one route set per channel."""

    def __init__(self, adapters: Iterable[ChannelAdapter] = ()) -> None:
        self._adapters: dict[str, ChannelAdapter] = {}
        for adapter in adapters:
            self.register(adapter)

    def register(self, adapter: ChannelAdapter) -> None:
        if not adapter.name or "/" in adapter.name:
            raise ValueError(f"invalid channel name {adapter.name!r}")
        if adapter.name in self._adapters:
            raise ValueError(f"channel {adapter.name!r} is already registered")
        self._adapters[adapter.name] = adapter

    def get(self, name: str) -> ChannelAdapter | None:
        return self._adapters.get(name)

    def __iter__(self) -> Iterator[ChannelAdapter]:
        return iter(self._adapters.values())

    def __len__(self) -> int:
        return len(self._adapters)

    def names(self) -> list[str]:
        return list(self._adapters)


# Helpers shared by the adapters.


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def canonical_json(value: object) -> bytes:
    """A stable serialisation, so a re-sent payload hashes to the same fallback id."""
    return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def bounded_identifier(value: str, *, prefix: str = "sha256:") -> str:
    """The id itself when it fits an event Identifier, else a stable digest of it."""
    value = value.strip()
    if 0 < len(value) <= MAX_IDENTIFIER:
        return value
    return prefix + sha256_hex(value.encode("utf-8", "surrogatepass"))


def short(value: object, limit: int = MAX_SHORT_TEXT) -> str:
    """A metadata-safe string (events cap short texts at 512 characters)."""
    text = str(value)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def load_json(delivery: RawDelivery) -> Any:
    return decode_json(delivery.body)


def decode_json(body: bytes) -> Any:
    """The body as JSON; a UTF-8 BOM is tolerated, anything unparseable is a 400."""
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    if not body.strip():
        raise BadRequest("the body is empty")
    try:
        return json.loads(body.decode("utf-8"))
    except UnicodeDecodeError as exc:
        raise BadRequest("the body is not valid UTF-8") from exc
    except (json.JSONDecodeError, RecursionError) as exc:
        raise BadRequest("the body is not valid JSON") from exc


def decode_form(body: bytes) -> list[tuple[str, str]]:
    """An application/x-www-form-urlencoded body as ordered pairs; invalid UTF-8 is a 400."""
    if body.startswith(b"\xef\xbb\xbf"):
        body = body[3:]
    try:
        text = body.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise BadRequest("the form body is not valid UTF-8") from exc
    try:
        return urllib.parse.parse_qsl(
            text, keep_blank_values=True, strict_parsing=False, max_num_fields=2000
        )
    except ValueError as exc:
        raise BadRequest("the form body is malformed or has too many fields") from exc


def require_object(value: Any, what: str = "the body") -> dict[str, Any]:
    if not isinstance(value, dict):
        raise Unprocessable(f"{what} must be a JSON object")
    return value


def optional_str(value: Any) -> str | None:
    """A provider string field, tolerating numbers; empty becomes None."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int | float | str):
        text = str(value).strip()
        return text or None
    return None


def from_epoch(value: Any, *, millis: bool = False) -> datetime | None:
    """A provider timestamp in epoch seconds or milliseconds; junk becomes None, not an error."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    if millis:
        number /= 1000.0
    try:
        return datetime.fromtimestamp(number, UTC)
    except (OverflowError, OSError, ValueError):
        return None


def parse_iso(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value.strip():
        return None
    text = value.strip()
    if text.endswith(("Z", "z")):
        text = text[:-1] + "+00:00"
    try:
        parsed = datetime.fromisoformat(text)
    except ValueError:
        return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def validation_errors(exc: ValidationError) -> list[dict[str, object]]:
    """Pydantic errors in the shape the shared 422 handler uses, without echoing input values."""
    return [
        {"loc": list(err.get("loc", ())), "msg": err.get("msg", ""), "type": err.get("type")}
        for err in exc.errors()[:50]
    ]
