"""Kafka (or in-process) handlers: classified contacts become stored, queued conversations."""

from __future__ import annotations

import time

import structlog
from sqlalchemy.exc import IntegrityError

from omniroute.router.conversations.service import ingest_classified
from omniroute.router.runtime import RouterRuntime
from omniroute.shared import metrics
from omniroute.shared.events import ClassifiedContact
from omniroute.shared.transport import Handler, Message, decode_event

log = structlog.get_logger(__name__)


def make_route_handler(runtime: RouterRuntime) -> Handler:
    async def handle(message: Message) -> None:
        classified = decode_event(ClassifiedContact, message.value)
        started = time.perf_counter()
        try:
            async with runtime.uow() as uow:
                outcome = await ingest_classified(
                    uow, classified, runtime.rules, runtime.reopen_window
                )
        except IntegrityError:
            # Another replica stored it first (a redelivery race): the retry sees a duplicate.
            log.info("router.contact.conflict", contact_id=str(classified.contact.contact_id))
            raise
        if outcome.duplicate:
            metrics.CONTACTS_DUPLICATE.labels(stage="router").inc()
            return
        metrics.CONTACTS_ROUTED.inc()
        metrics.ROUTE_LATENCY.observe(time.perf_counter() - started)
        log.info(
            "router.contact.stored",
            contact_id=str(outcome.contact_id),
            conversation_id=str(outcome.conversation_id),
            queued=outcome.queued,
        )

    return handle
