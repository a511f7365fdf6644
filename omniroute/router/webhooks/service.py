"""Webhook endpoints, and the outbox that turns the conversation event log into deliveries.

Fan-out: each endpoint keeps a cursor into `conversation_events` (by id). A pass reads the
events after it, creates one `webhook_deliveries` row per matching event and moves the cursor,
in one transaction that first claims the endpoint with `UPDATE ... WHERE cursor = :old` (row
count 1, or another replica is on it). PostgreSQL hands out ids before commit, so a transaction
can commit an id below one already seen. So on PostgreSQL a pass reads only up to a safe
horizon (`LogHorizon`): an id seen at one snapshot becomes safe once every transaction in
flight at that snapshot has finished, since only those can still hold a lower id. SQLite has one
writer, so its ids commit in order; but it reuses the highest id after a deletion (an erased
conversation), so each pass also re-reads `lookback` ids behind the cursor and skips events that
already have a delivery. The unique (endpoint_id, event_id) makes a second delivery of one event
for one endpoint impossible, whatever the timing.

Deliveries: due rows are claimed one by one with `UPDATE ... WHERE status = 'pending'` (or a
claim that expired with its worker) and a claim token; the outcome is written only while the
token still holds. Services flush; the caller's unit of work commits.
"""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import and_, exists, func, or_, select, text, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from omniroute.router.models import ConversationEvent
from omniroute.router.webhooks.models import (
    DeliveryStatus,
    WebhookAttempt,
    WebhookDelivery,
    WebhookEndpoint,
)
from omniroute.router.webhooks.schemas import WebhookPayload
from omniroute.router.webhooks.sealing import SecretSealer
from omniroute.router.webhooks.signing import generate_secret
from omniroute.shared.errors import Conflict, NotFound
from omniroute.shared.events import utcnow

MAX_ERROR_CHARS = 500


# --- endpoints -------------------------------------------------------------------------------


async def _log_head(session: AsyncSession) -> int:
    """The newest event-log id: where a new (or re-enabled) endpoint starts."""
    head = await session.scalar(select(func.coalesce(func.max(ConversationEvent.id), 0)))
    return int(head or 0)


async def create_endpoint(
    session: AsyncSession,
    *,
    url: str,
    event_types: list[str] | None = None,
    description: str | None = None,
    sealer: SecretSealer | None = None,
) -> tuple[WebhookEndpoint, str]:
    """The new endpoint and its signing secret (stored sealed when a key is configured)."""
    head = await _log_head(session)
    secret = generate_secret()
    endpoint = WebhookEndpoint(
        url=url,
        event_types=event_types,
        description=description,
        secret=sealer.seal(secret) if sealer else secret,
        enabled=True,
        floor=head,
        cursor=head,
    )
    session.add(endpoint)
    await session.flush()
    return endpoint, secret


async def list_endpoints(session: AsyncSession) -> list[WebhookEndpoint]:
    query = select(WebhookEndpoint).order_by(WebhookEndpoint.created_at, WebhookEndpoint.id)
    return list((await session.scalars(query)).all())


async def get_endpoint(session: AsyncSession, endpoint_id: uuid.UUID) -> WebhookEndpoint:
    endpoint = await session.get(WebhookEndpoint, endpoint_id)
    if endpoint is None:
        raise NotFound("no such webhook endpoint")
    return endpoint


async def update_endpoint(
    session: AsyncSession, endpoint: WebhookEndpoint, changes: dict[str, Any]
) -> WebhookEndpoint:
    """Apply changes. Re-enabling, or a new filter, applies from the present event on."""
    restart = False
    if changes.get("url") is not None:
        endpoint.url = changes["url"]
    if "description" in changes:
        endpoint.description = changes["description"]
    if "event_types" in changes and changes["event_types"] != endpoint.event_types:
        endpoint.event_types = changes["event_types"]
        restart = True
    if changes.get("enabled") is not None and changes["enabled"] != endpoint.enabled:
        endpoint.enabled = changes["enabled"]
        restart = restart or endpoint.enabled
    if restart:
        head = await _log_head(session)
        endpoint.floor = endpoint.cursor = max(head, endpoint.cursor)
    endpoint.updated_at = utcnow()
    await session.flush()
    return endpoint


async def rotate_secret(
    session: AsyncSession, endpoint: WebhookEndpoint, sealer: SecretSealer | None = None
) -> str:
    """A new signing secret, returned; requests from now on (retries included) are signed
    with it."""
    secret = generate_secret()
    endpoint.secret = sealer.seal(secret) if sealer else secret
    endpoint.updated_at = utcnow()
    await session.flush()
    return secret


async def seal_secrets(session: AsyncSession, sealer: SecretSealer) -> int:
    """Store every endpoint's secret sealed with the newest key; how many changed."""
    changed = 0
    for endpoint in (await session.scalars(select(WebhookEndpoint))).all():
        resealed = sealer.reseal(endpoint.secret)
        if resealed is not None:
            endpoint.secret = resealed
            changed += 1
    await session.flush()
    return changed


async def delete_endpoint(session: AsyncSession, endpoint: WebhookEndpoint) -> None:
    await session.delete(endpoint)
    await session.flush()


# --- deliveries as the API shows them ---------------------------------------------------------


async def list_deliveries(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    status: DeliveryStatus | None = None,
    limit: int = 50,
    offset: int = 0,
) -> list[WebhookDelivery]:
    query = select(WebhookDelivery).where(WebhookDelivery.endpoint_id == endpoint_id)
    if status is not None:
        query = query.where(WebhookDelivery.status == status.value)
    query = query.order_by(WebhookDelivery.created_at.desc(), WebhookDelivery.id)
    return list((await session.scalars(query.limit(limit).offset(offset))).all())


async def get_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery:
    delivery = await session.get(WebhookDelivery, delivery_id)
    if delivery is None:
        raise NotFound("no such webhook delivery")
    return delivery


async def delivery_attempts(session: AsyncSession, delivery_id: uuid.UUID) -> list[WebhookAttempt]:
    query = (
        select(WebhookAttempt)
        .where(WebhookAttempt.delivery_id == delivery_id)
        .order_by(WebhookAttempt.number, WebhookAttempt.id)
    )
    return list((await session.scalars(query)).all())


async def replay_delivery(session: AsyncSession, delivery_id: uuid.UUID) -> WebhookDelivery:
    """A dead-lettered delivery starts the retry schedule again, now; its attempts are kept."""
    delivery = await get_delivery(session, delivery_id)
    endpoint = await get_endpoint(session, delivery.endpoint_id)
    if not endpoint.enabled:
        raise Conflict("the endpoint is disabled; enable it before replaying its deliveries")
    now = utcnow()
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == delivery_id,
            WebhookDelivery.status == DeliveryStatus.DEAD.value,
        )
        .values(
            status=DeliveryStatus.PENDING.value,
            failures=0,
            next_attempt_at=now,
            dead_lettered_at=None,
            replay_count=WebhookDelivery.replay_count + 1,
            updated_at=now,
        )
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        raise Conflict(
            f"only a dead-lettered delivery can be replayed (this one is {delivery.status})"
        )
    await session.refresh(delivery)
    return delivery


# --- the outbox: fan-out ----------------------------------------------------------------------


def _insert(session: AsyncSession) -> Any:
    """INSERT ... ON CONFLICT for the session's database (both have it, spelled alike)."""
    dialect = session.get_bind().dialect.name
    return postgresql.insert if dialect == "postgresql" else sqlite.insert


class LogHorizon:
    """The highest event-log id at or below which no event can still be committed.

    PostgreSQL only (elsewhere `safe()` is None: SQLite commits ids in order). An id is handed
    out before its transaction commits, so an id visible in one snapshot does not mean every
    lower id is visible. Every lower id was handed out earlier, though, to a transaction that
    was then committed or in flight; once the oldest transaction still running is newer than that
    snapshot's `xmax`, all of them have finished and the id is safe. One process's tracker; the
    pass that sees the candidate usually confirms it at once, or a later pass does.

    Transactions are counted cluster-wide, so a writer that runs for long anywhere holds the
    horizon back; after `max_wait` seconds the candidate is taken anyway and the lookback
    covers the late commit. The lookback also covers the instant between a transaction taking
    an id and being given its xid.
    """

    def __init__(self, max_wait: float = 60.0) -> None:
        self.max_wait = max_wait
        self._safe = 0
        # (head id, snapshot xmax, monotonic time seen), oldest first
        self._pending: list[tuple[int, int, float]] = []

    @property
    def caught_up(self) -> bool:
        """Whether every event seen so far is below the horizon."""
        return not self._pending

    async def safe(self, session: AsyncSession) -> int | None:
        if session.get_bind().dialect.name != "postgresql":
            return None
        head, xmax = (
            await session.execute(
                text(
                    "SELECT (SELECT coalesce(max(id), 0) FROM conversation_events), "
                    "pg_snapshot_xmax(pg_current_snapshot())::text::bigint"
                )
            )
        ).one()
        now = time.monotonic()
        # Keep the oldest candidate (the first to become safe) and the newest one.
        self._pending = [*self._pending[:1], (int(head), int(xmax), now)]
        running = int(
            await session.scalar(
                text("SELECT pg_snapshot_xmin(pg_current_snapshot())::text::bigint")
            )
            or 0
        )
        settled = [
            head_id
            for head_id, seen_xmax, seen_at in self._pending
            if seen_xmax <= running or now - seen_at > self.max_wait
        ]
        if settled:
            self._safe = max(self._safe, *settled)
        self._pending = [c for c in self._pending if c[0] > self._safe]
        return self._safe


async def enabled_endpoint_ids(session: AsyncSession) -> list[uuid.UUID]:
    query = select(WebhookEndpoint.id).where(WebhookEndpoint.enabled.is_(True))
    return list((await session.scalars(query)).all())


async def fan_out(
    session: AsyncSession,
    endpoint_id: uuid.UUID,
    *,
    lookback: int,
    limit: int,
    horizon: int | None = None,
) -> int:
    """Create deliveries for one endpoint's new events; returns how many (0 if claimed elsewhere).

    Events above `horizon` (from `LogHorizon`; None: no limit) wait for a later pass. Run in a
    transaction of its own: a lost claim (row count 0) must leave nothing behind.
    """
    endpoint = await session.get(WebhookEndpoint, endpoint_id, populate_existing=True)
    if endpoint is None or not endpoint.enabled:
        return 0
    old_cursor = endpoint.cursor
    head = await _log_head(session)
    if horizon is not None:
        head = min(head, horizon)
    start = max(endpoint.floor, old_cursor - lookback)
    already = exists().where(
        WebhookDelivery.endpoint_id == endpoint_id,
        WebhookDelivery.event_id == ConversationEvent.event_id,
    )
    query = select(ConversationEvent.id, ConversationEvent.event_id, ConversationEvent.type).where(
        ConversationEvent.id > start, ConversationEvent.id <= head, ~already
    )
    if endpoint.event_types is not None:
        query = query.where(ConversationEvent.type.in_(endpoint.event_types))
    rows = (await session.execute(query.order_by(ConversationEvent.id).limit(limit))).all()
    # With a full page, only what was read is done; otherwise everything up to the head is.
    new_cursor = max(old_cursor, rows[-1].id if len(rows) == limit else head)
    if not rows and new_cursor == old_cursor:
        return 0
    claimed = await session.execute(
        update(WebhookEndpoint)
        .where(
            WebhookEndpoint.id == endpoint_id,
            WebhookEndpoint.cursor == old_cursor,
            WebhookEndpoint.enabled.is_(True),
        )
        .values(cursor=new_cursor)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(claimed) != 1:
        return 0
    if not rows:
        return 0
    now = utcnow()
    insert = _insert(session)
    statement = insert(WebhookDelivery).on_conflict_do_nothing(
        index_elements=["endpoint_id", "event_id"]
    )
    await session.execute(
        statement,
        [
            {
                "id": uuid.uuid4(),
                "endpoint_id": endpoint_id,
                "event_id": row.event_id,
                "event_type": row.type,
                "status": DeliveryStatus.PENDING.value,
                "attempt_count": 0,
                "failures": 0,
                "next_attempt_at": now,
                "replay_count": 0,
                "created_at": now,
                "updated_at": now,
            }
            for row in rows
        ],
    )
    return len(rows)


# --- the outbox: claiming and recording attempts ----------------------------------------------


@dataclass(frozen=True)
class ClaimedDelivery:
    id: uuid.UUID
    message_id: str
    url: str
    secret: str  # as stored: sealed when a key is configured (the worker opens it)
    body: bytes
    attempt_number: int
    failures: int


def _claimable(now: datetime) -> Any:
    return or_(
        and_(
            WebhookDelivery.status == DeliveryStatus.PENDING.value,
            WebhookDelivery.next_attempt_at <= now,
        ),
        and_(
            WebhookDelivery.status == DeliveryStatus.SENDING.value,
            WebhookDelivery.claim_expires_at < now,
        ),
    )


async def claim_due(
    session: AsyncSession, *, token: uuid.UUID, limit: int, claim_for: timedelta
) -> list[uuid.UUID]:
    """Claim up to `limit` due deliveries of enabled endpoints; each claim is checked by count."""
    now = utcnow()
    candidates = (
        await session.scalars(
            select(WebhookDelivery.id)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .where(WebhookEndpoint.enabled.is_(True), _claimable(now))
            .order_by(WebhookDelivery.next_attempt_at, WebhookDelivery.id)
            .limit(limit)
        )
    ).all()
    claimed: list[uuid.UUID] = []
    for delivery_id in candidates:
        result = await session.execute(
            update(WebhookDelivery)
            .where(WebhookDelivery.id == delivery_id, _claimable(now))
            .values(
                status=DeliveryStatus.SENDING.value,
                claim_token=token,
                claim_expires_at=now + claim_for,
                updated_at=now,
            )
            .execution_options(synchronize_session=False)
        )
        if _rowcount(result) == 1:
            claimed.append(delivery_id)
    return claimed


def render_payload(event: ConversationEvent) -> WebhookPayload:
    data = dict(event.data)
    if event.actor:
        data["actor"] = event.actor
    return WebhookPayload(
        type=event.type,
        event_id=event.event_id,
        conversation_id=event.conversation_id,
        occurred_at=event.occurred_at,
        data=data,
    )


def render_body(event: ConversationEvent) -> bytes:
    return render_payload(event).model_dump_json().encode()


async def delivery_payload(session: AsyncSession, delivery: WebhookDelivery) -> WebhookPayload:
    event = await session.scalar(
        select(ConversationEvent).where(ConversationEvent.event_id == delivery.event_id)
    )
    if event is None:  # erased with its conversation a moment ago; the delivery follows
        raise NotFound("no such webhook delivery")
    return render_payload(event)


async def load_claimed(
    session: AsyncSession, delivery_ids: Sequence[uuid.UUID], token: uuid.UUID
) -> list[ClaimedDelivery]:
    if not delivery_ids:
        return []
    rows = (
        await session.execute(
            select(WebhookDelivery, WebhookEndpoint.url, WebhookEndpoint.secret, ConversationEvent)
            .join(WebhookEndpoint, WebhookEndpoint.id == WebhookDelivery.endpoint_id)
            .join(ConversationEvent, ConversationEvent.event_id == WebhookDelivery.event_id)
            .where(WebhookDelivery.id.in_(delivery_ids), WebhookDelivery.claim_token == token)
        )
    ).all()
    return [
        ClaimedDelivery(
            id=delivery.id,
            message_id=delivery.message_id,
            url=url,
            secret=secret,
            body=render_body(event),
            attempt_number=delivery.attempt_count + 1,
            failures=delivery.failures,
        )
        for delivery, url, secret, event in rows
    ]


@dataclass(frozen=True)
class AttemptOutcome:
    attempted_at: datetime
    duration_ms: float
    status_code: int | None = None
    error: str | None = None

    @property
    def succeeded(self) -> bool:
        return self.status_code is not None and 200 <= self.status_code < 300


def retry_delay(failures: int, schedule: Sequence[float], jitter: float) -> float | None:
    """Seconds before the next attempt after `failures` failures; None once exhausted."""
    if failures > len(schedule):
        return None
    base = schedule[failures - 1]
    return max(0.0, base * (1 + random.uniform(-jitter, jitter)))


async def record_attempt(
    session: AsyncSession,
    claimed: ClaimedDelivery,
    token: uuid.UUID,
    outcome: AttemptOutcome,
    *,
    schedule: Sequence[float],
    jitter: float,
) -> DeliveryStatus | None:
    """Write the attempt and the delivery's next state; None if the claim was lost meanwhile."""
    now = utcnow()
    error = outcome.error[:MAX_ERROR_CHARS] if outcome.error else None
    values: dict[str, Any] = {
        "attempt_count": claimed.attempt_number,
        "claim_token": None,
        "claim_expires_at": None,
        "last_status_code": outcome.status_code,
        "last_error": error,
        "updated_at": now,
    }
    if outcome.succeeded:
        status = DeliveryStatus.DELIVERED
        values.update(delivered_at=now, next_attempt_at=None)
    else:
        failures = claimed.failures + 1
        delay = retry_delay(failures, schedule, jitter)
        values["failures"] = failures
        if delay is None:
            status = DeliveryStatus.DEAD
            values.update(dead_lettered_at=now, next_attempt_at=None)
        else:
            status = DeliveryStatus.PENDING
            values["next_attempt_at"] = now + timedelta(seconds=delay)
    values["status"] = status.value
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.id == claimed.id,
            WebhookDelivery.claim_token == token,
            WebhookDelivery.status == DeliveryStatus.SENDING.value,
        )
        .values(**values)
        .execution_options(synchronize_session=False)
    )
    if _rowcount(result) != 1:
        return None
    session.add(
        WebhookAttempt(
            delivery_id=claimed.id,
            number=claimed.attempt_number,
            attempted_at=outcome.attempted_at,
            duration_ms=outcome.duration_ms,
            status_code=outcome.status_code,
            error=error,
            succeeded=outcome.succeeded,
        )
    )
    await session.flush()
    return status


async def release_claims(session: AsyncSession, token: uuid.UUID) -> int:
    """Hand back claims a stopping worker did not get to (attempt not made)."""
    result = await session.execute(
        update(WebhookDelivery)
        .where(
            WebhookDelivery.claim_token == token,
            WebhookDelivery.status == DeliveryStatus.SENDING.value,
        )
        .values(status=DeliveryStatus.PENDING.value, claim_token=None, claim_expires_at=None)
        .execution_options(synchronize_session=False)
    )
    return _rowcount(result)


def _rowcount(result: Any) -> int:
    return int(getattr(result, "rowcount", 0) or 0)
