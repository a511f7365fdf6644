"""Routing behaviour on SQLite and PostgreSQL: storage, queues, offers, expiry, follow-ups."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import Sequence
from datetime import timedelta

import pytest
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from omniroute.router.conversations import service as conversations
from omniroute.router.conversations.service import ingest_classified
from omniroute.router.models import (
    Agent,
    AgentStatus,
    Contact,
    Conversation,
    ConversationStatus,
    Customer,
    CustomerIdentity,
    Offer,
    OfferStatus,
    RoutingDecision,
)
from omniroute.router.offers import service as offers
from omniroute.router.queues.service import get_queue_by_name
from omniroute.router.routing import engine
from omniroute.router.routing.rules import RoutingRules
from omniroute.router.runtime import RouterRuntime
from omniroute.shared import topics
from omniroute.shared.auth import Principal, Role
from omniroute.shared.errors import Conflict, NotFound
from omniroute.shared.events import Channel, ClassifiedContact, CustomerRef, utcnow
from omniroute.shared.settings import RouterSettings
from omniroute.shared.transport import Message
from omniroute.shared.transport.inprocess import InProcessBus
from tests.builders import classified, create_agent


async def route(runtime: RouterRuntime, contact: ClassifiedContact) -> None:
    async with runtime.uow() as uow:
        await ingest_classified(uow, contact, runtime.rules, runtime.reopen_window)


async def pending(runtime: RouterRuntime, agent: Agent) -> list[Offer]:
    async with runtime.uow() as uow:
        return await offers.pending_offers(uow.session, agent.id)


def as_agent(agent: Agent) -> Principal:
    return Principal(role=Role.AGENT, agent_id=agent.id)


async def conversation(runtime: RouterRuntime, conversation_id: uuid.UUID) -> Conversation:
    async with runtime.sessions() as session:
        row = await session.get(Conversation, conversation_id)
    assert row is not None
    return row


class TestStorage:
    async def test_a_redelivered_contact_is_stored_once(self, runtime: RouterRuntime) -> None:
        contact = classified()
        await route(runtime, contact)
        await route(runtime, contact)
        async with runtime.sessions() as session:
            contacts = await session.scalar(select(func.count()).select_from(Contact))
            convs = await session.scalar(select(func.count()).select_from(Conversation))
        assert (contacts, convs) == (1, 1)

    async def test_the_classification_picks_the_queue(self, runtime: RouterRuntime) -> None:
        contact = classified(category="billing")
        await route(runtime, contact)
        row = await conversation(runtime, contact.contact.conversation_id)
        async with runtime.sessions() as session:
            billing = await get_queue_by_name(session, "billing")
        assert row.queue_id == billing.id
        assert row.status == ConversationStatus.WAITING.value

    async def test_auto_replies_and_spam_create_no_work(self, runtime: RouterRuntime) -> None:
        auto = classified(metadata={"auto_submitted": "auto-replied"})
        spam = classified(spam=True)
        await route(runtime, auto)
        await route(runtime, spam)
        async with runtime.uow() as uow:
            await create_agent(uow)
        assert await runtime.dispatch_once() == 0
        assert (await conversation(runtime, auto.contact.conversation_id)).status == "held"
        assert (await conversation(runtime, spam.contact.conversation_id)).hold_reason == "spam"


class TestOffers:
    async def test_highest_priority_then_oldest_is_offered_first(
        self, runtime: RouterRuntime
    ) -> None:
        old_low = classified(score=30)
        new_high = classified(score=90)
        newer_low = classified(score=30)
        for contact in (old_low, new_high, newer_low):
            await route(runtime, contact)
        async with runtime.uow() as uow:
            agent = await create_agent(uow, capacity={"chat": 2})
        assert await runtime.dispatch_once() == 2
        offered = {offer.conversation_id for offer in await pending(runtime, agent)}
        assert offered == {new_high.contact.conversation_id, old_low.contact.conversation_id}

    async def test_a_backlog_nobody_can_take_does_not_starve_other_queues(
        self, runtime: RouterRuntime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        monkeypatch.setattr(engine, "DISPATCH_BATCH", 2)
        for _ in range(3):
            await route(runtime, classified(category="billing", score=95))
        general = classified(score=10)
        await route(runtime, general)
        async with runtime.uow() as uow:
            agent = await create_agent(uow)  # serves general only
        assert await runtime.dispatch_once() == 1
        [offer] = await pending(runtime, agent)
        assert offer.conversation_id == general.contact.conversation_id

    async def test_the_longest_idle_agent_gets_the_work(self, runtime: RouterRuntime) -> None:
        async with runtime.uow() as uow:
            busy_recently = await create_agent(uow, name="recent")
            idle_longest = await create_agent(uow, name="idle")
            idle_longest.idle_since = utcnow() - timedelta(hours=1)
        await route(runtime, classified())
        await runtime.dispatch_once()
        assert len(await pending(runtime, idle_longest)) == 1
        assert await pending(runtime, busy_recently) == []

    async def test_skills_and_capacity_are_respected(self, runtime: RouterRuntime) -> None:
        async with runtime.uow() as uow:
            generalist = await create_agent(uow, capacity={"chat": 1, "email": 0})
            biller = await create_agent(uow, skills={"billing": 4}, capacity={"default": 5})
        await route(runtime, classified(category="billing"))
        await route(runtime, classified(channel=Channel.EMAIL))
        await route(runtime, classified())
        await route(runtime, classified())
        await runtime.dispatch_once()
        general_offers = await pending(runtime, generalist)
        assert [o.channel for o in general_offers] == ["chat"]
        assert len(await pending(runtime, biller)) == 1
        async with runtime.sessions() as session:
            decision = await session.scalar(select(RoutingDecision).limit(1))
        assert decision is not None
        assert decision.candidates

    async def test_accept_assigns_and_complete_frees_capacity(self, runtime: RouterRuntime) -> None:
        async with runtime.uow() as uow:
            agent = await create_agent(uow)
        first, second = classified(), classified()
        await route(runtime, first)
        await route(runtime, second)
        await runtime.dispatch_once()
        [offer] = await pending(runtime, agent)
        async with runtime.uow() as uow:
            await offers.accept(uow, as_agent(agent), offer.id)
        row = await conversation(runtime, offer.conversation_id)
        assert (row.status, row.agent_id) == ("assigned", agent.id)
        assert await runtime.dispatch_once() == 0  # capacity 1 is used
        async with runtime.uow() as uow:
            await conversations.complete(uow, as_agent(agent), offer.conversation_id)
        assert await runtime.dispatch_once() == 1
        assert (await conversation(runtime, offer.conversation_id)).status == "completed"

    async def test_an_unanswered_offer_returns_to_the_queue(self, runtime: RouterRuntime) -> None:
        async with runtime.uow() as uow:
            agent = await create_agent(uow)
        contact = classified()
        await route(runtime, contact)
        await runtime.dispatch_once()
        [offer] = await pending(runtime, agent)
        async with runtime.uow() as uow:
            row = await uow.session.get(Offer, offer.id)
            assert row is not None
            row.expires_at = utcnow() - timedelta(seconds=1)
        await runtime.dispatch_once()
        async with runtime.sessions() as session:
            expired = await session.get(Offer, offer.id)
        assert expired is not None
        assert expired.status == OfferStatus.EXPIRED.value
        # Back in the queue, not re-offered at once to the agent who let it lapse.
        assert (await conversation(runtime, contact.contact.conversation_id)).status == "waiting"
        async with runtime.uow() as uow:
            with_expired = await offers.pending_offers(uow.session, agent.id)
            assert with_expired == []
            other = await create_agent(uow, name="other")
        await runtime.dispatch_once()
        assert len(await pending(runtime, other)) == 1

    async def test_an_agent_cannot_touch_another_agents_offer(self, runtime: RouterRuntime) -> None:
        async with runtime.uow() as uow:
            owner = await create_agent(uow, name="owner")
            intruder = await create_agent(uow, name="intruder", status=AgentStatus.AWAY)
        await route(runtime, classified())
        await runtime.dispatch_once()
        [offer] = await pending(runtime, owner)
        for action in (offers.accept, offers.decline):
            try:
                async with runtime.uow() as uow:
                    await action(uow, as_agent(intruder), offer.id)
            except NotFound:
                pass
            else:
                raise AssertionError("another agent's offer must answer 404")

    async def test_declining_twice_is_a_conflict(self, runtime: RouterRuntime) -> None:
        async with runtime.uow() as uow:
            agent = await create_agent(uow)
        await route(runtime, classified())
        await runtime.dispatch_once()
        [offer] = await pending(runtime, agent)
        async with runtime.uow() as uow:
            await offers.decline(uow, as_agent(agent), offer.id)
        try:
            async with runtime.uow() as uow:
                await offers.decline(uow, as_agent(agent), offer.id)
        except Conflict:
            return
        raise AssertionError("a second decline must be a conflict")


class TestConversations:
    async def test_a_follow_up_joins_its_open_conversation(self, runtime: RouterRuntime) -> None:
        first = classified(channel=Channel.EMAIL, conversation_key="<root@x>", external_id="<a@x>")
        follow = classified(
            channel=Channel.EMAIL, conversation_key="<root@x>", external_id="<b@x>", score=85
        )
        await route(runtime, first)
        await route(runtime, follow)
        row = await conversation(runtime, first.contact.conversation_id)
        assert row.message_count == 2
        assert row.priority_score == 85
        async with runtime.sessions() as session:
            count = await session.scalar(select(func.count()).select_from(Conversation))
            events = await conversations.events_of(session, row.id)
        assert count == 1
        assert "conversation.message_joined" in [event.type for event in events]

    async def test_a_message_after_completion_reopens_for_the_previous_agent(
        self, runtime: RouterRuntime
    ) -> None:
        async with runtime.uow() as uow:
            agent = await create_agent(uow, name="first")
        first = classified(conversation_key="chat-1")
        await route(runtime, first)
        await runtime.dispatch_once()
        [offer] = await pending(runtime, agent)
        async with runtime.uow() as uow:
            await offers.accept(uow, as_agent(agent), offer.id)
        async with runtime.uow() as uow:
            await conversations.complete(uow, as_agent(agent), offer.conversation_id)
        async with runtime.uow() as uow:
            longer_idle = await create_agent(uow, name="idle")
            longer_idle.idle_since = utcnow() - timedelta(days=1)
        await route(runtime, classified(conversation_key="chat-1"))
        await runtime.dispatch_once()
        assert [o.conversation_id for o in await pending(runtime, agent)] == [
            first.contact.conversation_id
        ]
        assert await pending(runtime, longer_idle) == []

    async def test_transfer_moves_the_work_to_another_queue(self, runtime: RouterRuntime) -> None:
        async with runtime.uow() as uow:
            agent = await create_agent(uow)
            biller = await create_agent(uow, name="biller", skills={"billing": 3})
        contact = classified()
        await route(runtime, contact)
        await runtime.dispatch_once()
        [offer] = await pending(runtime, agent)
        async with runtime.uow() as uow:
            await offers.accept(uow, as_agent(agent), offer.id)
        async with runtime.uow() as uow:
            billing = await get_queue_by_name(uow.session, "billing")
            await conversations.transfer(uow, as_agent(agent), offer.conversation_id, billing)
        await runtime.dispatch_once()
        assert [o.conversation_id for o in await pending(runtime, biller)] == [
            contact.contact.conversation_id
        ]

    async def test_routing_events_are_published_after_commit(self, runtime: RouterRuntime) -> None:
        await route(runtime, classified())
        types = [m.value for m in runtime.published]  # type: ignore[attr-defined]
        assert any(b'"contact.received"' in value for value in types)
        assert any(b'"conversation.queued"' in value for value in types)

    async def test_a_started_router_publishes_events_in_order_without_making_commits_wait(
        self, sessions: async_sessionmaker[AsyncSession]
    ) -> None:
        bus = GatedBus()
        runtime = RouterRuntime(sessions, bus, RouterSettings(), RoutingRules.load())
        await runtime.start()
        try:
            first, second = classified(), classified()
            # The broker is not answering: the commits return all the same.
            await route(runtime, first)
            await route(runtime, second)
            assert bus.published == []
            bus.gate.set()
        finally:
            await runtime.stop()  # publishes what is still queued before it returns
        keys = [m.key for m in bus.published]
        first_id, second_id = (str(c.contact.conversation_id) for c in (first, second))
        assert keys.index(first_id) < keys.index(second_id)
        assert max(i for i, k in enumerate(keys) if k == first_id) < keys.index(second_id)


class GatedBus(InProcessBus):
    """An in-process bus whose routing.events publications wait until the gate opens."""

    def __init__(self) -> None:
        super().__init__()
        self.gate = asyncio.Event()
        self.published: list[Message] = []

    async def publish_many(self, topic: str, items: Sequence[tuple[str, bytes]]) -> None:
        if topic == topics.ROUTING_EVENTS:
            await self.gate.wait()
            self.published += [Message(topic=topic, key=k, value=v) for k, v in items]
        await super().publish_many(topic, items)


class TestBatches:
    """What the Kafka consumer hands over together is stored in one transaction."""

    async def route_batch(
        self, runtime: RouterRuntime, batch: list[ClassifiedContact]
    ) -> list[conversations.IngestOutcome]:
        async with runtime.uow() as uow:
            return await conversations.ingest_batch(
                uow, batch, runtime.rules, runtime.reopen_window
            )

    async def test_messages_of_one_conversation_in_one_batch_make_one_conversation(
        self, runtime: RouterRuntime
    ) -> None:
        first = classified(conversation_key="thread-1", score=40)
        second = classified(conversation_key="thread-1", score=70)
        other = classified(conversation_key="thread-2")
        outcomes = await self.route_batch(runtime, [first, second, other])

        assert [o.duplicate for o in outcomes] == [False, False, False]
        assert [o.queued for o in outcomes] == [True, False, True]
        row = await conversation(runtime, first.contact.conversation_id)
        assert (row.message_count, row.priority_score) == (2, 70)
        async with runtime.sessions() as session:
            convs = await session.scalar(select(func.count()).select_from(Conversation))
            contacts = await session.scalar(select(func.count()).select_from(Contact))
            events = [e.type for e in await conversations.events_of(session, row.id)]
        assert (convs, contacts) == (2, 3)
        assert events.count("conversation.queued") == 1
        assert "conversation.message_joined" in events

    async def test_a_contact_twice_in_a_batch_or_again_later_is_stored_once(
        self, runtime: RouterRuntime
    ) -> None:
        contact = classified()
        outcomes = await self.route_batch(runtime, [contact, contact])
        again = await self.route_batch(runtime, [contact, classified()])

        assert [o.duplicate for o in outcomes] == [False, True]
        assert [o.duplicate for o in again] == [True, False]
        assert outcomes[1].conversation_id == outcomes[0].conversation_id
        async with runtime.sessions() as session:
            contacts = await session.scalar(select(func.count()).select_from(Contact))
        assert contacts == 2

    async def test_a_batch_is_offered_in_priority_order(self, runtime: RouterRuntime) -> None:
        async with runtime.uow() as uow:
            agent = await create_agent(uow, capacity={"default": 1})
        low, high = classified(score=20), classified(score=90)
        await self.route_batch(runtime, [low, high])
        assert await runtime.dispatch_once() == 1
        [offer] = await pending(runtime, agent)
        assert offer.conversation_id == high.contact.conversation_id

    async def test_one_customer_per_person_across_a_batch(self, runtime: RouterRuntime) -> None:
        ana_mail = CustomerRef(name="Ana", email="ana@example.com")
        ana_phone = CustomerRef(phone="+34612345678")
        ana_both = CustomerRef(email="ANA@example.com", phone="+34612345678")
        batch = [
            classified(customer=ana_mail),
            classified(customer=ana_phone),  # a stranger, until the next contact
            classified(customer=ana_both),  # proves both are Ana: merged
            classified(customer=CustomerRef(email="bob@example.com")),
        ]
        await self.route_batch(runtime, batch)
        await self.route_batch(runtime, [classified(customer=ana_mail)])

        async with runtime.sessions() as session:
            customers = await session.scalar(select(func.count()).select_from(Customer))
            identities = (
                await session.execute(select(CustomerIdentity.kind, CustomerIdentity.value))
            ).all()
            owners = {
                conv.customer_id for conv in (await session.scalars(select(Conversation))).all()
            }
        assert customers == 2
        assert sorted(identities) == [
            ("email", "ana@example.com"),
            ("email", "bob@example.com"),
            ("phone", "+34612345678"),
        ]
        # The stranger's conversation was written after the merge: it names Ana too.
        assert len(owners) == 2

    async def test_a_failing_batch_stores_none_of_it(
        self, runtime: RouterRuntime, monkeypatch: pytest.MonkeyPatch
    ) -> None:
        good, bad = classified(), classified()
        choose = RoutingRules.queue_for

        def queue_for(rules: RoutingRules, contact: ClassifiedContact) -> tuple[str, str]:
            if contact.contact.contact_id == bad.contact.contact_id:
                return "no-such-queue", "test"
            return choose(rules, contact)

        monkeypatch.setattr(RoutingRules, "queue_for", queue_for)
        with pytest.raises(NotFound):
            await self.route_batch(runtime, [good, bad])
        async with runtime.sessions() as session:
            contacts = await session.scalar(select(func.count()).select_from(Contact))
        assert contacts == 0
