"""Kafka (or in-process) handlers: classified contacts become stored, queued conversations."""

from __future__ import annotations

import time
from collections.abc import Sequence

import structlog
from sqlalchemy.exc import IntegrityError

from omniroute.router.conversations.service import ingest_batch
from omniroute.router.runtime import RouterRuntime
from omniroute.shared import metrics
from omniroute.shared.events import ClassifiedContact
from omniroute.shared.transport import BatchHandler, Message, decode_event

log = structlog.get_logger(__name__)


def make_route_handler(runtime: RouterRuntime) -> BatchHandler:
    """Store the contacts that arrived together in one transaction.

    One commit, one dispatch pass and one round of notices per batch instead of per contact:
    what lets a busy router keep up. All or nothing: if any contact fails, the transaction rolls
    back and the bus hands the contacts over again one at a time.
    """

    async def handle(messages: Sequence[Message]) -> None:
        batch = [decode_event(ClassifiedContact, message.value) for message in messages]
        metrics.observe_pipeline_lag("router", (c.classified_at for c in batch))
        started = time.perf_counter()
        try:
            async with runtime.uow() as uow:
                outcomes = await ingest_batch(uow, batch, runtime.rules, runtime.reopen_window)
        except IntegrityError:
            # Another replica stored one of them first (a redelivery race): the retry sees a
            # duplicate.
            log.info("router.contacts.conflict", count=len(batch))
            raise
        elapsed = time.perf_counter() - started
        for outcome in outcomes:
            if outcome.duplicate:
                metrics.CONTACTS_DUPLICATE.labels(stage="router").inc()
                continue
            metrics.CONTACTS_ROUTED.inc()
            metrics.ROUTE_LATENCY.observe(elapsed)
            log.info(
                "router.contact.stored",
                contact_id=str(outcome.contact_id),
                conversation_id=str(outcome.conversation_id),
                queued=outcome.queued,
            )

    return handle
