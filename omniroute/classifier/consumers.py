"""Bus handler: contacts.inbound -> classify -> contacts.classified."""

from __future__ import annotations

import time
import uuid
from collections import OrderedDict
from collections.abc import Sequence

import structlog

from omniroute.classifier.pipeline import BATCH_SIZE, Classifier
from omniroute.shared import metrics, topics
from omniroute.shared.events import ClassifiedContact, InboundContact
from omniroute.shared.transport.base import (
    BatchHandler,
    Bus,
    Message,
    decode_event,
    encode_event,
)

log = structlog.get_logger(__name__)

DEFAULT_SEEN_CONVERSATIONS = 100_000


class RecentConversations:
    """Bounded LRU of conversation ids: Kafka keys by conversation, so one worker sees them all.

    It remembers the contacts too, so a redelivered message is not mistaken for the customer
    writing again.
    """

    def __init__(self, capacity: int = DEFAULT_SEEN_CONVERSATIONS) -> None:
        self.capacity = capacity
        self._seen: OrderedDict[uuid.UUID, set[uuid.UUID]] = OrderedDict()

    def observe(self, conversation_id: uuid.UUID, contact_id: uuid.UUID) -> bool:
        """Record the contact; True when another contact on the conversation came before it."""
        contacts = self._seen.get(conversation_id)
        if contacts is None:
            self._seen[conversation_id] = {contact_id}
            if len(self._seen) > self.capacity:
                self._seen.popitem(last=False)
            return False
        self._seen.move_to_end(conversation_id)
        if contact_id in contacts:
            return len(contacts) > 1
        if len(contacts) < 64:
            contacts.add(contact_id)
        return True


def make_classify_handler(
    classifier: Classifier, bus: Bus, *, recent: RecentConversations | None = None
) -> BatchHandler:
    """A batch handler for contacts.inbound: classify what arrived together, then publish it
    all at once, so the wait for the broker's acks is paid per batch, not per contact.

    An undecodable contact raises; the bus then retries the batch one contact at a time and
    dead-letters that one alone.
    """
    conversations = recent if recent is not None else RecentConversations()

    async def handle(messages: Sequence[Message]) -> None:
        done: list[tuple[ClassifiedContact, float]] = []
        # Classified a few at a time (each step over the few, see `classify_many`); a
        # contact's latency is its few's.
        for first in range(0, len(messages), BATCH_SIZE):
            started = time.perf_counter()
            contacts = [
                decode_event(InboundContact, message.value)
                for message in messages[first : first + BATCH_SIZE]
            ]
            metrics.observe_pipeline_lag("classifier", (c.received_at for c in contacts))
            repeated = [
                conversations.observe(contact.conversation_id, contact.contact_id)
                for contact in contacts
            ]
            results = classifier.classify_many(contacts, repeated=repeated)
            elapsed = time.perf_counter() - started
            done.extend((result, elapsed) for result in results)
        await bus.publish_many(
            topics.CONTACTS_CLASSIFIED,
            [(str(c.contact.conversation_id), encode_event(c)) for c, _ in done],
        )
        for classified, elapsed in done:
            metrics.CONTACTS_CLASSIFIED.labels(
                category=classified.category.category, priority=classified.priority.level.value
            ).inc()
            metrics.CLASSIFY_LATENCY.observe(elapsed)
            log.info(
                "classifier.contact.classified",
                contact_id=str(classified.contact.contact_id),
                channel=classified.contact.channel.value,
                language=classified.language.code,
                category=classified.category.category,
                priority=classified.priority.level.value,
                spam=classified.spam,
                pii_kinds=classified.pii_kinds,
                elapsed_ms=round(elapsed * 1000, 2),
            )

    return handle
