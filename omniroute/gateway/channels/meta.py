"""Meta webhooks: Messenger (object "page"), Instagram and the WhatsApp Cloud API.

One endpoint serves all three, as Meta sends them: the GET verification handshake, then POSTs
signed with X-Hub-Signature-256 over the raw body. A delivery batches many events; only customer
messages (and public comments) become contacts. Statuses, echoes of our own messages, reactions,
handover (pass/take/request thread control) and other events are acknowledged and ignored, so
Meta never retries them.

Standby (Messenger/Instagram handover protocol): while another app (a bot, another inbox) owns a
thread, the customer's messages reach us on the `standby` channel. They are still the customer's
words, so they are normalised like any message (history for the agent who takes the thread
over) but marked `metadata["standby"] = "true"`: the thread's owner answers them, and the router
must not offer them as new work. Instagram story mentions and story replies are messages too;
an @mention of our account in someone's comment or caption (the `mentions` field) is public
work, though Meta's notification carries only the media and comment ids.
"""

from __future__ import annotations

import hashlib
import hmac
from collections import Counter
from collections.abc import Iterator
from typing import Any

import structlog
from fastapi import Response
from fastapi.responses import PlainTextResponse
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
from omniroute.shared.identity import normalise_phone
from omniroute.shared.settings import Settings

log = structlog.get_logger(__name__)

SIGNATURE_HEADER = "x-hub-signature-256"
_MAX_CHALLENGE = 512

_OBJECTS = {
    "page": Channel.MESSENGER,
    "instagram": Channel.INSTAGRAM,
    "whatsapp_business_account": Channel.WHATSAPP,
}
_MESSENGER_MEDIA = {
    "story_mention": "image/*",
    "ig_reel": "video/*",
    "reel": "video/*",
    "image": "image/*",
    "video": "video/*",
    "audio": "audio/*",
    "file": "application/octet-stream",
}
_OCTET_STREAM = "application/octet-stream"
_WHATSAPP_MEDIA = ("image", "video", "audio", "document", "sticker")
# WhatsApp message types that carry nothing for an agent to answer.
_WHATSAPP_IGNORED = {"reaction", "system", "revoke", "edit", "unsupported", "ephemeral"}


def signature_for(secret: str, body: bytes) -> str:
    """The X-Hub-Signature-256 value Meta sends for this body."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


class MetaAdapter(AdapterDefaults):
    name = "meta"
    authentication: Authentication = "signature"
    content_types = ("application/json",)
    summary = "Meta webhook: Messenger, Instagram and WhatsApp Cloud API"
    body_model: type[BaseModel] | None = None

    def verify(self, delivery: RawDelivery, settings: Settings) -> None:
        secret = settings.gateway.meta_app_secret
        if secret is None or not secret.get_secret_value():
            # Never accept unsigned deliveries, even when misconfigured.
            log.warning("gateway.meta.no_app_secret")
            raise Unauthorized("webhook signatures cannot be verified: no app secret configured")
        given = delivery.headers.get(SIGNATURE_HEADER, "").strip()
        if not given:
            raise Unauthorized("missing X-Hub-Signature-256")
        scheme, _, digest = given.partition("=")
        if scheme.lower() != "sha256" or not digest:
            raise Unauthorized("X-Hub-Signature-256 must be sha256=<hex>")
        expected = signature_for(secret.get_secret_value(), delivery.body)
        if not hmac.compare_digest(expected.encode(), ("sha256=" + digest.lower()).encode()):
            log.info("gateway.meta.bad_signature")
            raise Unauthorized("invalid X-Hub-Signature-256")

    def handshake(self, delivery: RawDelivery, settings: Settings) -> Response | None:
        mode = delivery.query.get("hub.mode")
        token = delivery.query.get("hub.verify_token", "")
        challenge = delivery.query.get("hub.challenge")
        if mode != "subscribe" or challenge is None:
            raise BadRequest("expected hub.mode=subscribe with hub.verify_token and hub.challenge")
        expected = settings.gateway.meta_verify_token
        if (
            expected is None
            or not expected.get_secret_value()
            or not hmac.compare_digest(expected.get_secret_value().encode(), token.encode())
        ):
            raise Forbidden("the verify token does not match")
        if len(challenge) > _MAX_CHALLENGE:
            raise BadRequest("hub.challenge is too long")
        return PlainTextResponse(challenge, headers={"X-Content-Type-Options": "nosniff"})

    def parse(self, delivery: RawDelivery) -> list[InboundContact]:
        payload = require_object(load_json(delivery))
        kind = payload.get("object")
        channel = _OBJECTS.get(kind) if isinstance(kind, str) else None
        if channel is None:
            raise Unprocessable(f"unsupported webhook object {str(kind)[:64]!r}")
        entries = payload.get("entry")
        if not isinstance(entries, list):
            raise Unprocessable("entry must be a list")
        ignored: Counter[str] = Counter()
        if channel is Channel.WHATSAPP:
            contacts = list(_whatsapp(entries, delivery, ignored))
        else:
            contacts = list(_messaging(channel, entries, delivery, ignored))
        if ignored:
            log.debug("gateway.meta.events_ignored", object=kind, **dict(ignored))
        return contacts


# Messenger and Instagram


def _messaging(
    channel: Channel, entries: list[Any], delivery: RawDelivery, ignored: Counter[str]
) -> Iterator[InboundContact]:
    id_kind = "instagram_id" if channel is Channel.INSTAGRAM else "messenger_psid"
    for entry in _dicts(entries):
        page_id = optional_str(entry.get("id"))
        for event in _dicts(entry.get("messaging")):
            contact = _messaging_event(channel, id_kind, page_id, event, delivery, ignored)
            if contact is not None:
                yield contact
        for event in _dicts(entry.get("standby")):
            # Another app owns the thread and answers; recorded, flagged, not routed.
            contact = _messaging_event(
                channel, id_kind, page_id, event, delivery, ignored, standby=True
            )
            if contact is not None:
                yield contact
        for change in _dicts(entry.get("changes")):
            contact = _comment(channel, page_id, change, delivery, ignored)
            if contact is not None:
                yield contact


def _messaging_event(
    channel: Channel,
    id_kind: str,
    page_id: str | None,
    event: dict[str, Any],
    delivery: RawDelivery,
    ignored: Counter[str],
    *,
    standby: bool = False,
) -> InboundContact | None:
    sender = _dict(event.get("sender"))
    recipient = _dict(event.get("recipient"))
    sender_id = optional_str(sender.get("id"))
    owner_id = page_id or optional_str(recipient.get("id"))
    message = _dict(event.get("message"))
    postback = _dict(event.get("postback"))
    if message.get("is_echo"):
        ignored["echo"] += 1
        return None
    if message.get("is_deleted"):
        # An Instagram "unsend": nothing left to answer.
        ignored["deleted"] += 1
        return None
    recipient_id = optional_str(recipient.get("id"))
    # The page writing to someone else is our own outbound message, even without is_echo.
    if not sender_id or (sender_id == owner_id and recipient_id not in (None, owner_id)):
        ignored["not_from_customer"] += 1
        return None
    metadata: dict[str, str] = {}
    if owner_id:
        metadata["page_id"] = short(owner_id)
    if standby:
        metadata["standby"] = "true"
    attachments: list[Attachment] = []
    if message:
        text = optional_str(message.get("text")) or ""
        provider_id = optional_str(message.get("mid"))
        for item in _dicts(message.get("attachments"))[:100]:
            media = _dict(item.get("payload"))
            url = optional_str(media.get("url"))
            kind = str(item.get("type"))
            if kind == "story_mention":
                metadata["event"] = "story_mention"
            media_id = optional_str(media.get("attachment_id")) or optional_str(media.get("id"))
            attachments.append(
                Attachment(
                    content_type=_MESSENGER_MEDIA.get(kind, "application/octet-stream"),
                    url=url if url and len(url) <= 2048 else None,
                    provider_id=short(media_id) if media_id else None,
                )
            )
        reply_to = _dict(message.get("reply_to"))
        if optional_str(reply_to.get("mid")):
            metadata["reply_to"] = short(reply_to["mid"])
        story = _dict(reply_to.get("story"))
        if optional_str(story.get("id")):
            # A reply to our Instagram story: the story is the context of the question.
            metadata["event"] = "story_reply"
            metadata["story_id"] = short(story["id"])
        quick_reply = optional_str(_dict(message.get("quick_reply")).get("payload"))
        if quick_reply:
            metadata["quick_reply"] = short(quick_reply)
    elif postback:
        # A tapped button is the customer speaking through the UI we offered.
        text = optional_str(postback.get("title")) or optional_str(postback.get("payload")) or ""
        provider_id = optional_str(postback.get("mid"))
        metadata["event"] = "postback"
    else:
        ignored[_event_kind(event)] += 1
        return None
    if not text and not attachments:
        ignored["empty_message"] += 1
        return None
    external_id = provider_id or "sha256:" + sha256_hex(canonical_json(event))
    return InboundContact.build(
        channel=channel,
        external_id=bounded_identifier(external_id),
        conversation_key=bounded_identifier(f"{owner_id or '-'}:{sender_id}"),
        received_at=delivery.received_at,
        occurred_at=from_epoch(event.get("timestamp"), millis=True),
        customer=CustomerRef(provider_ids={id_kind: short(sender_id)}),
        text=text[:MAX_TEXT_CHARS],
        attachments=attachments,
        metadata=metadata,
    )


def _comment(
    channel: Channel,
    page_id: str | None,
    change: dict[str, Any],
    delivery: RawDelivery,
    ignored: Counter[str],
) -> InboundContact | None:
    """A public comment on one of our posts, or a visitor's post on our Page: public, so it
    must never go unanswered."""
    field = change.get("field")
    value = _dict(change.get("value"))
    if channel is Channel.INSTAGRAM and field == "mentions":
        return _mention(page_id, change, value, delivery, ignored)
    if channel is Channel.INSTAGRAM and field in ("comments", "live_comments"):
        comment_id = optional_str(value.get("id"))
        text = optional_str(value.get("text")) or ""
        author = _dict(value.get("from"))
        post_id = optional_str(_dict(value.get("media")).get("id"))
        handle = optional_str(author.get("username"))
        name = None
    elif channel is Channel.MESSENGER and field == "feed" and value.get("item") in FEED_WORK:
        # A comment on one of our posts, or a visitor's post on our Page's wall (its own id
        # is the post's): public, addressed to us.
        is_post = value.get("item") in VISITOR_POSTS
        if value.get("verb") != "add":
            ignored[("post_" if is_post else "comment_") + str(value.get("verb"))[:20]] += 1
            return None
        post_id = optional_str(value.get("post_id"))
        comment_id = post_id if is_post else optional_str(value.get("comment_id"))
        text = optional_str(value.get("message")) or ""
        author = _dict(value.get("from"))
        handle = None
        name = optional_str(author.get("name"))
    else:
        ignored[f"change_{str(field)[:40]}"] += 1
        return None
    author_id = optional_str(author.get("id"))
    if not comment_id or not author_id or author_id == page_id or not text:
        ignored["comment_not_from_customer"] += 1
        return None
    id_kind = "instagram_id" if channel is Channel.INSTAGRAM else "facebook_id"
    metadata = {"event": "post" if value.get("item") in VISITOR_POSTS else "comment"}
    parent = optional_str(value.get("parent_id"))
    if parent and parent != post_id:
        metadata["reply_to"] = short(parent)
    if post_id:
        metadata["post_id"] = short(post_id)
    if page_id:
        metadata["page_id"] = short(page_id)
    return InboundContact.build(
        channel=channel,
        external_id=bounded_identifier(comment_id),
        conversation_key=bounded_identifier(f"{post_id or page_id or '-'}:{author_id}"),
        received_at=delivery.received_at,
        occurred_at=from_epoch(value.get("created_time") or change.get("time")),
        customer=CustomerRef(
            name=short(name) if name else None,
            handle=short("@" + handle) if handle else None,
            provider_ids={id_kind: short(author_id)},
        ),
        text=text[:MAX_TEXT_CHARS],
        visibility=Visibility.PUBLIC,
        metadata=metadata,
    )


# Page feed items that are a visitor's own post on our Page (not a comment, like or share).
VISITOR_POSTS = frozenset({"status", "post", "photo", "video"})
FEED_WORK = VISITOR_POSTS | {"comment"}

# What an agent sees for an @mention: Meta's notification names the media (and comment) but
# carries neither the text nor its author, which only the Graph API gives (mentioned_comment /
# mentioned_media, with the account's token). The mention is public, so it is work all the same.
MENTION_TEXT = (
    "Instagram @mention of our account in {where} (media {media_id}{comment}). The notification "
    "carries no text: open it in Instagram to read and answer it."
)


def _mention(
    page_id: str | None,
    change: dict[str, Any],
    value: dict[str, Any],
    delivery: RawDelivery,
    ignored: Counter[str],
) -> InboundContact | None:
    """Someone @mentioned our Instagram account in a comment or a caption: public work."""
    media_id = optional_str(value.get("media_id"))
    comment_id = optional_str(value.get("comment_id"))
    if not media_id:
        ignored["mention_without_media"] += 1
        return None
    metadata = {"event": "mention", "media_id": short(media_id)}
    if comment_id:
        metadata["comment_id"] = short(comment_id)
    if page_id:
        metadata["page_id"] = short(page_id)
    text = MENTION_TEXT.format(
        where="a comment" if comment_id else "a caption",
        media_id=media_id,
        comment=f", comment {comment_id}" if comment_id else "",
    )
    return InboundContact.build(
        channel=Channel.INSTAGRAM,
        external_id=bounded_identifier(f"mention:{comment_id or media_id}"),
        # Mentions on one post are one conversation: the author is not known to group by.
        conversation_key=bounded_identifier(f"mention:{media_id}"),
        received_at=delivery.received_at,
        occurred_at=from_epoch(change.get("time")),
        customer=CustomerRef(),
        text=text[:MAX_TEXT_CHARS],
        visibility=Visibility.PUBLIC,
        metadata=metadata,
    )


def _event_kind(event: dict[str, Any]) -> str:
    for key in (
        "delivery",
        "read",
        "reaction",
        "optin",
        "referral",
        "account_linking",
        "pass_thread_control",
        "take_thread_control",
        "request_thread_control",
        "app_roles",
        "policy_enforcement",
    ):
        if event.get(key) is not None:
            return key
    return "other"


# WhatsApp Cloud API


def _whatsapp(
    entries: list[Any], delivery: RawDelivery, ignored: Counter[str]
) -> Iterator[InboundContact]:
    for entry in _dicts(entries):
        for change in _dicts(entry.get("changes")):
            value = _dict(change.get("value"))
            if change.get("field") != "messages":
                ignored[f"field_{str(change.get('field'))[:40]}"] += 1
                continue
            if value.get("statuses"):
                ignored["status"] += len(_dicts(value.get("statuses")))
            phone_number_id = optional_str(_dict(value.get("metadata")).get("phone_number_id"))
            profiles = {
                optional_str(item.get("wa_id")): item for item in _dicts(value.get("contacts"))
            }
            for message in _dicts(value.get("messages")):
                contact = _whatsapp_message(message, phone_number_id, profiles, delivery, ignored)
                if contact is not None:
                    yield contact


def _whatsapp_message(
    message: dict[str, Any],
    phone_number_id: str | None,
    profiles: dict[str | None, dict[str, Any]],
    delivery: RawDelivery,
    ignored: Counter[str],
) -> InboundContact | None:
    kind = optional_str(message.get("type")) or "unknown"
    sender = optional_str(message.get("from"))
    if kind in _WHATSAPP_IGNORED or not sender:
        ignored[f"message_{kind[:40]}"] += 1
        return None
    text, attachments = _whatsapp_content(kind, message)
    if not text and not attachments:
        ignored[f"message_{kind[:40]}"] += 1
        return None
    metadata = {"message_type": short(kind)}
    reply_id = _choice_id(kind, message)
    if reply_id:
        metadata["reply_id"] = short(reply_id)
    if phone_number_id:
        metadata["phone_number_id"] = short(phone_number_id)
    context = _dict(message.get("context"))
    if optional_str(context.get("id")):
        metadata["reply_to"] = short(context["id"])
    if context.get("forwarded") or context.get("frequently_forwarded"):
        metadata["forwarded"] = "true"
    referral = _dict(message.get("referral"))
    if optional_str(referral.get("source_url")):
        metadata["referral_url"] = short(referral["source_url"])
    profile = profiles.get(sender) or {}
    name = optional_str(_dict(profile.get("profile")).get("name"))
    provider_ids = {"wa_id": short(sender)}
    user_id = optional_str(profile.get("user_id"))
    if user_id:
        provider_ids["whatsapp_user_id"] = short(user_id)
    external_id = optional_str(message.get("id")) or "sha256:" + sha256_hex(canonical_json(message))
    return InboundContact.build(
        channel=Channel.WHATSAPP,
        external_id=bounded_identifier(external_id),
        conversation_key=bounded_identifier(f"{phone_number_id or '-'}:{sender}"),
        received_at=delivery.received_at,
        occurred_at=from_epoch(message.get("timestamp")),
        customer=CustomerRef(
            name=short(name) if name else None,
            phone=normalise_phone(sender, international=True),
            provider_ids=provider_ids,
        ),
        text=text[:MAX_TEXT_CHARS],
        attachments=attachments,
        metadata=metadata,
    )


def _whatsapp_content(kind: str, message: dict[str, Any]) -> tuple[str, list[Attachment]]:
    body = _dict(message.get(kind))
    if kind == "text":
        return optional_str(body.get("body")) or "", []
    if kind in _WHATSAPP_MEDIA:
        url = optional_str(body.get("url"))
        media_id = optional_str(body.get("id"))
        attachment = Attachment(
            filename=short(name) if (name := optional_str(body.get("filename"))) else None,
            content_type=short(optional_str(body.get("mime_type")) or "application/octet-stream"),
            url=url if url and len(url) <= 2048 else None,
            # Cloud API media are fetched by id (GET /{media-id}); the URL is rarely sent.
            provider_id=short(media_id) if media_id else None,
        )
        return optional_str(body.get("caption")) or "", [attachment]
    if kind == "location":
        label = ", ".join(
            part for key in ("name", "address") if (part := optional_str(body.get(key)))
        )
        where = f"{body.get('latitude')}, {body.get('longitude')}"
        return f"Location: {label} ({where})" if label else f"Location: {where}", []
    if kind == "contacts":
        names = [
            optional_str(_dict(card.get("name")).get("formatted_name")) or "?"
            for card in _dicts(message.get("contacts"))
        ]
        return "Shared contacts: " + ", ".join(names), []
    if kind == "interactive":
        for reply in ("button_reply", "list_reply", "nfm_reply"):
            chosen = _dict(body.get(reply))
            if chosen:
                return optional_str(chosen.get("title")) or optional_str(
                    chosen.get("body")
                ) or "", []
        return "", []
    if kind == "button":
        return optional_str(body.get("text")) or optional_str(body.get("payload")) or "", []
    if kind == "order":
        items = _dicts(body.get("product_items"))
        return optional_str(body.get("text")) or f"Order with {len(items)} item(s)", []
    return "", []


def _choice_id(kind: str, message: dict[str, Any]) -> str | None:
    """The id of the button or list row the customer chose (what our flow keys on)."""
    if kind == "interactive":
        body = _dict(message.get("interactive"))
        chosen = _dict(body.get("button_reply")) or _dict(body.get("list_reply"))
        return optional_str(chosen.get("id"))
    if kind == "button":
        return optional_str(_dict(message.get("button")).get("payload"))
    return None


def _dict(value: Any) -> dict[str, Any]:
    return value if isinstance(value, dict) else {}


def _dicts(value: Any) -> list[dict[str, Any]]:
    """The dict items of a list; providers add item kinds we do not know, and that is fine."""
    if not isinstance(value, list):
        return []
    return [item for item in value if isinstance(item, dict)]
