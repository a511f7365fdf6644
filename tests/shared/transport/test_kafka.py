"""KafkaBus against a real Tansu broker: delivery, commits, dead letters, groups, outages."""

from __future__ import annotations

import asyncio
import time
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import pytest

from omniroute.shared import metrics, topics
from omniroute.shared.settings import BusSettings
from omniroute.shared.topics import dead_letter_topic
from omniroute.shared.transport import Bus, BusUnavailable, Message
from omniroute.shared.transport.factory import create_bus
from omniroute.shared.transport.kafka import KafkaBus
from tests.fixtures.broker import TansuBroker

pytestmark = pytest.mark.kafka

DEADLINE = 60.0  # generous: a deadline for an expected effect, never a performance bar
SESSION_MS = 6000  # Tansu holds a JoinGroup about half of this

B = TypeVar("B", bound=Bus)


def settings_for(tansu: TansuBroker, **overrides: Any) -> BusSettings:
    values: dict[str, Any] = {
        "bus": tansu.url,
        "bus_partitions": 3,
        "bus_send_timeout_seconds": 5.0,
        "bus_handler_attempts": 3,
    }
    values.update(overrides)
    return BusSettings(**values)


def make_bus(tansu: TansuBroker, topic: str, **kwargs: Any) -> KafkaBus:
    settings = settings_for(tansu, **kwargs.pop("settings", {}))
    kwargs.setdefault("session_timeout_ms", SESSION_MS)
    return KafkaBus(settings, topics=[topic], **kwargs)


@asynccontextmanager
async def running(bus: B) -> AsyncIterator[B]:
    await bus.start()
    try:
        yield bus
    finally:
        await bus.stop()


async def eventually(check: Callable[[], bool], what: str, deadline: float = DEADLINE) -> None:
    end = time.monotonic() + deadline
    while not check():
        if time.monotonic() > end:
            pytest.fail(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def publish_when_back(bus: KafkaBus, topic: str, key: str, value: bytes) -> None:
    """After an outage the first sends may still time out; the bus must recover by itself."""
    end = time.monotonic() + DEADLINE
    while True:
        try:
            await bus.publish(topic, key, value)
            return
        except BusUnavailable:
            if time.monotonic() > end:
                raise
            await asyncio.sleep(0.2)


class Recorder:
    """A handler that remembers what it saw (and can be told to fail or block)."""

    def __init__(self, fail_on: Callable[[Message], bool] = lambda m: False) -> None:
        self.messages: list[Message] = []
        self.attempts: dict[bytes, int] = defaultdict(int)
        self._fail_on = fail_on

    async def __call__(self, message: Message) -> None:
        self.attempts[message.value] += 1
        if self._fail_on(message):
            raise ValueError(f"cannot handle {message.value!r}")
        self.messages.append(message)

    @property
    def values(self) -> list[bytes]:
        return [m.value for m in self.messages]


class TestRoundTrip:
    async def test_messages_arrive_with_keys_and_in_order_per_key(self, tansu, kafka_names):
        topic = kafka_names.topic()
        recorder = Recorder()
        bus = make_bus(tansu, topic)
        bus.subscribe(topic, kafka_names.group(), recorder)
        sent = [(f"conv-{i % 4}", f"{i % 4}:{i}".encode()) for i in range(40)]
        async with running(bus):
            for key, value in sent[:10]:
                await bus.publish(topic, key, value)
            await bus.publish_many(topic, sent[10:])
            await eventually(lambda: len(recorder.messages) >= len(sent), "all messages")

        assert sorted(recorder.values) == sorted(v for _, v in sent)
        by_key: dict[str | None, list[bytes]] = defaultdict(list)
        partitions: dict[str | None, set[int]] = defaultdict(set)
        for message in recorder.messages:
            assert message.topic == topic
            assert message.value.startswith(f"{message.key.removeprefix('conv-')}:".encode())
            by_key[message.key].append(message.value)
            partitions[message.key].add(message.partition)
        for key in by_key:
            assert by_key[key] == [v for k, v in sent if k == key], key
            assert len(partitions[key]) == 1  # one conversation stays in one partition

    async def test_ping_answers_true_when_connected(self, tansu, kafka_names):
        async with running(make_bus(tansu, kafka_names.topic())) as bus:
            assert await bus.ping() is True

    async def test_start_creates_topics_with_configured_partitions(self, tansu, kafka_names):
        from aiokafka.admin import AIOKafkaAdminClient

        topic, group = kafka_names.topic(), kafka_names.group()
        bus = make_bus(tansu, topic, settings={"bus_partitions": 5})
        bus.subscribe(topic, group, Recorder())
        async with running(bus):
            admin = AIOKafkaAdminClient(bootstrap_servers=tansu.bootstrap)
            await admin.start()
            try:
                described = await admin.describe_topics([topic, dead_letter_topic(topic, group)])
            finally:
                await admin.close()
        assert [len(t["partitions"]) for t in described] == [5, 5]

    async def test_topics_are_created_with_the_configured_retention(self, tansu, kafka_names):
        from aiokafka.admin import AIOKafkaAdminClient
        from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

        topic, group = kafka_names.topic(), kafka_names.group()
        bus = make_bus(tansu, topic, settings={"bus_retention_hours": 36})
        bus.subscribe(topic, group, Recorder())
        async with running(bus):
            admin = AIOKafkaAdminClient(bootstrap_servers=tansu.bootstrap)
            await admin.start()
            try:
                [response] = await admin.describe_configs(
                    [
                        ConfigResource(ConfigResourceType.TOPIC, name)
                        for name in (topic, dead_letter_topic(topic, group))
                    ]
                )
            finally:
                await admin.close()
        retention = {
            resource[3]: dict((entry[0], entry[1]) for entry in resource[4])["retention.ms"]
            for resource in response.resources
        }
        assert retention == {
            topic: str(36 * 3_600_000),
            dead_letter_topic(topic, group): str(36 * 3_600_000),
        }

    async def test_the_real_topics_on_a_fresh_broker(self, fresh_tansu):
        recorder = Recorder()
        bus = create_bus(settings_for(fresh_tansu))
        bus.subscribe(topics.CONTACTS_INBOUND, "classifier", recorder)
        async with running(bus):
            for topic in topics.ALL_TOPICS:
                await bus.publish(topic, "conv-1", topic.encode())
            await eventually(lambda: len(recorder.messages) == 1, "the inbound contact")
        assert recorder.values == [topics.CONTACTS_INBOUND.encode()]

    def test_factory_picks_kafka_for_kafka_urls(self, tansu):
        assert isinstance(create_bus(settings_for(tansu)), KafkaBus)


class TestPartitions:
    async def test_a_stuck_partition_does_not_hold_up_the_others(self, tansu, kafka_names):
        topic, group = kafka_names.topic(), kafka_names.group()
        stuck, release = asyncio.Event(), asyncio.Event()
        handled: list[Message] = []

        async def handler(message: Message) -> None:
            if message.value == b"slow":
                stuck.set()
                await release.wait()
            handled.append(message)

        bus = make_bus(tansu, topic)
        bus.subscribe(topic, group, handler)
        async with running(bus):
            await bus.publish(topic, "conv-slow", b"slow")
            await asyncio.wait_for(stuck.wait(), DEADLINE)
            # Ten conversations over three partitions: some land beside the stuck one.
            await bus.publish_many(topic, [(f"conv-{i}", f"fast-{i}".encode()) for i in range(10)])
            try:
                await eventually(lambda: len(handled) > 0, "a message of another partition")
            finally:
                release.set()
            await eventually(lambda: len(handled) == 11, "every message")

        slow_index = [m.value for m in handled].index(b"slow")
        slow_partition = handled[slow_index].partition
        assert slow_index > 0  # other partitions went ahead of the stuck one
        assert all(m.partition != slow_partition for m in handled[:slow_index])


class TestAtLeastOnce:
    async def test_message_not_committed_is_delivered_again_after_restart(self, tansu, kafka_names):
        topic, group = kafka_names.topic(), kafka_names.group()
        stuck = asyncio.Event()
        handled: list[bytes] = []

        async def stuck_on_second(message: Message) -> None:
            if message.value == b"unfinished":
                stuck.set()
                await asyncio.Event().wait()  # a crash in the middle of the handler
            handled.append(message.value)

        first = make_bus(tansu, topic, stop_grace_seconds=0.5)
        first.subscribe(topic, group, stuck_on_second)
        async with running(first):
            await first.publish_many(topic, [("conv-1", b"finished"), ("conv-1", b"unfinished")])
            await asyncio.wait_for(stuck.wait(), DEADLINE)
        assert handled == [b"finished"]

        recorder = Recorder()
        second = make_bus(tansu, topic)
        second.subscribe(topic, group, recorder)
        async with running(second):
            await eventually(lambda: b"unfinished" in recorder.values, "the redelivery")
        assert recorder.values == [b"unfinished"]

    async def test_offsets_are_committed_while_running(self, tansu, kafka_names):
        from aiokafka import AIOKafkaConsumer, TopicPartition

        topic, group = kafka_names.topic(), kafka_names.group()
        recorder = Recorder()
        bus = make_bus(tansu, topic)
        bus.subscribe(topic, group, recorder)
        # Reads the group's offsets without joining it.
        observer = AIOKafkaConsumer(bootstrap_servers=tansu.bootstrap, group_id=group)
        await observer.start()
        try:
            async with running(bus):
                await bus.publish_many(topic, [("conv-1", b"a"), ("conv-1", b"b")])
                await eventually(lambda: len(recorder.messages) == 2, "both messages")
                last = recorder.messages[-1]
                tp = TopicPartition(topic, last.partition)
                end = time.monotonic() + DEADLINE
                while await observer.committed(tp) != last.offset + 1:
                    assert time.monotonic() < end, "the commit never happened"
                    await asyncio.sleep(0.1)
        finally:
            await observer.stop()

    async def test_committed_message_does_not_come_back(self, tansu, kafka_names):
        topic, group = kafka_names.topic(), kafka_names.group()
        release = asyncio.Event()
        started = asyncio.Event()
        handled: list[bytes] = []

        async def slow(message: Message) -> None:
            started.set()
            await release.wait()
            handled.append(message.value)

        first = make_bus(tansu, topic)
        first.subscribe(topic, group, slow)
        await first.start()
        try:
            await first.publish(topic, "conv-1", b"done-before-stop")
            await asyncio.wait_for(started.wait(), DEADLINE)
            # stop() lets the message in flight finish, then commits it.
            stopping = asyncio.create_task(first.stop())
            await asyncio.sleep(0.2)
            release.set()
            await asyncio.wait_for(stopping, DEADLINE)
        finally:
            release.set()
            await first.stop()
        assert handled == [b"done-before-stop"]

        recorder = Recorder()
        second = make_bus(tansu, topic)
        second.subscribe(topic, group, recorder)
        async with running(second):
            await second.publish(topic, "conv-1", b"marker")
            await eventually(lambda: b"marker" in recorder.values, "the marker")
        assert recorder.values == [b"marker"]


class TestDeadLetters:
    async def test_failing_message_is_dead_lettered_and_the_rest_handled(self, tansu, kafka_names):
        topic, group = kafka_names.topic(), kafka_names.group()
        dlq = dead_letter_topic(topic, group)
        recorder = Recorder(fail_on=lambda m: m.value == b"poison")
        dead = Recorder()
        bus = make_bus(tansu, topic)
        bus.subscribe(topic, group, recorder)
        bus.subscribe(dlq, kafka_names.group("dlq-reader"), dead)
        before = metrics.DEAD_LETTERS.labels(topic=topic, group=group)._value.get()
        async with running(bus):
            await bus.publish_many(
                topic, [("conv-1", b"before"), ("conv-1", b"poison"), ("conv-1", b"after")]
            )
            await eventually(lambda: b"after" in recorder.values, "the message after the poison")
            await eventually(lambda: len(dead.messages) == 1, "the dead letter")

        assert recorder.values == [b"before", b"after"]
        assert recorder.attempts[b"poison"] == 3
        letter = dead.messages[0]
        assert letter.key == "conv-1"
        assert letter.value == b"poison"
        assert letter.headers["dlq.reason"] == "ValueError: cannot handle b'poison'"
        assert letter.headers["dlq.exception"] == "ValueError"
        assert letter.headers["dlq.topic"] == topic
        assert letter.headers["dlq.group"] == group
        assert letter.headers["dlq.attempts"] == "3"
        assert int(letter.headers["dlq.offset"]) >= 0
        assert metrics.DEAD_LETTERS.labels(topic=topic, group=group)._value.get() == before + 1

    async def test_dead_letter_waits_for_the_broker_instead_of_dropping_the_message(
        self, tansu, kafka_names
    ):
        topic, group = kafka_names.topic(), kafka_names.group()
        loop = asyncio.get_running_loop()

        def fails_and_takes_the_broker_down(message: Message) -> bool:
            if message.value != b"poison":
                return False
            if recorder.attempts[b"poison"] == 3:  # the last attempt: the dead letter is next
                tansu.pause()
                loop.call_later(3.0, tansu.resume)
            return True

        recorder = Recorder(fail_on=fails_and_takes_the_broker_down)
        dead = Recorder()
        counter = metrics.DEAD_LETTERS.labels(topic=topic, group=group)
        dead_letters_seen_by_next: list[float] = []
        handle = recorder.__call__

        async def handler(message: Message) -> None:
            if message.value == b"after":
                dead_letters_seen_by_next.append(counter._value.get())
            await handle(message)

        bus = make_bus(tansu, topic, settings={"bus_send_timeout_seconds": 1.0})
        bus.subscribe(topic, group, handler)
        bus.subscribe(dead_letter_topic(topic, group), kafka_names.group("dlq-reader"), dead)
        try:
            async with running(bus):
                await bus.publish_many(topic, [("conv-1", b"poison"), ("conv-1", b"after")])
                await eventually(lambda: b"after" in recorder.values, "the message after")
                await eventually(lambda: len(dead.messages) >= 1, "the dead letter")
                await asyncio.sleep(1.0)  # room for a duplicate to show up, if there were one
        finally:
            tansu.resume()
        # A send that timed out during the outage may have been written too (at least once).
        assert {m.value for m in dead.messages} == {b"poison"}
        assert recorder.values == [b"after"]
        assert dead_letters_seen_by_next == [1]  # the partition waited for the dead letter

    async def test_handler_that_recovers_within_its_attempts_is_not_dead_lettered(
        self, tansu, kafka_names
    ):
        topic, group = kafka_names.topic(), kafka_names.group()
        recorder = Recorder(fail_on=lambda m: recorder.attempts[m.value] < 3)
        dead = Recorder()
        bus = make_bus(tansu, topic)
        bus.subscribe(topic, group, recorder)
        bus.subscribe(dead_letter_topic(topic, group), kafka_names.group("dlq-reader"), dead)
        async with running(bus):
            await bus.publish_many(topic, [("conv-1", b"flaky"), ("conv-1", b"marker")])
            await eventually(lambda: b"marker" in recorder.values, "the marker")
        assert recorder.values == [b"flaky", b"marker"]
        assert dead.messages == []


class TestConsumerGroup:
    async def test_two_members_share_partitions_and_handle_each_message_once(
        self, tansu, kafka_names
    ):
        topic, group = kafka_names.topic(), kafka_names.group()
        members = [make_bus(tansu, topic), make_bus(tansu, topic)]
        recorders = [Recorder(), Recorder()]
        for bus, recorder in zip(members, recorders, strict=True):
            bus.subscribe(topic, group, recorder)
        sent = [(f"conv-{i}", f"m{i}".encode()) for i in range(60)]
        async with running(members[0]), running(members[1]):

            def shared() -> bool:
                a, b = (m.assignment() for m in members)
                return bool(a) and bool(b) and not a & b and len(a | b) == 3

            await eventually(shared, "both members to own partitions")
            await members[0].publish_many(topic, sent)
            await eventually(
                lambda: sum(len(r.messages) for r in recorders) >= len(sent), "every message"
            )
            await asyncio.sleep(1.0)  # room for a duplicate to show up, if there were one

        values = [v for r in recorders for v in r.values]
        assert sorted(values) == sorted(v for _, v in sent)
        assert all(r.messages for r in recorders)
        owned = [{m.partition for m in r.messages} for r in recorders]
        assert not owned[0] & owned[1]

    async def test_a_member_joining_mid_stream_takes_over_without_duplicates(
        self, tansu, kafka_names
    ):
        topic, group = kafka_names.topic(), kafka_names.group()
        handled: list[tuple[str, Message]] = []

        first, second = make_bus(tansu, topic), make_bus(tansu, topic)

        def member(name: str) -> Callable[[Message], Any]:
            async def handler(message: Message) -> None:
                if not second.assignment():
                    await asyncio.sleep(0.05)  # so the rebalance lands mid-stream
                handled.append((name, message))

            return handler

        first.subscribe(topic, group, member("first"))
        second.subscribe(topic, group, member("second"))
        sent = [(f"conv-{i % 30}", f"{i % 30}:{i}".encode()) for i in range(600)]
        async with running(first):
            await first.publish_many(topic, sent)
            await eventually(lambda: len(handled) >= 20, "the first member to get going")
            async with running(second):
                await eventually(lambda: len(handled) >= len(sent), "every message")
                await asyncio.sleep(1.0)  # room for a duplicate to show up, if there were one

        values = [m.value for _, m in handled]
        assert len(values) == len(set(values)) == len(sent)
        assert {name for name, _ in handled} == {"first", "second"}
        for key in {k for k, _ in sent}:
            # Per conversation, still in publish order across the hand-over.
            assert [m.value for _, m in handled if m.key == key] == [v for k, v in sent if k == key]


class TestBrokerOutage:
    async def test_publish_raises_bus_unavailable_while_paused_and_recovers(
        self, tansu, kafka_names
    ):
        topic = kafka_names.topic()
        bus = make_bus(tansu, topic, settings={"bus_send_timeout_seconds": 1.0})
        async with running(bus):
            await bus.publish(topic, "conv-1", b"before")
            async with tansu.paused():
                with pytest.raises(BusUnavailable) as raised:
                    await asyncio.wait_for(bus.publish(topic, "conv-1", b"during"), DEADLINE)
                assert raised.value.retry_after > 0
                assert await bus.ping() is False
            await publish_when_back(bus, topic, "conv-1", b"after")
            assert await bus.ping() is True

    async def test_consumer_survives_a_pause_and_handles_later_messages(self, tansu, kafka_names):
        topic, group = kafka_names.topic(), kafka_names.group()
        recorder = Recorder()
        bus = make_bus(tansu, topic)
        bus.subscribe(topic, group, recorder)
        async with running(bus):
            await bus.publish(topic, "conv-1", b"before")
            await eventually(lambda: b"before" in recorder.values, "the first message")
            async with tansu.paused(3.0):
                pass
            await publish_when_back(bus, topic, "conv-1", b"after")
            await eventually(lambda: b"after" in recorder.values, "the message after the pause")

    async def test_consumer_rejoins_after_a_pause_longer_than_its_session(self, tansu, kafka_names):
        topic, group = kafka_names.topic(), kafka_names.group()
        recorder = Recorder()
        bus = make_bus(tansu, topic)
        bus.subscribe(topic, group, recorder)
        async with running(bus):
            await bus.publish(topic, "conv-1", b"before")
            await eventually(lambda: b"before" in recorder.values, "the first message")
            async with tansu.paused(SESSION_MS / 1000 + 2):
                pass
            await publish_when_back(bus, topic, "conv-2", b"after")
            await eventually(lambda: b"after" in recorder.values, "the message after the pause")

    async def test_broker_unreachable_at_start_then_connects_in_background(
        self, tansu, kafka_names
    ):
        topic, group = kafka_names.topic(), kafka_names.group()
        recorder = Recorder()
        bus = make_bus(tansu, topic, settings={"bus_send_timeout_seconds": 1.0})
        bus.subscribe(topic, group, recorder)
        try:
            async with tansu.paused():
                await asyncio.wait_for(bus.start(), DEADLINE)  # does not raise
                assert await bus.ping() is False
                with pytest.raises(BusUnavailable):
                    await bus.publish(topic, "conv-1", b"too-early")
            await publish_when_back(bus, topic, "conv-1", b"later")
            await eventually(lambda: b"later" in recorder.values, "the message after connecting")
            assert await bus.ping() is True
        finally:
            await bus.stop()


class TestLifecycle:
    async def test_subscribe_after_start_is_refused(self, tansu, kafka_names):
        async with running(make_bus(tansu, kafka_names.topic())) as bus:
            with pytest.raises(RuntimeError):
                bus.subscribe(kafka_names.topic(), kafka_names.group(), Recorder())

    async def test_stop_without_start_is_harmless(self, tansu, kafka_names):
        await make_bus(tansu, kafka_names.topic()).stop()


class BatchRecorder:
    """A batch handler: all or nothing, like a handler writing one transaction per batch."""

    def __init__(self, fail_on: Callable[[Message], bool] = lambda m: False) -> None:
        self.batches: list[list[bytes]] = []
        self.attempts: dict[bytes, int] = defaultdict(int)
        self._fail_on = fail_on

    async def __call__(self, messages: Sequence[Message]) -> None:
        for message in messages:
            self.attempts[message.value] += 1
        if any(self._fail_on(message) for message in messages):
            raise ValueError("cannot handle the batch")
        self.batches.append([message.value for message in messages])

    @property
    def values(self) -> list[bytes]:
        return [value for batch in self.batches for value in batch]


class TestBatches:
    async def test_waiting_messages_arrive_together_in_order(self, tansu, kafka_names):
        topic, group = kafka_names.topic(), kafka_names.group()
        recorder = BatchRecorder()
        # One partition, so all of them wait behind one worker and order is total.
        bus = make_bus(tansu, topic, settings={"bus_partitions": 1})
        bus.subscribe_batch(topic, group, recorder, max_batch=10)
        values = [f"m{index:02d}".encode() for index in range(25)]
        async with running(bus):
            # Published before the consumer has its partition: they are all waiting for it.
            await bus.publish_many(topic, [("k", value) for value in values])
            await eventually(lambda: len(recorder.values) == len(values), "every message")

        assert recorder.values == values
        assert max(len(batch) for batch in recorder.batches) == 10
        assert len(recorder.batches) < len(values)

    async def test_a_failing_batch_is_retried_one_by_one_and_only_the_poison_dead_lettered(
        self, tansu, kafka_names
    ):
        topic, group = kafka_names.topic(), kafka_names.group()
        dlq = dead_letter_topic(topic, group)
        recorder = BatchRecorder(fail_on=lambda m: m.value == b"poison")
        dead = Recorder()
        bus = make_bus(tansu, topic, settings={"bus_partitions": 1})
        bus.subscribe_batch(topic, group, recorder, max_batch=50)
        bus.subscribe(dlq, kafka_names.group("dlq-reader"), dead)
        sent = [b"a", b"b", b"poison", b"c", b"d"]
        async with running(bus):
            await bus.publish_many(topic, [("k", value) for value in sent])
            await eventually(lambda: b"d" in recorder.values, "the messages after the poison")
            await eventually(lambda: len(dead.messages) == 1, "the dead letter")

        assert recorder.values == [b"a", b"b", b"c", b"d"]
        assert dead.messages[0].value == b"poison"
        assert dead.messages[0].headers["dlq.attempts"] == "3"
        # Once as part of the batch, then three times alone.
        assert recorder.attempts[b"poison"] == 4

    async def test_subscribe_batch_after_start_is_refused(self, tansu, kafka_names):
        topic = kafka_names.topic()
        bus = make_bus(tansu, topic)
        async with running(bus):
            with pytest.raises(RuntimeError):
                bus.subscribe_batch(topic, kafka_names.group(), BatchRecorder())
