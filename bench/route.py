"""The router on its own: CPU per contact from classified contact to accepted offer.

Classified contacts (made by the real classifier before timing) go through the router's bus
handler in batches, as the Kafka consumer hands them over; the router's dispatch loop, notice
timer and webhook worker run as in service; four simulated desktops wait for their offers and
accept each one through the offers service (no HTTP). The figure is this process's CPU time
(all threads, so aiosqlite's thread counts) per contact, and the SQL statements per contact.

The baseline, measured in the same run on the same database, is the floor of the same storage
work: each batch's contact rows written with one INSERT in one transaction. The ratio
(router / baseline) is what to compare between runs and machines.

Run: .venv/bin/python bench/route.py [--contacts N] [--batch B] [--database-url URL]
(default: a temporary SQLite file; a PostgreSQL URL must name an empty database; it is
migrated, not dropped)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

import structlog
from sqlalchemy import event, insert
from sqlalchemy.ext.asyncio import AsyncEngine

from omniroute.classifier.pipeline import Classifier
from omniroute.router.agents.service import create_agent
from omniroute.router.consumers import make_route_handler
from omniroute.router.migrations import upgrade
from omniroute.router.models import AgentStatus, Contact, Conversation
from omniroute.router.notifications.timers import install as install_notifications
from omniroute.router.offers.service import accept, pending_offers
from omniroute.router.routing.rules import RoutingRules
from omniroute.router.runtime import RouterRuntime
from omniroute.router.webhooks.worker import run_webhooks
from omniroute.shared import db, topics
from omniroute.shared.auth import Principal, Role
from omniroute.shared.events import Channel, ClassifiedContact, CustomerRef, InboundContact
from omniroute.shared.settings import ClassifierSettings, DatabaseSettings, RouterSettings
from omniroute.shared.transport import Message, encode_event
from omniroute.shared.transport.inprocess import InProcessBus

# Every queue of the default rules, so every routable contact has someone to go to.
SKILLS = ("general", "billing", "technical", "supervisor", "vip", "triage", "lang:es", "lang:en")
TEXTS = {
    "es": "Hola, el pedido {i} que hice la semana pasada todavía no ha llegado. ¿Podéis ayudarme?",
    "en": "Hello, order {i} I placed last week still hasn't arrived. Can you help me, please?",
}
CHANNELS = [Channel.CHAT, Channel.EMAIL, Channel.WHATSAPP, Channel.SMS]
SETTLE_SECONDS = 1.0  # no new acceptance for this long: the router is done


def classified_contacts(count: int, run: str) -> list[ClassifiedContact]:
    classifier = Classifier(ClassifierSettings())
    contacts = []
    for index in range(count):
        language = "es" if index % 2 else "en"
        inbound = InboundContact.build(
            channel=CHANNELS[index % len(CHANNELS)],
            external_id=f"route-{run}-{index}",
            conversation_key=f"route-{run}-{index}",
            text=TEXTS[language].format(i=index),
            customer=CustomerRef(name=f"Customer {index}", email=f"c{index}-{run}@example.com"),
        )
        contacts.append(classifier.classify(inbound))
    return contacts


class StatementCounter:
    def __init__(self, engine: AsyncEngine) -> None:
        self.count = 0
        event.listen(engine.sync_engine, "before_cursor_execute", self._seen)

    def _seen(self, *_: Any) -> None:
        self.count += 1


async def baseline(
    sessions: Any, contacts: list[ClassifiedContact], batch: int, counter: StatementCounter
) -> tuple[float, float]:
    """CPU seconds and statements per contact to write the contact rows, batch by batch."""
    # The contacts need a conversation to point at: one, written before timing.
    holder = uuid.uuid4()
    async with db.transaction(sessions) as session:
        session.add(
            Conversation(
                id=holder,
                channel="chat",
                conversation_key=f"baseline-{holder}",
                status="held",
                first_received_at=contacts[0].contact.received_at,
                message_count=0,
                version=0,
            )
        )
    statements, started = counter.count, time.process_time()
    for start in range(0, len(contacts), batch):
        rows: list[dict[str, Any]] = [
            {
                "id": uuid.uuid4(),
                "conversation_id": holder,
                "channel": c.contact.channel.value,
                "external_id": f"baseline-{c.contact.external_id}",
                "received_at": c.contact.received_at,
                "text": c.contact.text,
                "visibility": c.contact.visibility.value,
                "attachments": [],
                "transcript": [],
                "meta": {},
                "classification": c.model_dump(mode="json", exclude={"contact"}),
            }
            for c in contacts[start : start + batch]
        ]
        async with db.transaction(sessions) as session:
            await session.execute(insert(Contact), rows)
    return (
        (time.process_time() - started) / len(contacts),
        (counter.count - statements) / len(contacts),
    )


async def router(
    sessions: Any, contacts: list[ClassifiedContact], batch: int, counter: StatementCounter
) -> dict[str, float]:
    runtime = RouterRuntime(sessions, InProcessBus(), RouterSettings(), RoutingRules.load())
    install_notifications(runtime)
    runtime.add_background("webhooks", run_webhooks)
    handle = make_route_handler(runtime)
    await runtime.start()
    async with runtime.uow() as uow:
        agents = [
            (
                await create_agent(
                    uow.session,
                    name=f"Desk {index}",
                    status=AgentStatus.AVAILABLE,
                    skills=dict.fromkeys(SKILLS, 3),
                    capacity={"default": 1_000_000},
                )
            ).id
            for index in range(4)
        ]
    accepted = 0
    progress = asyncio.Event()

    async def desktop(agent_id: uuid.UUID) -> None:
        nonlocal accepted
        principal = Principal(role=Role.AGENT, agent_id=agent_id)
        while True:
            await runtime.notifier.wait(agent_id, 0.2)
            async with runtime.sessions() as session:
                offers = await pending_offers(session, agent_id)
            for offer in offers:
                async with runtime.uow() as uow:
                    await accept(uow, principal, offer.id)
                accepted += 1
                progress.set()

    desktops = [asyncio.create_task(desktop(agent_id)) for agent_id in agents]
    payloads = [encode_event(c) for c in contacts]
    statements, started, wall = counter.count, time.process_time(), time.monotonic()
    try:
        for start in range(0, len(payloads), batch):
            await handle(
                [
                    Message(topic=topics.CONTACTS_CLASSIFIED, key=None, value=value)
                    for value in payloads[start : start + batch]
                ]
            )
        while True:  # until a whole settle period passes with nothing accepted
            progress.clear()
            try:
                async with asyncio.timeout(SETTLE_SECONDS):
                    await progress.wait()
            except TimeoutError:
                break
        cpu = time.process_time() - started  # the idle settle adds next to nothing
        wall = time.monotonic() - wall - SETTLE_SECONDS
        count = counter.count - statements
    finally:
        for task in desktops:
            task.cancel()
        await asyncio.gather(*desktops, return_exceptions=True)
        await runtime.stop()
    return {
        "cpu": cpu / len(contacts),
        "statements": count / len(contacts),
        "accepted": accepted,
        "wall": wall,
    }


async def main(args: argparse.Namespace) -> None:
    with tempfile.TemporaryDirectory(prefix="omniroute-route-") as scratch:
        url = args.database_url or f"sqlite+aiosqlite:///{Path(scratch) / 'router.db'}"
        settings = DatabaseSettings(database_url=url)
        await upgrade(settings)
        engine = db.create_engine(settings)
        sessions = db.create_session_factory(engine)
        counter = StatementCounter(engine)
        run = uuid.uuid4().hex[:8]
        contacts = classified_contacts(args.contacts, run)
        try:
            floor_cpu, floor_statements = await baseline(sessions, contacts, args.batch, counter)
            routed = await router(sessions, contacts, args.batch, counter)
        finally:
            await engine.dispose()
    kind = "PostgreSQL" if url.startswith("postgresql") else "SQLite"
    print(
        f"Router alone on {kind}, {args.contacts} contacts in batches of {args.batch}, "
        "4 desktops accepting every offer:"
    )
    print(
        f"  baseline (the contact rows, one INSERT per batch): {floor_cpu * 1e3:.2f} ms CPU "
        f"and {floor_statements:.2f} statements per contact"
    )
    print(
        f"  router (stored, queued, offered, accepted, notices): {routed['cpu'] * 1e3:.2f} ms "
        f"CPU and {routed['statements']:.1f} statements per contact; "
        f"{1 / routed['cpu']:.0f} contacts/s per core; {routed['accepted']:.0f} accepted "
        f"in {routed['wall']:.1f} s"
    )
    print(f"  ratio router/baseline (CPU per contact): {routed['cpu'] / floor_cpu:.1f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--contacts", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=50, help="contacts per bus batch")
    parser.add_argument("--database-url", help="an empty database instead of a temporary SQLite")
    # The router logs every contact; at info level that is part of its cost, as in service,
    # but the lines themselves would drown the figures.
    arguments = parser.parse_args()
    with open(os.devnull, "w") as discard:
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(discard))
        logging.disable(logging.CRITICAL)
        asyncio.run(main(arguments))
