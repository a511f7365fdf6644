from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from prometheus_client import REGISTRY

from omniroute.classifier.consumers import RecentConversations, make_classify_handler
from omniroute.classifier.pipeline import BATCH_SIZE, Classifier
from omniroute.shared import metrics, topics
from omniroute.shared.events import Channel, ClassifiedContact, utcnow
from omniroute.shared.transport.base import BusUnavailable, Message, decode_event, encode_event
from omniroute.shared.transport.inprocess import InProcessBus
from tests.classifier.conftest import contact


def _total(metric: Any, suffix: str = "_total") -> float:
    return sum(
        sample.value
        for family in metric.collect()
        for sample in family.samples
        if sample.name.endswith(suffix)
    )


class Collector:
    def __init__(self) -> None:
        self.messages: list[Message] = []

    async def __call__(self, message: Message) -> None:
        self.messages.append(message)

    def events(self) -> list[ClassifiedContact]:
        return [decode_event(ClassifiedContact, m.value) for m in self.messages]


@pytest.fixture
def wired(classifier: Classifier) -> tuple[InProcessBus, Collector]:
    bus = InProcessBus(attempts=1, backoff_seconds=0)
    collected = Collector()
    bus.subscribe_batch(
        topics.CONTACTS_INBOUND, "classifier", make_classify_handler(classifier, bus)
    )
    bus.subscribe(topics.CONTACTS_CLASSIFIED, "router", collected)
    return bus, collected


class TestHandler:
    async def test_publishes_the_classified_contact_keyed_by_conversation(
        self, wired: tuple[InProcessBus, Collector]
    ) -> None:
        bus, collected = wired
        inbound = contact("Mi tarjeta 4111 1111 1111 1111 no funciona para pagar")
        before = (_total(metrics.CONTACTS_CLASSIFIED), _total(metrics.CLASSIFY_LATENCY, "_count"))
        await bus.publish(
            topics.CONTACTS_INBOUND, str(inbound.conversation_id), encode_event(inbound)
        )
        [message] = collected.messages
        assert message.key == str(inbound.conversation_id)
        [event] = collected.events()
        assert event.contact.contact_id == inbound.contact_id
        assert "4111" not in message.value.decode()
        after = (_total(metrics.CONTACTS_CLASSIFIED), _total(metrics.CLASSIFY_LATENCY, "_count"))
        assert after == (before[0] + 1, before[1] + 1)

    async def test_the_wait_since_receipt_is_measured(
        self, wired: tuple[InProcessBus, Collector]
    ) -> None:
        bus, _ = wired
        inbound = contact("¿Dónde está mi pedido?")
        # Received by the gateway half a minute before the classifier took it up.
        inbound = inbound.model_copy(update={"received_at": utcnow() - timedelta(seconds=30)})
        labels = {"hop": "classifier"}
        count = REGISTRY.get_sample_value("omniroute_pipeline_lag_seconds_count", labels) or 0
        total = REGISTRY.get_sample_value("omniroute_pipeline_lag_seconds_sum", labels) or 0
        await bus.publish(
            topics.CONTACTS_INBOUND, str(inbound.conversation_id), encode_event(inbound)
        )
        after_count = REGISTRY.get_sample_value("omniroute_pipeline_lag_seconds_count", labels)
        after_total = REGISTRY.get_sample_value("omniroute_pipeline_lag_seconds_sum", labels)
        assert after_count == count + 1
        assert after_total is not None
        assert 30 <= after_total - total < 90

    async def test_second_contact_on_a_conversation_is_repeated(
        self, wired: tuple[InProcessBus, Collector]
    ) -> None:
        bus, collected = wired
        first = contact("¿Dónde está mi pedido?", channel=Channel.CHAT, conversation_key="c-1")
        second = contact("¿¿Hola??", channel=Channel.CHAT, conversation_key="c-1")
        for inbound in (first, second, first):
            await bus.publish(
                topics.CONTACTS_INBOUND, str(inbound.conversation_id), encode_event(inbound)
            )
        repeated = [e.urgency.repeated_contact for e in collected.events()]
        # The redelivery of the first contact still has a sibling, so it is repeated too.
        assert repeated == [False, True, True]

    async def test_undecodable_contact_raises_for_the_dead_letter_path(
        self, wired: tuple[InProcessBus, Collector]
    ) -> None:
        bus, collected = wired
        with pytest.raises(BusUnavailable):
            await bus.publish(topics.CONTACTS_INBOUND, "k", b'{"not": "a contact"}')
        assert collected.messages == []


class PublishedBus:
    """Records what a handler publishes, in order."""

    def __init__(self) -> None:
        self.published: list[tuple[str, str, bytes]] = []

    async def publish_many(self, topic: str, items: list[tuple[str, bytes]]) -> None:
        self.published.extend((topic, key, value) for key, value in items)


class TestBatches:
    async def test_a_batch_larger_than_the_classifiers_is_published_whole_in_order(
        self, classifier: Classifier
    ) -> None:
        bus = PublishedBus()
        handle = make_classify_handler(classifier, bus)  # type: ignore[arg-type]
        count = 2 * BATCH_SIZE + 3
        # Conversation "c-0" comes back within a batch and across batches.
        inbound = [
            contact(f"Pedido {n} sin llegar", conversation_key=f"c-{n % (BATCH_SIZE + 1)}")
            for n in range(count)
        ]
        messages = [
            Message(topic=topics.CONTACTS_INBOUND, key="k", value=encode_event(c), offset=n)
            for n, c in enumerate(inbound)
        ]
        before = _total(metrics.CLASSIFY_LATENCY, "_count")
        await handle(messages)
        events = [decode_event(ClassifiedContact, value) for _, _, value in bus.published]
        assert [e.contact.contact_id for e in events] == [c.contact_id for c in inbound]
        assert {topic for topic, _, _ in bus.published} == {topics.CONTACTS_CLASSIFIED}
        assert [key for _, key, _ in bus.published] == [str(c.conversation_id) for c in inbound]
        assert [e.urgency.repeated_contact for e in events] == [
            n > BATCH_SIZE for n in range(count)
        ]
        assert _total(metrics.CLASSIFY_LATENCY, "_count") == before + count


class TestRecentConversations:
    def test_is_bounded(self) -> None:
        import uuid

        recent = RecentConversations(capacity=2)
        ids = [uuid.uuid4() for _ in range(3)]
        for conversation in ids:
            assert not recent.observe(conversation, uuid.uuid4())
        # The oldest was evicted, so it looks new again.
        assert not recent.observe(ids[0], uuid.uuid4())
        assert recent.observe(ids[2], uuid.uuid4())


class TestWireFormat:
    def test_a_classified_contact_encodes_as_its_json_dump(self, classifier: Classifier) -> None:
        inbound = contact("¡Me habéis cobrado dos veces! 😡 Llamadme al 612 345 678", tier="vip")
        classified = classifier.classify(inbound)
        assert encode_event(classified) == classified.model_dump_json().encode()
        assert encode_event(inbound) == inbound.model_dump_json().encode()
        assert decode_event(ClassifiedContact, encode_event(classified)) == classified
