"""The delivery worker: fans the event log out into deliveries and sends the due ones.

It runs as a router background job on every replica; claims in the database keep replicas from
sending the same attempt twice. It polls, and in the embedded wiring it is also woken right after
routing events are committed (they are published on the in-process bus after commit).
"""

from __future__ import annotations

import asyncio
import contextlib
import time
import uuid
import weakref
from datetime import timedelta

import httpx
import structlog
from prometheus_client import Counter, Histogram
from sqlalchemy.exc import DBAPIError, IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from omniroute.router.runtime import RouterRuntime, follower_coalesce, next_tick
from omniroute.router.webhooks import service
from omniroute.router.webhooks.egress import PublicOnlyTransport
from omniroute.router.webhooks.models import DeliveryStatus
from omniroute.router.webhooks.sealing import SealedSecretUnavailable, SecretSealer
from omniroute.router.webhooks.signing import signature_headers
from omniroute.shared import topics
from omniroute.shared.db import transaction
from omniroute.shared.events import utcnow
from omniroute.shared.metrics import LATENCY_BUCKETS
from omniroute.shared.settings import RouterSettings
from omniroute.shared.transport import Message
from omniroute.shared.transport.inprocess import InProcessBus

log = structlog.get_logger(__name__)

ATTEMPTED = Counter(
    "omniroute_webhook_deliveries_attempted_total", "Webhook delivery attempts made"
)
SUCCEEDED = Counter(
    "omniroute_webhook_deliveries_succeeded_total", "Webhook deliveries answered with a 2xx"
)
FAILED = Counter(
    "omniroute_webhook_deliveries_failed_total",
    "Webhook delivery attempts that failed (non-2xx answer or network error)",
)
DEAD_LETTERED = Counter(
    "omniroute_webhook_deliveries_dead_lettered_total",
    "Webhook deliveries given up after the retry schedule",
)
ATTEMPT_SECONDS = Histogram(
    "omniroute_webhook_attempt_seconds", "Duration of one webhook request", buckets=LATENCY_BUCKETS
)

USER_AGENT = "Omniroute-Webhooks/1"


class WebhookWorker:
    def __init__(
        self,
        sessions: async_sessionmaker[AsyncSession],
        settings: RouterSettings,
        *,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self.sessions = sessions
        self.settings = settings
        self._transport = transport
        self._client: httpx.AsyncClient | None = None
        self._kick = asyncio.Event()
        self._stopping = False
        self._horizon = service.LogHorizon(settings.webhook_horizon_max_wait_seconds)
        self._sealer = SecretSealer(settings.secrets_key)

    async def start(self) -> None:
        timeout = self.settings.webhook_timeout_seconds
        transport = self._transport
        if transport is None and not self.settings.webhook_allow_private_networks:
            transport = PublicOnlyTransport(max_connections=self.settings.webhook_concurrency)
        self._client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=min(timeout, 5.0)),
            follow_redirects=False,  # a redirect is not a delivery: the integration fixes its URL
            headers={"user-agent": USER_AGENT},
            transport=transport,
        )
        self._stopping = False

    async def stop(self) -> None:
        if self._client is not None:
            await self._client.aclose()
            self._client = None

    @property
    def caught_up(self) -> bool:
        """Whether the last fan-out reached every event it saw (PostgreSQL may lag a pass)."""
        return self._horizon.caught_up

    def kick(self) -> None:
        """Ask for a pass soon (coalesced)."""
        self._kick.set()

    async def run(self) -> None:
        """Pass after pass until cancelled; a cancelled pass finishes its in-flight attempts,
        so an answered request is always recorded (bounded by the request timeout)."""
        interval = self.settings.webhook_poll_interval_seconds
        # In-process every routing event kicks the worker: a burst of them makes one pass.
        coalesce = follower_coalesce(self.settings)
        while True:
            await next_tick(self._kick, interval, coalesce)
            current = asyncio.ensure_future(self._guarded_pass())
            try:
                await asyncio.shield(current)
            except asyncio.CancelledError:
                self._stopping = True
                with contextlib.suppress(Exception):
                    await current
                raise

    async def _guarded_pass(self) -> None:
        try:
            await self.run_once()
        except (IntegrityError, DBAPIError) as exc:
            log.info("router.webhooks.pass_retry", reason=type(exc).__name__)
            self.kick()
        except Exception:
            log.exception("router.webhooks.pass_failed")

    async def run_once(self) -> int:
        """Fan out new events, then send what is due; returns the attempts made."""
        await self.fan_out()
        attempts = 0
        while not self._stopping:
            made = await self.deliver_due()
            attempts += made
            if made < self.settings.webhook_batch_size:
                break
        return attempts

    async def fan_out(self) -> int:
        created = 0
        async with self.sessions() as session:
            endpoint_ids = await service.enabled_endpoint_ids(session)
            horizon = await self._horizon.safe(session)
        for endpoint_id in endpoint_ids:
            while True:
                try:
                    async with transaction(self.sessions) as session:
                        made = await service.fan_out(
                            session,
                            endpoint_id,
                            lookback=self.settings.webhook_fanout_lookback,
                            limit=self.settings.webhook_batch_size,
                            horizon=horizon,
                        )
                except IntegrityError:
                    # An event vanished under us (its conversation was erased): next pass.
                    log.info("router.webhooks.fanout_conflict", endpoint_id=str(endpoint_id))
                    break
                created += made
                if made < self.settings.webhook_batch_size:
                    break
        if created:
            log.info("router.webhooks.fanned_out", deliveries=created)
        return created

    async def deliver_due(self) -> int:
        token = uuid.uuid4()
        # A claim must outlast its request, or a slow answer would be sent again elsewhere.
        seconds = max(
            self.settings.webhook_claim_seconds, 2 * self.settings.webhook_timeout_seconds
        )
        claim_for = timedelta(seconds=seconds)
        async with transaction(self.sessions) as session:
            ids = await service.claim_due(
                session, token=token, limit=self.settings.webhook_batch_size, claim_for=claim_for
            )
        if not ids:
            return 0
        try:
            async with self.sessions() as session:
                claimed = await service.load_claimed(session, ids, token)
            limit = asyncio.Semaphore(self.settings.webhook_concurrency)

            async def attempt(delivery: service.ClaimedDelivery) -> None:
                async with limit:
                    await self._attempt(delivery, token)

            # Every attempt runs to its end before claims are released: one failing to record
            # must not hand back another that is still being sent.
            results = await asyncio.gather(
                *(attempt(delivery) for delivery in claimed), return_exceptions=True
            )
            for result in results:
                if isinstance(result, Exception):
                    log.warning("router.webhooks.record_failed", error=type(result).__name__)
        finally:
            async with transaction(self.sessions) as session:
                await service.release_claims(session, token)
        return len(ids)

    async def _attempt(self, delivery: service.ClaimedDelivery, token: uuid.UUID) -> None:
        outcome = await self._send(delivery)
        ATTEMPTED.inc()
        ATTEMPT_SECONDS.observe(outcome.duration_ms / 1000)
        async with transaction(self.sessions) as session:
            status = await service.record_attempt(
                session,
                delivery,
                token,
                outcome,
                schedule=self.settings.webhook_retry_schedule,
                jitter=self.settings.webhook_retry_jitter,
            )
        if outcome.succeeded:
            SUCCEEDED.inc()
        else:
            FAILED.inc()
        fields = {
            "delivery_id": str(delivery.id),
            "attempt": delivery.attempt_number,
            "status_code": outcome.status_code,
            "error": outcome.error,
        }
        if status is None:
            log.warning("router.webhooks.claim_lost", **fields)
        elif status is DeliveryStatus.DEAD:
            DEAD_LETTERED.inc()
            log.warning("router.webhooks.dead_lettered", **fields)
        elif status is DeliveryStatus.PENDING:
            log.info("router.webhooks.attempt_failed", **fields)
        else:
            log.debug("router.webhooks.delivered", **fields)

    async def _send(self, delivery: service.ClaimedDelivery) -> service.AttemptOutcome:
        assert self._client is not None, "start() the worker first"
        timestamp = int(time.time())
        attempted_at = utcnow()
        try:
            secret = self._sealer.unseal(delivery.secret)
        except SealedSecretUnavailable as exc:
            # Not sent unsigned: recorded as a failed attempt, retried once the key is back.
            return service.AttemptOutcome(attempted_at, 0.0, None, str(exc))
        headers = {
            "content-type": "application/json",
            **signature_headers(secret, delivery.message_id, timestamp, delivery.body),
        }
        started = time.perf_counter()
        status_code: int | None = None
        error: str | None = None
        try:
            # Streamed and closed unread: an endpoint's answer body is never needed or kept.
            async with self._client.stream(
                "POST", delivery.url, content=delivery.body, headers=headers
            ) as response:
                status_code = response.status_code
                if not 200 <= status_code < 300:
                    error = f"HTTP {status_code}"
        except Exception as exc:  # network errors, timeouts, invalid URLs: all retried
            error = f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__
        duration_ms = (time.perf_counter() - started) * 1000
        return service.AttemptOutcome(attempted_at, duration_ms, status_code, error)


# The worker of each running router, so endpoints (replay) and bus events can wake it.
_workers: weakref.WeakKeyDictionary[RouterRuntime, WebhookWorker] = weakref.WeakKeyDictionary()
_subscribed: weakref.WeakSet[InProcessBus] = weakref.WeakSet()


def kick(runtime: RouterRuntime) -> None:
    worker = _workers.get(runtime)
    if worker is not None:
        worker.kick()


async def run_webhooks(runtime: RouterRuntime) -> None:
    """The router background job: `runtime.add_background("webhooks", run_webhooks)`."""
    worker = WebhookWorker(runtime.sessions, runtime.settings)
    _workers[runtime] = worker
    bus = runtime.bus
    if isinstance(bus, InProcessBus) and bus not in _subscribed:
        _subscribed.add(bus)

        async def wake(_: Message) -> None:
            kick(runtime)

        bus.subscribe(topics.ROUTING_EVENTS, "webhooks", wake)
    await worker.start()
    try:
        await worker.run()
    finally:
        await worker.stop()
        if _workers.get(runtime) is worker:
            del _workers[runtime]
