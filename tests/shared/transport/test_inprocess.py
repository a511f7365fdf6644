"""InProcessBus: publishing runs the subscribed handlers to completion in the caller."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from omniroute.shared.settings import BusSettings
from omniroute.shared.transport import BusUnavailable, Message
from omniroute.shared.transport.factory import create_bus
from omniroute.shared.transport.inprocess import InProcessBus


class Recorder:
    def __init__(self, failures: int = 0) -> None:
        self.messages: list[Message] = []
        self.calls = 0
        self._failures = failures

    async def __call__(self, message: Message) -> None:
        self.calls += 1
        if self.calls <= self._failures:
            raise ValueError("not yet")
        self.messages.append(message)


class TestDelivery:
    async def test_publish_returns_after_every_group_handled_the_message(self):
        bus = InProcessBus()
        first, second = Recorder(), Recorder()
        bus.subscribe("contacts.inbound", "classifier", first)
        bus.subscribe("contacts.inbound", "audit", second)
        bus.subscribe("contacts.classified", "router", Recorder())
        await bus.start()

        await bus.publish("contacts.inbound", "conv-1", b"hello")

        for recorder in (first, second):
            assert [(m.topic, m.key, m.value) for m in recorder.messages] == [
                ("contacts.inbound", "conv-1", b"hello")
            ]
        await bus.stop()

    async def test_a_batch_handler_gets_each_message_before_publish_returns(self):
        bus = InProcessBus()
        batches: list[list[bytes]] = []

        async def handle(messages: Sequence[Message]) -> None:
            batches.append([m.value for m in messages])

        bus.subscribe_batch("contacts.classified", "router", handle)
        await bus.publish_many("contacts.classified", [("a", b"1"), ("b", b"2")])

        assert batches == [[b"1"], [b"2"]]

    async def test_publish_many_keeps_order_and_numbers_offsets(self):
        bus = InProcessBus()
        recorder = Recorder()
        bus.subscribe("t", "g", recorder)

        await bus.publish_many("t", [("a", b"1"), ("b", b"2"), ("a", b"3")])

        assert [m.value for m in recorder.messages] == [b"1", b"2", b"3"]
        assert [m.offset for m in recorder.messages] == [0, 1, 2]

    async def test_publish_without_subscribers_is_accepted(self):
        bus = InProcessBus()
        await bus.publish("routing.events", "conv-1", b"x")
        assert await bus.ping() is True


class TestFailures:
    async def test_a_handler_failing_less_than_its_attempts_is_retried(self):
        bus = InProcessBus(attempts=3, backoff_seconds=0)
        recorder = Recorder(failures=2)
        bus.subscribe("t", "g", recorder)

        await bus.publish("t", "k", b"v")

        assert recorder.calls == 3
        assert [m.value for m in recorder.messages] == [b"v"]

    async def test_a_handler_that_keeps_failing_makes_publish_unavailable(self):
        bus = InProcessBus(attempts=2, backoff_seconds=0)
        recorder = Recorder(failures=10)
        bus.subscribe("t", "g", recorder)

        with pytest.raises(BusUnavailable):
            await bus.publish("t", "k", b"v")
        assert recorder.calls == 2


class TestFactory:
    def test_inprocess_url_gives_the_embedded_bus(self):
        bus = create_bus(BusSettings(bus="inprocess://"))
        assert isinstance(bus, InProcessBus)

    def test_unknown_scheme_is_refused_at_start_up(self):
        with pytest.raises(ValueError, match="OMNIROUTE_BUS"):
            BusSettings(bus="amqp://localhost")
