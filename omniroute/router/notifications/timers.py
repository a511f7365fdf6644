"""The notification timer, a background job of the router runtime (one per replica)."""

from __future__ import annotations

import asyncio

import structlog
from sqlalchemy.exc import IntegrityError, OperationalError

from omniroute.router.notifications.service import Notifier
from omniroute.router.runtime import RouterRuntime

log = structlog.get_logger(__name__)


async def notification_timer(runtime: RouterRuntime, notifier: Notifier) -> None:
    """Every interval: acknowledgements, who is responsible, SLA warnings and breaches, surveys."""
    interval = runtime.settings.notification_interval_seconds
    while True:
        await asyncio.sleep(interval)
        try:
            async with runtime.uow() as uow:
                await notifier.run_once(uow)
        except (IntegrityError, OperationalError) as exc:
            # Another replica held the rows (SQLite busy, a serialisation failure): next pass.
            log.info("router.notifications.retry", reason=type(exc).__name__)
        except Exception:
            log.exception("router.notifications.failed")


def install(runtime: RouterRuntime) -> None:
    """Register the timer with the runtime; templates are loaded (and checked) right away."""
    notifier = Notifier(runtime.settings)

    async def job(runtime: RouterRuntime) -> None:
        await notification_timer(runtime, notifier)

    runtime.add_background("notifications", job)
