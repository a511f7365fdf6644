"""The notification timer, a background job of the router runtime (one per replica)."""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from omniroute.router.notifications.service import Notifier
from omniroute.router.runtime import RouterRuntime, follower_coalesce, next_tick
from omniroute.router.uow import UnitOfWork
from omniroute.shared.events import RoutingEventType, utcnow

log = structlog.get_logger(__name__)


# Events after which a customer is owed a notice now, not at the next tick.
_NOTICE_DUE = {
    RoutingEventType.CONVERSATION_QUEUED,
    RoutingEventType.OFFER_ACCEPTED,
    RoutingEventType.CONVERSATION_COMPLETED,
}


async def notification_timer(
    runtime: RouterRuntime, notifier: Notifier, wake: asyncio.Event
) -> None:
    """Acknowledgements, who is responsible, SLA warnings and breaches, surveys: at once after
    the events that owe them in this replica, and every interval for the rest (SLA clocks,
    other replicas' events)."""
    interval = runtime.settings.notification_interval_seconds
    # A burst of events shares one pass; a notice a few ms later costs nothing.
    coalesce = follower_coalesce(runtime.settings)
    while True:
        await next_tick(wake, interval, coalesce)
        now = utcnow()
        # One short transaction per phase: row locks are held briefly, and one failing phase
        # does not hold back the others.
        for phase in (
            notifier.acknowledge,
            notifier.announce_assignees,
            notifier.watch_sla,
            notifier.send_surveys,
        ):
            try:
                async with runtime.uow() as uow:
                    await phase(uow, now)
            except (IntegrityError, OperationalError, DBAPIError) as exc:
                # Another replica held the rows (SQLite busy, a deadlock): the next pass retries.
                log.info(
                    "router.notifications.retry", phase=phase.__name__, reason=type(exc).__name__
                )
            except Exception:
                log.exception("router.notifications.failed", phase=phase.__name__)


def install(runtime: RouterRuntime) -> None:
    """Register the timer with the runtime; templates are loaded (and checked) right away."""
    notifier = Notifier(runtime.settings)
    wake = asyncio.Event()

    def on_commit(uow: UnitOfWork) -> None:
        if any(event.type in _NOTICE_DUE for event in uow.events):
            wake.set()

    async def job(runtime: RouterRuntime) -> None:
        await notification_timer(runtime, notifier, wake)

    runtime.add_commit_listener(on_commit)

    runtime.add_background("notifications", job)
