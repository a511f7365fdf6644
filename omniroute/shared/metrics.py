"""Prometheus metrics, defined once per process so every service exposes the same names."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from prometheus_client import Counter, Gauge, Histogram

LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30)

CONTACTS_RECEIVED = Counter(
    "omniroute_contacts_received_total", "Contacts accepted by the gateway", ["channel"]
)
CONTACTS_DUPLICATE = Counter(
    "omniroute_contacts_duplicate_total", "Provider retries recognised as known contacts", ["stage"]
)
CONTACTS_REJECTED = Counter(
    "omniroute_contacts_rejected_total", "Requests refused by the gateway", ["channel", "status"]
)
CONTACTS_CLASSIFIED = Counter(
    "omniroute_contacts_classified_total", "Contacts classified", ["category", "priority"]
)
CONTACTS_ROUTED = Counter("omniroute_contacts_routed_total", "Contacts stored by the router")
OFFERS_CREATED = Counter("omniroute_offers_created_total", "Offers made to agents", ["queue"])
OFFERS_ACCEPTED = Counter("omniroute_offers_accepted_total", "Offers accepted", ["queue"])
OFFERS_DECLINED = Counter("omniroute_offers_declined_total", "Offers declined", ["queue"])
OFFERS_EXPIRED = Counter("omniroute_offers_expired_total", "Offers that timed out", ["queue"])
CONVERSATIONS_COMPLETED = Counter(
    "omniroute_conversations_completed_total", "Conversations completed", ["queue"]
)
QUEUE_DEPTH = Gauge("omniroute_queue_depth", "Conversations waiting in a queue", ["queue"])
DEAD_LETTERS = Counter(
    "omniroute_dead_letters_total", "Messages sent to a dead-letter topic", ["topic", "group"]
)

INGEST_LATENCY = Histogram(
    "omniroute_ingest_seconds",
    "Gateway time to make a contact durable",
    ["channel"],
    buckets=LATENCY_BUCKETS,
)
CLASSIFY_LATENCY = Histogram(
    "omniroute_classify_seconds", "Time to classify one contact", buckets=LATENCY_BUCKETS
)
ROUTE_LATENCY = Histogram(
    "omniroute_route_seconds",
    "Router time to store and enqueue one contact",
    buckets=LATENCY_BUCKETS,
)
PIPELINE_LAG = Histogram(
    "omniroute_pipeline_lag_seconds",
    "How long a contact waited on the bus before a stage took it up: 'classifier' from receipt "
    "at the gateway, 'router' from its classification (clocks of different hosts)",
    ["hop"],
    buckets=LATENCY_BUCKETS,
)
EVENT_LOOP_LAG = Histogram(
    "omniroute_event_loop_lag_seconds",
    "How late the event loop woke a timer: time other work held the loop (a saturated service)",
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)


def observe_pipeline_lag(hop: str, since: Iterable[datetime]) -> None:
    """One PIPELINE_LAG sample per contact: now less when it entered the hop (never < 0)."""
    now = datetime.now(UTC)
    histogram = PIPELINE_LAG.labels(hop=hop)
    for moment in since:
        histogram.observe(max(0.0, (now - moment).total_seconds()))


TIME_TO_OFFER = Histogram(
    "omniroute_time_to_offer_seconds",
    "From receipt at the gateway to the first offer",
    buckets=LATENCY_BUCKETS,
)
