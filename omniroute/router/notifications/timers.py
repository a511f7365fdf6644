"""The notification timer, a background job of the router runtime (one per replica)."""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.exc import DBAPIError, IntegrityError, OperationalError

from omniroute.router.notifications.service import Notifier
from omniroute.router.runtime import RouterRuntime
from omniroute.shared.events import utcnow

log = structlog.get_logger(__name__)


async def notification_timer(runtime: RouterRuntime, notifier: Notifier) -> None:
    """Every interval: acknowledgements, who is responsible, SLA warnings and breaches, surveys."""
    interval = runtime.settings.notification_interval_seconds
    while True:
        await asyncio.sleep(interval)
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

    async def job(runtime: RouterRuntime) -> None:
        await notification_timer(runtime, notifier)

    runtime.add_background("notifications", job)
