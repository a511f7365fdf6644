"""X (Twitter) Account Activity API webhooks: direct messages, mentions and replies.

X registers the webhook with a CRC challenge (GET ?crc_token=...), answered with
base64(HMAC-SHA256(consumer secret, crc_token)), and signs every POST with
`x-twitter-webhooks-signature: sha256=<base64 HMAC-SHA256 of the raw body>`. One delivery holds
the events of one subscribed account (`for_user_id`): `direct_message_events` become private
contacts and `tweet_create_events` (mentions, replies, quotes) public ones. Our own account's
posts and messages, retweets, likes, follows, typing and read indicators create nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections import Counter
from datetime import datetime
from typing import Any

import structlog
from fastapi import Response
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from omniroute.gateway.channels.base import (
    AdapterDefaults,
    Authentication,
    RawDelivery,
    bounded_identifier,
    canonical_json,
    from_epoch,
    load_json,
    optional_str,
    require_object,
    sha256_hex,
    short,
)
from omniroute.shared.errors import BadRequest, Forbidden, Unauthorized, Unprocessable
from omniroute.shared.events import (
    MAX_TEXT_CHARS,
    Attachment,
    Channel,
    CustomerRef,
    InboundContact,
    Visibility,
)
from omniroute.shared.identity import normalise_handle
from omniroute.shared.settings import Settings

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "x-twitter-webhooks-signature"
_MAX_CRC = 512
_MEDIA_TYPES = {"photo": "image/*", "animated_gif": "image/gif", "video": "video/*"}
# Keys of an Account Activity delivery that carry nothing to answer.
_IGNORED_KEYS = (
    "favorite_events",
    "follow_events",
    "unfollow_events",
    "block_events",
    "unblock_events",
    "mute_events",
    "unmute_events",
    "user_event",
    "direct_message_indicate_typing_events",
    "direct_message_mark_read_events",
    "tweet_delete_events",
)


def signature_for(consumer_secret: str, data: bytes) -> str:
    """`sha256=` + base64(HMAC-SHA256(secret, data)): both the CRC answer and the POST header."""
    digest = hmac.new(consumer_secret.encode(), data, hashlib.sha256).digest()
    return "sha256=" + base64.b64encode(digest).decode("ascii")


class XAdapter(AdapterDefaults):
    name = "x"
    authentication: Authentication = "signature"
    content_types = ("application/json",)
    summary = "X (Twitter) Account Activity webhook: direct messages and mentions"
    body_model: type[BaseModel] | None = None

    def verify(self, delivery: RawDelivery, settings: Settings) -> None:
        secret = _secret(settings)
        given = delivery.headers.get(SIGNATURE_HEADER, "").strip()
        if not given:
            raise Unauthorized("missing x-twitter-webhooks-signature")
        scheme, _, digest = given.partition("=")
        if scheme.lower() != "sha256" or not digest:
            raise Unauthorized("x-twitter-webhooks-signature must be sha256=<base64>")
        expected = signature_for(secret, delivery.body)
        if not hmac.compare_digest(expected.encode(), ("sha256=" + digest).encode()):
            log.info("gateway.x.bad_signature")
            raise Unauthorized("invalid x-twitter-webhooks-signature")

    def handshake(self, delivery: RawDelivery, settings: Settings) -> Response | None:
        token = delivery.query.get("crc_token")
        if not token:
            raise BadRequest("expected a crc_token query parameter")
        if len(token) > _MAX_CRC:
            raise BadRequest("crc_token is too long")
        try:
            secret = _secret(settings)
        except Unauthorized as exc:
            raise Forbidden("the CRC cannot be answered: no consumer secret configured") from exc
        return JSONResponse({"response_token": signature_for(secret, token.encode())})

    def parse(self, delivery: RawDelivery) -> list[InboundContact]:
        payload = require_object(load_json(delivery))
        owner = optional_str(payload.get("for_user_id"))
        known = ("direct_message_events", "tweet_create_events", *_IGNORED_KEYS)
        if owner is None and not any(key in payload for key in known):
            raise Unprocessable("not an Account Activity delivery: for_user_id is missing")
        ignored: Counter[str] = Counter()
        for key in _IGNORED_KEYS:
            if key in payload:
                ignored[key] += 1
        users = _dict(payload.get("users"))
        contacts: list[InboundContact] = []
        for event in _dicts(payload.get("direct_message_events")):
            contact = _direct_message(event, owner, users, delivery, ignored)
            if contact is not None:
                contacts.append(contact)
        for tweet in _dicts(payload.get("tweet_create_events")):
            contact = _tweet(tweet, owner, delivery, ignored)
            if contact is not None:
                contacts.append(contact)
        if ignored:
            log.debug("gateway.x.events_ignored", **dict(ignored))
        return contacts


def _secret(settings: Settings) -> str:
    secret = settings.gateway.x_consumer_secret
    if secret is None or not secret.get_secret_value():
        # Never accept unsigned deliveries, even when misconfigured.
        log.warning("gateway.x.no_consumer_secret")
        raise Unauthorized("webhook signatures cannot be verified: no consumer secret configured")
    return secret.get_secret_value()


def _direct_message(
    event: dict[str, Any],
    owner: str | None,
    users: dict[str, Any],
    delivery: RawDelivery,
    ignored: Counter[str],
) -> InboundContact | None:
    if event.get("type") != "message_create":
        ignored[f"dm_{str(event.get('type'))[:40]}"] += 1
        return None
    create = _dict(event.get("message_create"))
    sender = optional_str(create.get("sender_id"))
    recipient = optional_str(_dict(create.get("target")).get("recipient_id"))
    if not sender or (owner is not None and sender == owner):
        ignored["dm_own"] += 1  # what our account sent, echoed back
        return None
    data = _dict(create.get("message_data"))
    text = optional_str(data.get("text")) or ""
    attachments: list[Attachment] = []
    attachment = _dict(data.get("attachment"))
    media = _dict(attachment.get("media"))
    if media:
        attachments.append(_media(media))
    if not text and not attachments:
        ignored["dm_empty"] += 1
        return None
    metadata = {"event": "direct_message"}
    account = owner or recipient
    if account:
        metadata["account_id"] = short(account)
    quick_reply = optional_str(_dict(data.get("quick_reply_response")).get("metadata"))
    if quick_reply:
        metadata["quick_reply"] = short(quick_reply)
    profile = _dict(users.get(sender))
    external_id = optional_str(event.get("id")) or "sha256:" + sha256_hex(canonical_json(event))
    return InboundContact.build(
        channel=Channel.X,
        external_id=bounded_identifier(external_id),
        conversation_key=bounded_identifier(f"dm:{account or '-'}:{sender}"),
        received_at=delivery.received_at,
        occurred_at=from_epoch(event.get("created_timestamp"), millis=True),
        customer=_customer(sender, profile),
        text=text[:MAX_TEXT_CHARS],
        attachments=attachments,
        metadata=metadata,
    )


def _tweet(
    tweet: dict[str, Any], owner: str | None, delivery: RawDelivery, ignored: Counter[str]
) -> InboundContact | None:
    user = _dict(tweet.get("user"))
    author = optional_str(user.get("id_str")) or optional_str(user.get("id"))
    if not author or (owner is not None and author == owner):
        ignored["tweet_own"] += 1
        return None
    if tweet.get("retweeted_status") is not None:
        ignored["retweet"] += 1  # a retweet repeats a post; it asks nothing of us
        return None
    extended = _dict(tweet.get("extended_tweet"))
    text = optional_str(extended.get("full_text")) or optional_str(tweet.get("text")) or ""
    attachments = [
        _media(item)
        for item in _dicts(
            _dict(extended.get("extended_entities") or tweet.get("extended_entities")).get("media")
        )[:20]
    ]
    if not text and not attachments:
        ignored["tweet_empty"] += 1
        return None
    tweet_id = optional_str(tweet.get("id_str")) or optional_str(tweet.get("id"))
    metadata = {"event": "tweet"}
    if owner:
        metadata["account_id"] = short(owner)
    reply_to = optional_str(tweet.get("in_reply_to_status_id_str"))
    if reply_to:
        metadata["in_reply_to"] = short(reply_to)
    quoted = optional_str(tweet.get("quoted_status_id_str"))
    if quoted:
        metadata["quoted"] = short(quoted)
    if tweet.get("user_has_blocked") is True:
        metadata["user_has_blocked"] = "true"
    occurred = from_epoch(tweet.get("timestamp_ms"), millis=True) or _created_at(
        tweet.get("created_at")
    )
    external_id = tweet_id or "sha256:" + sha256_hex(canonical_json(tweet))
    # One public thread per customer and account: replies to our answers join it.
    return InboundContact.build(
        channel=Channel.X,
        external_id=bounded_identifier(external_id),
        conversation_key=bounded_identifier(f"public:{owner or '-'}:{author}"),
        received_at=delivery.received_at,
        occurred_at=occurred,
        customer=_customer(author, user),
        text=text[:MAX_TEXT_CHARS],
        visibility=Visibility.PUBLIC,
        attachments=attachments,
        metadata=metadata,
    )


def _customer(user_id: str, profile: dict[str, Any]) -> CustomerRef:
    handle = normalise_handle(optional_str(profile.get("screen_name")))
    name = optional_str(profile.get("name"))
    return CustomerRef(
        name=short(name) if name else None,
        handle=short(handle) if handle else None,
        provider_ids={"x_user_id": short(user_id)},
    )


def _media(media: dict[str, Any]) -> Attachment:
    url = optional_str(media.get("media_url_https")) or optional_str(media.get("media_url"))
    kind = str(media.get("type"))
    return Attachment(
        content_type=_MEDIA_TYPES.get(kind, "application/octet-stream"),
        url=url if url and len(url) <= 2048 else None,
        provider_id=short(pid)
        if (pid := optional_str(media.get("id_str")) or optional_str(media.get("id")))
        else None,
    )


def _created_at(value: Any) -> datetime | None:
    """v1.1's "Wed Oct 10 20:19:24 +0000 2018"."""
    if not isinstance(value, str):
        return None
    try:
        return datetime.strptime(value.strip(), "%a %b %d %H:%M:%S %z %Y")
    except ValueError:
        return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]
