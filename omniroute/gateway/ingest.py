"""Publishing normalised contacts: redacted, keyed by conversation, durable before we answer."""

from __future__ import annotations

import functools
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import structlog
from prometheus_client import Counter, Histogram

from omniroute.shared import metrics, topics
from omniroute.shared.events import Channel, InboundContact
from omniroute.shared.pii import redact_cards
from omniroute.shared.transport import Bus, encode_event

log = structlog.get_logger(__name__)


@dataclass(frozen=True, slots=True)
class Receipt:
    contact_id: uuid.UUID
    conversation_id: uuid.UUID

    def as_dict(self) -> dict[str, str]:
        return {"contact_id": str(self.contact_id), "conversation_id": str(self.conversation_id)}

    def as_json(self) -> bytes:
        """as_dict() as JSON, without a JSON encoder: UUIDs need no escaping."""
        return (
            f'{{"contact_id":"{self.contact_id}","conversation_id":"{self.conversation_id}"}}'
        ).encode()


def redact(contact: InboundContact) -> InboundContact:
    """Card numbers and CVVs never leave the gateway in clear text."""
    text, kinds = redact_cards(contact.text)
    subject, subject_kinds = redact_cards(contact.subject) if contact.subject else (None, [])
    turns = []
    turn_kinds: list[str] = []
    for turn in contact.transcript:
        turn_text, found = redact_cards(turn.text)
        turn_kinds.extend(found)
        turns.append(turn.model_copy(update={"text": turn_text}) if found else turn)
    if not (kinds or subject_kinds or turn_kinds):
        return contact
    return contact.model_copy(update={"text": text, "subject": subject, "transcript": turns})


class ContactPublisher:
    """The one way contacts enter the system."""

    def __init__(self, bus: Bus) -> None:
        self._bus = bus

    async def publish(self, contacts: Sequence[InboundContact]) -> list[Receipt]:
        """Publish to contacts.inbound; returns once every contact is durable."""
        if not contacts:
            return []
        started = time.perf_counter()
        redacted = [redact(contact) for contact in contacts]
        await self._bus.publish_many(
            topics.CONTACTS_INBOUND,
            [(str(contact.conversation_id), encode_event(contact)) for contact in redacted],
        )
        elapsed = time.perf_counter() - started
        for contact in redacted:
            received, latency = _channel_metrics(contact.channel)
            received.inc()
            latency.observe(elapsed / len(redacted))
            log.info(
                "gateway.contact.accepted",
                contact_id=str(contact.contact_id),
                channel=contact.channel.value,
            )
        return [Receipt(c.contact_id, c.conversation_id) for c in redacted]


@functools.cache
def _channel_metrics(channel: Channel) -> tuple[Counter, Histogram]:
    """One channel's children of the ingest metrics, looked up once (labels() takes a lock)."""
    return (
        metrics.CONTACTS_RECEIVED.labels(channel=channel.value),
        metrics.INGEST_LATENCY.labels(channel=channel.value),
    )
