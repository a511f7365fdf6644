from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from omniroute.router.queues.service import ensure_queues
from omniroute.router.routing.rules import RoutingRules
from omniroute.router.runtime import RouterRuntime
from omniroute.shared import topics
from omniroute.shared.settings import RouterSettings
from omniroute.shared.transport import Message
from omniroute.shared.transport.inprocess import InProcessBus


@pytest.fixture
async def runtime(
    sessions: async_sessionmaker[AsyncSession],
) -> AsyncIterator[RouterRuntime]:
    """A router over a fresh database; dispatch passes are run by the test, not a timer."""
    bus = InProcessBus()
    published: list[Message] = []

    async def collect(message: Message) -> None:
        published.append(message)

    bus.subscribe(topics.ROUTING_EVENTS, "test", collect)
    runtime = RouterRuntime(sessions, bus, RouterSettings(), RoutingRules.load())
    runtime.published = published  # type: ignore[attr-defined]
    async with runtime.uow() as uow:
        await ensure_queues(uow.session, list(runtime.rules.queues))
    return runtime
