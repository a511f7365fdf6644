"""The embedded bus: publishing runs the subscribed handlers to completion in the caller.

So in the embedded default a contact is classified, routed and committed to the database
before the HTTP request that brought it returns, and a 2xx means durable.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Sequence

import structlog

from omniroute.shared.transport.base import (
    BatchHandler,
    BusUnavailable,
    Handler,
    Message,
    one_at_a_time,
)

log = structlog.get_logger(__name__)


class InProcessBus:
    def __init__(self, attempts: int = 3, backoff_seconds: float = 0.05) -> None:
        self._handlers: dict[str, list[tuple[str, Handler]]] = defaultdict(list)
        self._attempts = attempts
        self._backoff = backoff_seconds
        self._offsets: dict[str, int] = defaultdict(int)

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        return None

    async def ping(self) -> bool:
        return True

    def subscribe(self, topic: str, group: str, handler: Handler) -> None:
        self._handlers[topic].append((group, handler))

    def subscribe_batch(
        self, topic: str, group: str, handler: BatchHandler, max_batch: int = 100
    ) -> None:
        # Every publish runs to completion before it returns, so nothing ever waits to be
        # batched: each message is handed over alone.
        self.subscribe(topic, group, one_at_a_time(handler))

    async def publish(self, topic: str, key: str, value: bytes) -> None:
        offset = self._offsets[topic]
        self._offsets[topic] += 1
        message = Message(topic=topic, key=key, value=value, offset=offset)
        for group, handler in self._handlers.get(topic, ()):
            await self._deliver(group, handler, message)

    async def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> None:
        for key, value in items:
            await self.publish(topic, key, value)

    async def _deliver(self, group: str, handler: Handler, message: Message) -> None:
        for attempt in range(1, self._attempts + 1):
            try:
                await handler(message)
                return
            except Exception as exc:
                log.warning(
                    "bus.inprocess.handler_failed",
                    topic=message.topic,
                    group=group,
                    attempt=attempt,
                    error=type(exc).__name__,
                )
                if attempt == self._attempts:
                    # Not durable: the caller answers 503 and the integration retries.
                    raise BusUnavailable(f"{group} could not handle {message.topic}") from exc
                await asyncio.sleep(self._backoff * attempt)
