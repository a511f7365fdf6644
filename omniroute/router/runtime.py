"""The router's running parts: units of work with their after-commit effects, the dispatch
loop (offer expiry and dispatch on a timer and on demand), and long-poll wake-ups."""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
from collections import defaultdict
from collections.abc import AsyncIterator, Callable, Coroutine
from contextlib import asynccontextmanager
from datetime import timedelta
from typing import Any

import structlog
from sqlalchemy.exc import DBAPIError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from omniroute.router.queues.service import ensure_queues
from omniroute.router.routing.engine import (
    DISPATCH_BATCH,
    StaleAgent,
    dispatch,
    expire_offers,
    refresh_queue_depths,
)
from omniroute.router.routing.rules import RoutingRules
from omniroute.router.uow import UnitOfWork, unit_of_work
from omniroute.shared import topics
from omniroute.shared.events import RoutingEvent, utcnow
from omniroute.shared.settings import RouterSettings
from omniroute.shared.transport import Bus, BusUnavailable, encode_event

log = structlog.get_logger(__name__)

QUEUE_DEPTH_REFRESH_SECONDS = 5.0
# Transactions whose events wait for the feed; past this, committers wait for the broker.
EVENT_FEED_BACKLOG = 1000
EVENT_FEED_DRAIN_SECONDS = 5.0

BackgroundJob = Callable[["RouterRuntime"], Coroutine[Any, Any, None]]


def follower_coalesce(settings: RouterSettings) -> float:
    """How long a timer that follows routing work (notices, webhooks) lets kicks gather: a
    little longer than a dispatch pass, so a burst of events makes one pass."""
    return settings.dispatch_coalesce_seconds * 2.5


async def next_tick(kick: asyncio.Event, interval: float, coalesce: float = 0.0) -> None:
    """Wait for a kick or the interval, whichever comes first, then clear the kick.

    With `coalesce`, a kicked wait lingers that long so a burst of kicks makes one pass.
    """
    with contextlib.suppress(TimeoutError):
        async with asyncio.timeout(interval):
            await kick.wait()
    if kick.is_set() and coalesce:
        await asyncio.sleep(coalesce)
    kick.clear()


class OfferNotifier:
    """Wakes the long-polls of agents who were just offered work (in this process)."""

    def __init__(self) -> None:
        self._waiters: dict[uuid.UUID, set[asyncio.Future[None]]] = defaultdict(set)

    def notify(self, agent_ids: set[uuid.UUID]) -> None:
        for agent_id in agent_ids:
            for waiter in self._waiters.pop(agent_id, set()):
                if not waiter.done():
                    waiter.set_result(None)

    async def wait(self, agent_id: uuid.UUID, seconds: float) -> None:
        waiter: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._waiters[agent_id].add(waiter)
        try:
            # asyncio.timeout, not wait_for: on 3.11 wait_for can swallow a cancellation.
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(seconds):
                    await waiter
        finally:
            waiters = self._waiters.get(agent_id)
            if waiters is not None:
                waiters.discard(waiter)
                if not waiters:
                    self._waiters.pop(agent_id, None)


class RouterRuntime:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        bus: Bus,
        settings: RouterSettings,
        rules: RoutingRules,
    ) -> None:
        self.sessions = sessions
        self.bus = bus
        self.settings = settings
        self.rules = rules
        self.notifier = OfferNotifier()
        self._kick = asyncio.Event()
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None
        self._background: list[tuple[str, BackgroundJob]] = []
        self._background_tasks: list[asyncio.Task[None]] = []
        self._commit_listeners: list[Callable[[UnitOfWork], None]] = []
        self._depths_due = 0.0
        self._feed: asyncio.Queue[list[RoutingEvent]] = asyncio.Queue(EVENT_FEED_BACKLOG)
        self._feed_task: asyncio.Task[None] | None = None

    @property
    def offer_timeout(self) -> timedelta:
        return timedelta(seconds=self.settings.offer_timeout_seconds)

    @property
    def reopen_window(self) -> timedelta:
        return timedelta(hours=self.settings.reopen_window_hours)

    def add_commit_listener(self, listener: Callable[[UnitOfWork], None]) -> None:
        """Called after every commit with its unit of work (e.g. to wake a timer at once)."""
        self._commit_listeners.append(listener)

    def add_background(self, name: str, job: BackgroundJob) -> None:
        """A long-running job (timers, deliveries) started with the router, cancelled on stop."""
        self._background.append((name, job))

    async def start(self) -> None:
        async with self.uow() as uow:
            await ensure_queues(uow.session, list(self.rules.queues))
        self._task = asyncio.create_task(self._dispatch_loop(), name="router-dispatch")
        self._feed_task = asyncio.create_task(self._feed_events(), name="router-events")
        for name, job in self._background:
            self._background_tasks.append(asyncio.create_task(job(self), name=name))
        self.kick()

    async def stop(self) -> None:
        tasks = [*self._background_tasks, *([self._task] if self._task else [])]
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._task = None
        self._background_tasks.clear()
        if self._feed_task is not None:
            feed, self._feed_task = self._feed_task, None
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(EVENT_FEED_DRAIN_SECONDS):
                    await self._feed.join()
            feed.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await feed

    def kick(self) -> None:
        """Ask for a dispatch pass soon (coalesced: many kicks make one pass)."""
        self._kick.set()

    @asynccontextmanager
    async def uow(self) -> AsyncIterator[UnitOfWork]:
        async with unit_of_work(self.sessions, self._after_commit) as uow:
            yield uow

    async def _after_commit(self, uow: UnitOfWork) -> None:
        for listener in self._commit_listeners:
            listener(uow)
        if uow.offered_agents:
            self.notifier.notify(uow.offered_agents)
        if uow.needs_dispatch:
            self.kick()
        if uow.events:
            if self._feed_task is None:
                await self._publish_events(uow.events)
            else:
                await self._feed.put(uow.events)  # waits only when the broker is far behind

    async def _feed_events(self) -> None:
        """Publish committed events in commit order, off the committers' path.

        The conversation event log in the database is the record and the topic a feed of it,
        so a committer (an agent's accept, the dispatch pass, a batch of contacts) need not wait
        for the broker's acks; events that queued up meanwhile go out together.
        """
        while True:
            batches = [await self._feed.get()]
            while not self._feed.empty():
                batches.append(self._feed.get_nowait())
            try:
                await self._publish_events([event for batch in batches for event in batch])
            finally:
                for _ in batches:
                    self._feed.task_done()

    async def _publish_events(self, events: list[RoutingEvent]) -> None:
        try:
            await self.bus.publish_many(
                topics.ROUTING_EVENTS,
                [(str(event.conversation_id), encode_event(event)) for event in events],
            )
        except BusUnavailable:
            log.warning("router.events.publish_failed", count=len(events))

    async def dispatch_once(self) -> int:
        """One pass: expire overdue offers, then offer waiting work to free agents."""
        async with self._lock:
            now = utcnow()
            async with self.uow() as uow:
                await expire_offers(uow, now)
                made = await dispatch(uow, offer_timeout=self.offer_timeout, now=now)
                # The gauge scans every queue: refresh it now and then, not on every pass.
                if time.monotonic() >= self._depths_due:
                    await refresh_queue_depths(uow.session)
                    self._depths_due = time.monotonic() + QUEUE_DEPTH_REFRESH_SECONDS
                # Expiry's returns were offered in this very pass; another is due only when
                # the batch was full and more work may be waiting.
                uow.needs_dispatch = made >= DISPATCH_BATCH
            return made

    async def _dispatch_loop(self) -> None:
        interval = self.settings.dispatch_interval_seconds
        while True:
            await next_tick(self._kick, interval, self.settings.dispatch_coalesce_seconds)
            try:
                await self.dispatch_once()
            except (StaleAgent, DBAPIError) as exc:
                # Another writer got there first (a changed agent, SQLite busy, a PostgreSQL
                # deadlock with a notice pass): nothing was offered, so simply go again.
                log.info("router.dispatch.retry", reason=type(exc).__name__)
                self.kick()
            except Exception:
                log.exception("router.dispatch.failed")
                await asyncio.sleep(interval)
