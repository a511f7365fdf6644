"""The bus interface every stage is written against.

Delivery is at least once: a handler may see the same message again after a crash or a
rebalance, so every handler must be idempotent. `publish` returning means the message is
durable (acknowledged by all in-sync replicas, or handled to completion in-process).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Protocol, TypeVar

from pydantic import BaseModel

from omniroute.shared.events import ClassifiedContact, classified_json


class BusUnavailable(Exception):
    """The bus could not make a message durable; the caller should retry later."""

    def __init__(self, message: str, retry_after: int = 5) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class Message:
    topic: str
    key: str | None
    value: bytes
    headers: dict[str, str] = field(default_factory=dict)
    partition: int = 0
    offset: int = 0


Handler = Callable[[Message], Awaitable[None]]
# Handles several messages at once (one transaction for all, say). It must be all or nothing:
# if it raises, the bus hands the same messages over again one at a time.
BatchHandler = Callable[[Sequence[Message]], Awaitable[None]]


def one_at_a_time(handler: BatchHandler) -> Handler:
    """The batch handler as a handler of single messages (a batch of one)."""

    async def handle(message: Message) -> None:
        await handler([message])

    return handle


class Bus(Protocol):
    async def start(self) -> None:
        """Connect, create topics as needed and start the subscribed consumers."""

    async def stop(self) -> None:
        """Stop consuming (committing what is done) and flush producers."""

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        """Return once the message is durable; raise BusUnavailable otherwise."""

    async def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> None:
        """Publish several messages; return once all are durable."""

    def subscribe(self, topic: str, group: str, handler: Handler) -> None:
        """Register a handler before start(); one consumer group per (topic, group)."""

    def subscribe_batch(
        self, topic: str, group: str, handler: BatchHandler, max_batch: int = 100
    ) -> None:
        """Like subscribe, but hand over what has arrived together, up to max_batch at once.

        A batch forms only from messages already waiting, so a busy consumer amortises its
        per-call costs (a commit, a dispatch pass) while an idle one answers each at once.
        """

    async def ping(self) -> bool:
        """Whether the bus is reachable now (readiness)."""


E = TypeVar("E", bound=BaseModel)


def encode_event(event: BaseModel) -> bytes:
    # The bytes `model_dump_json().encode()` gives, without the round trip through a str
    # (pydantic-core writes bytes; model_dump_json decodes them, and encode() undoes that).
    # A ClassifiedContact, the classifier's one output per contact, has a faster writer of
    # the same bytes.
    if type(event) is ClassifiedContact:
        return classified_json(event)
    return event.__pydantic_serializer__.to_json(event)


def decode_event(model: type[E], value: bytes) -> E:
    return model.model_validate_json(value)
