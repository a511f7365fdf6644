"""The Kafka bus (aiokafka): at-least-once delivery with manual commits and dead-letter topics.

Works against any Kafka-protocol broker. Tested against Tansu, which shapes a few choices:
it refuses InitProducerId (so the idempotent producer is tried and dropped when refused), it
auto-creates unknown topics on a metadata request (so topics are created explicitly, with the
configured partition count, before anything produces or subscribes), and it holds a JoinGroup
for about half the session timeout (so a consumer takes a few seconds to get its partitions).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import math
import ssl
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

import structlog
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, ConsumerRecord, TopicPartition
from aiokafka.abc import ConsumerRebalanceListener
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import (
    ClusterAuthorizationFailedError,
    CommitFailedError,
    KafkaConnectionError,
    KafkaError,
    TopicAlreadyExistsError,
    TopicAuthorizationFailedError,
)
from aiokafka.protocol.group import LeaveGroupRequest

from omniroute.shared import metrics
from omniroute.shared.settings import BusSettings
from omniroute.shared.topics import ALL_TOPICS, dead_letter_topic
from omniroute.shared.transport.base import (
    BatchHandler,
    BusUnavailable,
    Handler,
    Message,
    one_at_a_time,
)
from omniroute.shared.transport.partitioner import default_partition

log = structlog.get_logger(__name__)


def connection_security(settings: BusSettings) -> dict[str, Any]:
    """aiokafka's connection options for the configured security protocol (every client)."""
    protocol = settings.bus_security_protocol
    options: dict[str, Any] = {"security_protocol": protocol}
    if protocol in ("SSL", "SASL_SSL"):
        # The standard library's default context: the system's CAs unless a file is named,
        # certificate and host name verified.
        context = ssl.create_default_context(
            cafile=str(settings.bus_ssl_cafile) if settings.bus_ssl_cafile else None
        )
        if settings.bus_ssl_certfile is not None:
            context.load_cert_chain(
                settings.bus_ssl_certfile,
                settings.bus_ssl_keyfile,
            )
        options["ssl_context"] = context
    if protocol in ("SASL_PLAINTEXT", "SASL_SSL"):
        assert settings.bus_sasl_password is not None  # checked by the settings
        options.update(
            sasl_mechanism=settings.bus_sasl_mechanism,
            sasl_plain_username=settings.bus_sasl_username,
            sasl_plain_password=settings.bus_sasl_password.get_secret_value(),
        )
    return options


RETRY_AFTER_SECONDS = 5
PING_TIMEOUT_SECONDS = 2.0
MAX_BACKOFF_SECONDS = 5.0
FETCH_TIMEOUT_MS = 500
MAX_RECORDS_PER_FETCH = 200
REASON_MAX_CHARS = 500
CONSUMER_START_TIMEOUT_SECONDS = 30.0
COMMIT_INTERVAL_SECONDS = 0.2
# How often acks past their deadline are failed: a publish answers within its send timeout
# plus this.
ACK_CHECK_SECONDS = 0.1
# How long the broker may hold a fetch that has nothing yet: also how soon a partition resumed
# after its worker finished is fetched again.
FETCH_MAX_WAIT_MS = 100
NOT_ALLOWED_ERRNOS = (TopicAuthorizationFailedError.errno, ClusterAuthorizationFailedError.errno)
# Header names on dead-lettered messages; the original headers are kept beside them.
DLQ_HEADERS = (
    "dlq.reason",
    "dlq.exception",
    "dlq.topic",
    "dlq.partition",
    "dlq.offset",
    "dlq.group",
    "dlq.attempts",
)


def _backoff(attempt: int, base: float = 0.1) -> float:
    return float(min(base * 2 ** max(attempt - 1, 0), MAX_BACKOFF_SECONDS))


def _to_message(record: ConsumerRecord[bytes, bytes]) -> Message:
    key = record.key.decode("utf-8", errors="replace") if record.key is not None else None
    headers = {
        name: (raw or b"").decode("utf-8", errors="replace") for name, raw in record.headers or ()
    }
    return Message(
        topic=record.topic,
        key=key,
        value=record.value or b"",
        headers=headers,
        partition=record.partition,
        offset=record.offset,
    )


@dataclass(slots=True)
class _Subscription:
    topic: str
    group: str
    handler: Handler
    # Set for subscribe_batch: `handler` then hands it one message at a time (the fallback).
    batch_handler: BatchHandler | None = None
    max_batch: int = 1


@dataclass(slots=True)
class _Stopping:
    """Set once by KafkaBus.stop(); sleeps that can be cut short wait on it."""

    event: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def is_set(self) -> bool:
        return self.event.is_set()

    async def sleep(self, seconds: float) -> bool:
        """Sleep unless stopping; True if the full sleep elapsed."""
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.event.wait(), seconds)
        return not self.event.is_set()


class AckTimeout(Exception):
    """The broker did not acknowledge a message by its deadline."""


class _AckDeadlines:
    """Fails every ack the broker has not given by its deadline; checked every
    ACK_CHECK_SECONDS by one task of the bus.

    One watch rather than a timer per publish: asyncio.timeout sets and clears an event-loop
    timer per message, about a quarter of what a publish costs in aiokafka. Every publish of a
    bus has the same send timeout, so deadlines come in order: only the oldest is looked at.
    """

    def __init__(self) -> None:
        self._waiting: collections.deque[tuple[float, asyncio.Future[Any]]] = collections.deque()

    def watch(self, deadline: float, acks: Iterable[asyncio.Future[Any]]) -> None:
        for ack in acks:
            self._waiting.append((deadline, ack))

    def expire(self, now: float) -> None:
        waiting = self._waiting
        while waiting:
            deadline, ack = waiting[0]
            if not ack.done():
                if deadline > now:
                    return
                ack.set_exception(AckTimeout())
                ack.exception()  # retrieved: a caller that gave up must not log it as lost
            waiting.popleft()

    async def run(self, stopping: _Stopping) -> None:
        loop = asyncio.get_running_loop()
        while await stopping.sleep(ACK_CHECK_SECONDS):
            self.expire(loop.time())


class KafkaBus:
    """The Bus protocol over Kafka.

    `publish` returns once every in-sync replica has the message (acks=all) and raises
    BusUnavailable when that does not happen within `bus_send_timeout_seconds`. A message
    that timed out may still be written later: callers retry, consumers are idempotent.
    """

    def __init__(
        self,
        settings: BusSettings,
        *,
        topics: Iterable[str] = ALL_TOPICS,
        session_timeout_ms: int = 10_000,
        stop_grace_seconds: float = 30.0,
    ) -> None:
        self._settings = settings
        self._topics = list(dict.fromkeys(topics))
        self._session_timeout_ms = session_timeout_ms
        self._stop_grace = stop_grace_seconds
        self._subscriptions: list[_Subscription] = []
        self._producer: AIOKafkaProducer | None = None
        self._consumers: list[_Consumer] = []
        self._tasks: list[asyncio.Task[None]] = []
        self._stopping = _Stopping()
        self._ack_deadlines = _AckDeadlines()
        self._started = False

    @property
    def _send_timeout(self) -> float:
        return self._settings.bus_send_timeout_seconds

    # Lifecycle

    async def start(self) -> None:
        if self._started:
            raise RuntimeError("KafkaBus.start() called twice")
        self._started = True
        self._tasks.append(asyncio.create_task(self._ack_deadlines.run(self._stopping)))
        try:
            await self._connect()
        except (KafkaError, OSError, TimeoutError) as exc:
            # A broker that is not up yet must not take the service down: publish answers
            # BusUnavailable and ping() False until the background connection succeeds.
            log.warning(
                "bus.kafka.connect_failed",
                bootstrap=self._settings.bootstrap_servers,
                error=type(exc).__name__,
                detail=str(exc),
            )
            self._tasks.append(asyncio.create_task(self._connect_forever()))
            return
        self._start_consumers()

    async def stop(self) -> None:
        self._stopping.event.set()
        tasks, self._tasks = self._tasks, []
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=self._stop_grace)
            for task in pending:
                # A handler that outlived the grace period: its message stays uncommitted
                # and is delivered again after restart.
                log.warning("bus.kafka.stop_cancelled")
                task.cancel()
            if pending:
                # Closing a consumer is bounded (final commit, close, leave): never hang here.
                _, stuck = await asyncio.wait(pending, timeout=3 * self._send_timeout + 5)
                if stuck:
                    log.error("bus.kafka.stop_abandoned", tasks=len(stuck))
        if self._producer is not None:
            producer, self._producer = self._producer, None
            try:
                await asyncio.wait_for(producer.stop(), self._send_timeout)
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("bus.kafka.producer_close_failed", error=type(exc).__name__)
        # The watch has stopped with the other tasks: what the closed producer did not
        # acknowledge, nothing will.
        self._ack_deadlines.expire(math.inf)
        log.info("bus.kafka.stopped")

    async def ping(self) -> bool:
        producer = self._producer
        if producer is None:
            return False
        try:
            await asyncio.wait_for(producer.client.fetch_all_metadata(), PING_TIMEOUT_SECONDS)
        except (KafkaError, OSError, TimeoutError):
            return False
        return True

    def assignment(self) -> set[tuple[str, int]]:
        """The (topic, partition) pairs this process consumes now, over all subscriptions."""
        return {(tp.topic, tp.partition) for c in self._consumers for tp in c.assigned}

    def subscribe(self, topic: str, group: str, handler: Handler) -> None:
        if self._started:
            raise RuntimeError("subscribe() must be called before start()")
        self._subscriptions.append(_Subscription(topic=topic, group=group, handler=handler))

    def subscribe_batch(
        self, topic: str, group: str, handler: BatchHandler, max_batch: int = 100
    ) -> None:
        if self._started:
            raise RuntimeError("subscribe_batch() must be called before start()")
        self._subscriptions.append(
            _Subscription(
                topic=topic,
                group=group,
                handler=one_at_a_time(handler),
                batch_handler=handler,
                max_batch=max(1, max_batch),
            )
        )

    # Publishing

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        await self.publish_many(topic, [(key, value)])

    async def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> None:
        await self._send(topic, [(key, value, []) for key, value in items])

    async def _send(
        self, topic: str, items: Sequence[tuple[str | None, bytes, list[tuple[str, bytes]]]]
    ) -> None:
        producer = self._producer
        if producer is None:
            raise BusUnavailable("the Kafka bus is not connected", retry_after=RETRY_AFTER_SECONDS)
        deadline = asyncio.get_running_loop().time() + self._send_timeout
        try:
            # Queue everything first so the producer batches, then wait for every ack. send()
            # itself is bounded by the producer's request timeout (the send timeout), the acks
            # by the deadline watch.
            acks = [
                await producer.send(
                    topic,
                    value,
                    key=key.encode() if key is not None else None,
                    headers=headers or None,
                )
                for key, value, headers in items
            ]
            self._ack_deadlines.watch(deadline, acks)
            if len(acks) == 1:
                await acks[0]  # the usual case (one contact per request): no gather task
            else:
                await asyncio.gather(*acks)
        except AckTimeout as exc:
            log.warning("bus.kafka.send_timeout", topic=topic, count=len(items))
            raise BusUnavailable(
                f"Kafka did not acknowledge {topic} within {self._send_timeout}s",
                retry_after=RETRY_AFTER_SECONDS,
            ) from exc
        except KafkaError as exc:
            log.warning("bus.kafka.send_failed", topic=topic, error=type(exc).__name__)
            raise BusUnavailable(
                f"Kafka refused {topic}: {type(exc).__name__}", retry_after=RETRY_AFTER_SECONDS
            ) from exc

    async def _send_patiently(
        self, topic: str, key: bytes | None, value: bytes, headers: list[tuple[str, bytes]]
    ) -> bool:
        """Send once and wait for the ack as long as it takes; False if stopping first.

        Unlike publish there is no caller waiting for an answer, so rather than time out and
        send again (a duplicate once the broker is back) wait for the producer's own retries.
        """
        producer = self._producer
        if producer is None:
            return False
        ack = await producer.send(topic, value, key=key, headers=headers or None)
        stopping = asyncio.ensure_future(self._stopping.event.wait())
        try:
            await asyncio.wait({ack, stopping}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            stopping.cancel()
        if not ack.done():
            # Retrieve its outcome later so a failure is not reported as never retrieved.
            ack.add_done_callback(lambda f: f.cancelled() or f.exception())
            return False
        ack.result()
        return True

    # Connection

    async def _connect_forever(self) -> None:
        attempt = 0
        while not self._stopping.is_set:
            attempt += 1
            if not await self._stopping.sleep(_backoff(attempt, base=0.5)):
                return
            try:
                await self._connect()
            except (KafkaError, OSError, TimeoutError) as exc:
                log.warning("bus.kafka.connect_retry", attempt=attempt, error=type(exc).__name__)
                continue
            log.info("bus.kafka.connected", attempts=attempt + 1)
            self._start_consumers()
            return

    async def _connect(self) -> None:
        # Topics first: Tansu (and brokers with auto.create.topics.enable) would otherwise
        # create them on first use with the broker's default partition count.
        await self._ensure_topics()
        self._producer = await self._start_producer()

    async def _start_producer(self) -> AIOKafkaProducer:
        try:
            return await self._new_producer(idempotent=True)
        except KafkaConnectionError:
            raise
        except KafkaError as exc:
            # Tansu answers InitProducerId with an error: without idempotence a producer retry
            # can duplicate a message, which idempotent consumers absorb anyway.
            log.info("bus.kafka.idempotence_unavailable", error=type(exc).__name__)
            return await self._new_producer(idempotent=False)

    async def _new_producer(self, *, idempotent: bool) -> AIOKafkaProducer:
        producer = AIOKafkaProducer(
            bootstrap_servers=self._settings.bootstrap_servers,
            **connection_security(self._settings),
            client_id=self._settings.bus_client_id,
            acks="all",
            enable_idempotence=idempotent,
            partitioner=default_partition,
            # A request the broker has not answered by the send timeout is retried instead of
            # holding its partition (aiokafka sends one batch per partition at a time).
            request_timeout_ms=max(1000, int(self._send_timeout * 1000)),
        )
        try:
            await asyncio.wait_for(producer.start(), self._send_timeout)
        except BaseException:
            with contextlib.suppress(Exception):
                await producer.stop()
            raise
        return producer

    async def _ensure_topics(self) -> None:
        wanted = list(self._topics)
        for sub in self._subscriptions:
            wanted += [sub.topic, dead_letter_topic(sub.topic, sub.group)]
        wanted = list(dict.fromkeys(wanted))
        admin = AIOKafkaAdminClient(
            bootstrap_servers=self._settings.bootstrap_servers,
            **connection_security(self._settings),
            client_id=f"{self._settings.bus_client_id}-admin",
            request_timeout_ms=max(1000, int(self._send_timeout * 1000)),
        )
        try:
            await asyncio.wait_for(admin.start(), self._send_timeout)
            cluster = await asyncio.wait_for(admin.describe_cluster(), self._send_timeout)
            replication = max(1, min(3, len(cluster.get("brokers", ()))))
            retention_ms = int(self._settings.bus_retention_hours * 3_600_000)
            configs = {"retention.ms": str(retention_ms)}
            response = await asyncio.wait_for(
                admin.create_topics(
                    [
                        NewTopic(
                            name,
                            self._settings.bus_partitions,
                            replication,
                            topic_configs=configs,
                        )
                        for name in wanted
                    ]
                ),
                self._send_timeout,
            )
        finally:
            with contextlib.suppress(Exception):
                await admin.close()
        for name, code, message in ((e[0], e[1], e[2]) for e in response.topic_errors):
            if code == TopicAlreadyExistsError.errno:
                continue
            if code in NOT_ALLOWED_ERRNOS:
                # Clusters where ops provision topics: use them as they are.
                log.warning("bus.kafka.topic_not_managed", topic=name, error_code=code)
                continue
            if code != 0:
                raise KafkaError(f"could not create topic {name}: {code} {message}")
            log.info(
                "bus.kafka.topic_created", topic=name, partitions=self._settings.bus_partitions
            )

    async def _leave_group(self, node: int, group: str, member_id: str) -> None:
        producer = self._producer
        if producer is None:
            return
        try:
            await asyncio.wait_for(
                producer.client.send(node, LeaveGroupRequest(group, member_id)),
                PING_TIMEOUT_SECONDS,
            )
        except (KafkaError, OSError, TimeoutError) as exc:
            log.info("bus.kafka.leave_group_failed", group=group, error=type(exc).__name__)

    def _start_consumers(self) -> None:
        if self._stopping.is_set:
            return
        for sub in self._subscriptions:
            consumer = _Consumer(self, sub)
            self._consumers.append(consumer)
            self._tasks.append(asyncio.create_task(consumer.run(), name=f"kafka:{sub.group}"))


class _Consumer:
    """One consumer group member for one subscription.

    Each partition with records gets a worker task and is paused until the worker is done,
    so records of a partition are handled in order while partitions proceed independently
    (a slow or retrying record holds up only its own partition). An offset is committed only
    once its record was handled or dead-lettered, and never past a record that was not.
    """

    def __init__(self, bus: KafkaBus, sub: _Subscription) -> None:
        self._bus = bus
        self._sub = sub
        self._settings = bus._settings
        self._stopping = bus._stopping
        self._dlq_topic = dead_letter_topic(sub.topic, sub.group)
        self._done: dict[TopicPartition, int] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._revoking: set[TopicPartition] = set()
        self.assigned: set[TopicPartition] = set()
        self._workers: dict[TopicPartition, asyncio.Task[None]] = {}
        self._commit_lock = asyncio.Lock()
        self._progress = asyncio.Event()  # set when a worker finished records
        self._log = log.bind(topic=sub.topic, group=sub.group)

    async def run(self) -> None:
        attempt = 0
        while not self._stopping.is_set:
            consumer = self._new_consumer()
            try:
                await asyncio.wait_for(consumer.start(), CONSUMER_START_TIMEOUT_SECONDS)
            except (KafkaError, OSError, TimeoutError) as exc:
                attempt += 1
                self._log.warning(
                    "bus.kafka.consumer_start_failed", attempt=attempt, error=type(exc).__name__
                )
                await self._close(consumer, commit=False)
                await self._stopping.sleep(_backoff(attempt, base=0.5))
                continue
            attempt = 0
            self._log.info("bus.kafka.consumer_started")
            try:
                await self._consume(consumer)
            except Exception as exc:
                # Commits are exact, so starting over from a fresh consumer loses nothing.
                self._log.exception("bus.kafka.consumer_failed", error=type(exc).__name__)
                await self._stopping.sleep(1.0)
            finally:
                await self._close(consumer, commit=True)

    def _new_consumer(self) -> AIOKafkaConsumer:
        self._done.clear()
        self._committed.clear()
        consumer = AIOKafkaConsumer(
            bootstrap_servers=self._settings.bootstrap_servers,
            **connection_security(self._settings),
            client_id=f"{self._settings.bus_client_id}-{self._sub.group}",
            group_id=self._sub.group,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=FETCH_MAX_WAIT_MS,
            session_timeout_ms=self._bus._session_timeout_ms,
            heartbeat_interval_ms=max(100, self._bus._session_timeout_ms // 3),
        )
        consumer.subscribe([self._sub.topic], listener=_Rebalance(self, consumer))
        return consumer

    async def _consume(self, consumer: AIOKafkaConsumer) -> None:
        committer = asyncio.create_task(self._commit_continually(consumer))
        try:
            while not self._stopping.is_set:
                self._reap()
                batch = await consumer.getmany(
                    timeout_ms=FETCH_TIMEOUT_MS, max_records=MAX_RECORDS_PER_FETCH
                )
                self._reap()
                for tp, records in batch.items():
                    self._dispatch(consumer, tp, records)
                if committer.done():
                    committer.result()  # it failed: start over with a fresh consumer
        except BaseException:
            # Cancelled (the stop grace ran out) or broken: do not wait for the handlers.
            for task in self._workers.values():
                task.cancel()
            raise
        finally:
            committer.cancel()
            # On a plain stop each worker ends after the record in hand; if this wait is
            # cancelled, gather cancels the workers too.
            workers = list(self._workers.values())
            try:
                if workers:
                    await asyncio.gather(*workers, return_exceptions=True)
            finally:
                self._workers.clear()

    async def _commit_continually(self, consumer: AIOKafkaConsumer) -> None:
        """Commit what the workers finished, beside the fetch loop: a broker slow to answer a
        commit (Tansu took seconds under load) must not hold up the next fetch."""
        while True:
            await self._progress.wait()
            self._progress.clear()
            await self.commit(consumer)
            await asyncio.sleep(COMMIT_INTERVAL_SECONDS)  # many finished batches, one commit

    def _dispatch(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
    ) -> None:
        if tp in self._revoking:
            return  # its next owner reads from the last commit
        if tp in self._workers:
            # A paused partition yields nothing, so this should not happen; if it does, rewind
            # rather than skip the records.
            self._log.warning("bus.kafka.partition_busy", partition=tp.partition)
            consumer.seek(tp, records[0].offset)
            return
        consumer.pause(tp)
        self._workers[tp] = asyncio.create_task(self._work(consumer, tp, records))

    def _reap(self) -> None:
        for tp, task in list(self._workers.items()):
            if not task.done():
                continue
            del self._workers[tp]
            error = None if task.cancelled() else task.exception()
            if error is not None:
                # The partition's position is past records it did not handle: start over
                # from the last commit with a fresh consumer.
                raise error

    async def _work(
        self,
        consumer: AIOKafkaConsumer,
        tp: TopicPartition,
        records: list[ConsumerRecord[bytes, bytes]],
    ) -> None:
        size = self._sub.max_batch
        for start in range(0, len(records), size):
            chunk = records[start : start + size]
            # Stopping or losing the partition: leave the rest uncommitted for whoever
            # consumes it next (this member after restart, or the partition's new owner).
            if self._stopping.is_set or tp in self._revoking:
                return
            if len(chunk) > 1 and await self._handle_batch(chunk):
                self._done[tp] = chunk[-1].offset + 1
                self._progress.set()
                continue
            for record in chunk:
                if self._stopping.is_set or tp in self._revoking:
                    return
                if not await self._handle(record):
                    return
                self._done[tp] = record.offset + 1
                self._progress.set()
        if tp in consumer.assignment() and tp not in self._revoking:
            consumer.resume(tp)

    async def _handle_batch(self, records: list[ConsumerRecord[bytes, bytes]]) -> bool:
        """One try at the whole batch; False sends it through the one-at-a-time path, where
        a poison message is retried and dead-lettered alone instead of failing its batch."""
        assert self._sub.batch_handler is not None
        try:
            await self._sub.batch_handler([_to_message(record) for record in records])
        except Exception as exc:
            self._log.warning(
                "bus.kafka.batch_failed",
                partition=records[0].partition,
                offsets=f"{records[0].offset}-{records[-1].offset}",
                error=type(exc).__name__,
            )
            return False
        return True

    async def _handle(self, record: ConsumerRecord[bytes, bytes]) -> bool:
        """Run the handler with retries, dead-letter on exhaustion; False if abandoned."""
        message = _to_message(record)
        attempts = max(1, self._settings.bus_handler_attempts)
        error: Exception | None = None
        for attempt in range(1, attempts + 1):
            try:
                await self._sub.handler(message)
                return True
            except Exception as exc:
                error = exc
                self._log.warning(
                    "bus.kafka.handler_failed",
                    partition=record.partition,
                    offset=record.offset,
                    attempt=attempt,
                    error=type(exc).__name__,
                )
            if attempt < attempts and not await self._stopping.sleep(_backoff(attempt)):
                return False
        assert error is not None
        return await self._dead_letter(record, error, attempts)

    async def _dead_letter(
        self, record: ConsumerRecord[bytes, bytes], error: Exception, attempts: int
    ) -> bool:
        reason = f"{type(error).__name__}: {error}"[:REASON_MAX_CHARS]
        dlq = dict(
            zip(
                DLQ_HEADERS,
                (
                    reason,
                    type(error).__name__,
                    record.topic,
                    str(record.partition),
                    str(record.offset),
                    self._sub.group,
                    str(attempts),
                ),
                strict=True,
            )
        )
        headers = [(n, v) for n, v in record.headers or () if n not in dlq]
        headers += [(name, value.encode()) for name, value in dlq.items()]
        attempt = 0
        while True:
            attempt += 1
            try:
                written = await self._bus._send_patiently(
                    self._dlq_topic, record.key, record.value or b"", headers
                )
            except KafkaError as exc:
                # Committing without the dead letter would lose the message: hold the partition.
                self._log.warning(
                    "bus.kafka.dead_letter_retry", attempt=attempt, error=type(exc).__name__
                )
                if not await self._stopping.sleep(_backoff(attempt, base=0.5)):
                    return False
                continue
            if not written:
                return False
            metrics.DEAD_LETTERS.labels(topic=record.topic, group=self._sub.group).inc()
            self._log.error(
                "bus.kafka.dead_lettered",
                partition=record.partition,
                offset=record.offset,
                dlq_topic=self._dlq_topic,
                error=type(error).__name__,
            )
            return True

    async def commit(
        self, consumer: AIOKafkaConsumer, only: Iterable[TopicPartition] | None = None
    ) -> None:
        async with self._commit_lock:
            assigned = consumer.assignment()
            scope = set(only) if only is not None else set(self._done)
            offsets = {
                tp: offset
                for tp, offset in self._done.items()
                if tp in scope and tp in assigned and offset > self._committed.get(tp, -1)
            }
            if not offsets:
                return
            try:
                await consumer.commit(offsets)
            except CommitFailedError:
                # The group moved on: the partitions' new owners redeliver from the last commit.
                self._log.warning("bus.kafka.commit_rejected", partitions=len(offsets))
                for tp in offsets:
                    self._done.pop(tp, None)
                return
            except KafkaError as exc:
                self._log.warning("bus.kafka.commit_failed", error=type(exc).__name__)
                return
            self._committed.update(offsets)

    async def on_revoked(self, consumer: AIOKafkaConsumer, revoked: set[TopicPartition]) -> None:
        self.assigned -= revoked
        if not revoked:
            return
        self._revoking = set(revoked)
        try:
            # Workers of revoked partitions stop at the next record boundary. asyncio.wait,
            # not gather: if the rebalance is cancelled the workers must not be.
            workers = [task for tp, task in self._workers.items() if tp in revoked]
            if workers:
                await asyncio.wait(workers)
            await self.commit(consumer, only=revoked)
        finally:
            for tp in revoked:
                self._done.pop(tp, None)
                self._committed.pop(tp, None)
            self._revoking = set()
        self._log.info("bus.kafka.partitions_revoked", partitions=len(revoked))

    def on_assigned(self, assigned: set[TopicPartition]) -> None:
        self.assigned = set(assigned)
        self._log.info(
            "bus.kafka.partitions_assigned", partitions=sorted(p.partition for p in assigned)
        )

    async def _close(self, consumer: AIOKafkaConsumer, *, commit: bool) -> None:
        self.assigned = set()
        grace = self._settings.bus_send_timeout_seconds
        if commit:
            try:
                await asyncio.wait_for(self.commit(consumer), grace)
            except TimeoutError:
                self._log.warning("bus.kafka.final_commit_timeout")
        membership = _generation_zero_membership(consumer)
        try:
            await asyncio.wait_for(consumer.stop(), grace)
        except (KafkaError, OSError, TimeoutError) as exc:
            self._log.warning("bus.kafka.consumer_close_failed", error=type(exc).__name__)
        if membership is not None:
            await self._bus._leave_group(*membership)


def _generation_zero_membership(consumer: AIOKafkaConsumer) -> tuple[int, str, str] | None:
    """(coordinator, group, member) when aiokafka will not send LeaveGroup on stop.

    aiokafka only leaves a group whose generation is above 0, as Kafka numbers them from 1;
    Tansu starts at 0, so without this a restarted member's partitions would wait a whole
    session timeout for the old member to expire.
    """
    coordinator = getattr(consumer, "_coordinator", None)
    generation = getattr(coordinator, "generation", None)
    member_id = getattr(coordinator, "member_id", None)
    node = getattr(coordinator, "coordinator_id", None)
    group = getattr(coordinator, "group_id", None)
    if generation != 0 or not member_id or node is None or not group:
        return None
    return node, str(group), str(member_id)


class _Rebalance(ConsumerRebalanceListener):
    def __init__(self, owner: _Consumer, consumer: AIOKafkaConsumer) -> None:
        self._owner = owner
        self._consumer = consumer

    async def on_partitions_revoked(self, revoked: set[TopicPartition]) -> None:
        await self._owner.on_revoked(self._consumer, set(revoked))

    async def on_partitions_assigned(self, assigned: set[TopicPartition]) -> None:
        self._owner.on_assigned(set(assigned))
