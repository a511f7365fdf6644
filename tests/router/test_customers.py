"""One customer across channels: identity resolution, merging, lookup, threading, erasure."""

from __future__ import annotations

import uuid

import pytest
from sqlalchemy import func, inspect, select, text

from omniroute.router.conversations import service as conversations
from omniroute.router.conversations.service import IngestOutcome, ingest_classified
from omniroute.router.customers import service as customers
from omniroute.router.customers.erasure import erase_customer
from omniroute.router.customers.models import CustomerMerge, Erasure
from omniroute.router.models import (
    AgentStatus,
    Assignment,
    Conversation,
    ConversationEvent,
    Customer,
    CustomerIdentity,
    Offer,
)
from omniroute.router.notifications.models import Feedback, Notification
from omniroute.router.notifications.service import Notifier, record_feedback
from omniroute.router.offers import service as offers
from omniroute.router.runtime import RouterRuntime
from omniroute.shared.auth import Principal, Role
from omniroute.shared.errors import BadRequest, NotFound
from omniroute.shared.events import (
    Attachment,
    Channel,
    ClassifiedContact,
    CustomerRef,
    TranscriptTurn,
    utcnow,
)
from omniroute.shared.reference import find_reference, normalise_reference, reference_for
from omniroute.shared.settings import RouterSettings
from tests.builders import classified, create_agent, inbound

SUPERVISOR = Principal(role=Role.SUPERVISOR)


async def route(runtime: RouterRuntime, contact: ClassifiedContact) -> IngestOutcome:
    async with runtime.uow() as uow:
        return await ingest_classified(uow, contact, runtime.rules, runtime.reopen_window)


async def customer_of(runtime: RouterRuntime, conversation_id: uuid.UUID) -> uuid.UUID:
    async with runtime.sessions() as session:
        row = await session.get(Conversation, conversation_id)
    assert row is not None
    assert row.customer_id is not None
    return row.customer_id


def email_from(address: str, name: str = "Ana", **fields: object) -> ClassifiedContact:
    return classified(
        channel=Channel.EMAIL, customer=CustomerRef(email=address, name=name), **fields
    )


def whatsapp_from(wa_id: str, name: str | None = None) -> ClassifiedContact:
    # As the Meta adapter builds it: the wa_id (digits, no "+") and the E.164 phone.
    return classified(
        channel=Channel.WHATSAPP,
        conversation_key=f"106540352242922:{wa_id}",
        customer=CustomerRef(name=name, provider_ids={"wa_id": wa_id}),
    )


def call_from(number: str, email: str | None = None) -> ClassifiedContact:
    return classified(channel=Channel.PHONE, customer=CustomerRef(phone=number, email=email))


class TestReferences:
    def test_a_reference_is_stable_and_found_in_a_subject(self) -> None:
        conversation_id = uuid.UUID("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")
        reference = reference_for(conversation_id)
        assert reference == reference_for(conversation_id)
        assert len(reference) == 9
        assert reference[4] == "-"
        assert find_reference(f"Re: Factura duplicada [#{reference}]") == reference
        assert find_reference(f"re: [#{reference.lower()}]") == reference

    def test_text_without_a_bracketed_reference_has_none(self) -> None:
        assert find_reference("Pedido ABCD-1234 sin corchetes") is None
        assert normalise_reference("no es una referencia") is None


class TestIdentityResolution:
    async def test_email_whatsapp_and_phone_of_one_person_resolve_to_one_customer(
        self, runtime: RouterRuntime
    ) -> None:
        by_email = await route(runtime, email_from("Lucia.Perez@Example.ES"))
        by_whatsapp = await route(runtime, whatsapp_from("34600111222", name="Lucía"))
        # The call carries the local number and the e-mail: it links the other two.
        by_phone = await route(runtime, call_from("600 11 12 22", email="lucia.perez@example.es"))
        ids = {
            await customer_of(runtime, outcome.conversation_id)
            for outcome in (by_email, by_whatsapp, by_phone)
        }
        assert len(ids) == 1
        async with runtime.sessions() as session:
            count = await session.scalar(select(func.count()).select_from(Customer))
            [customer_id] = ids
            identities = {
                (row.kind, row.value)
                for row in await customers.identities_for(session, customer_id)
            }
        assert count == 1
        assert ("email", "lucia.perez@example.es") in identities
        assert ("phone", "+34600111222") in identities

    async def test_a_whatsapp_id_is_the_callers_e164_number(self, runtime: RouterRuntime) -> None:
        whatsapp = await route(runtime, whatsapp_from("34600111222"))
        call = await route(runtime, call_from("+34 600 111 222"))
        assert await customer_of(runtime, whatsapp.conversation_id) == await customer_of(
            runtime, call.conversation_id
        )

    async def test_a_contact_linking_two_customers_merges_them_and_records_it(
        self, runtime: RouterRuntime
    ) -> None:
        first = await route(runtime, email_from("ana@example.com"))
        second = await route(runtime, call_from("+34600999888"))
        assert await customer_of(runtime, first.conversation_id) != await customer_of(
            runtime, second.conversation_id
        )
        await route(runtime, call_from("+34600999888", email="ANA@example.com"))
        kept = await customer_of(runtime, first.conversation_id)
        assert await customer_of(runtime, second.conversation_id) == kept
        async with runtime.sessions() as session:
            merge = await session.scalar(select(CustomerMerge))
        assert merge is not None
        assert (merge.customer_id, merge.reason) == (kept, "shared identity")

    async def test_different_people_stay_apart(self, runtime: RouterRuntime) -> None:
        one = await route(runtime, email_from("ana@example.com"))
        other = await route(runtime, email_from("bea@example.com"))
        assert await customer_of(runtime, one.conversation_id) != await customer_of(
            runtime, other.conversation_id
        )


class TestMerge:
    async def test_a_merge_moves_identities_and_conversations_and_keeps_the_richer_profile(
        self, runtime: RouterRuntime
    ) -> None:
        rich = await route(
            runtime,
            classified(
                channel=Channel.EMAIL,
                customer=CustomerRef(email="ana@example.com", name="Ana Ruiz", tier="vip"),
            ),
        )
        poor = await route(runtime, call_from("+34600222333"))
        rich_id = await customer_of(runtime, rich.conversation_id)
        poor_id = await customer_of(runtime, poor.conversation_id)
        async with runtime.uow() as uow:
            poor_row = await customers.get_customer(uow.session, poor_id)
            poor_row.consent = {"surveys": False}
        async with runtime.uow() as uow:
            keep = await customers.get_customer(uow.session, poor_id)
            other = await customers.get_customer(uow.session, rich_id)
            record = await customers.merge_customers(uow, keep, other, actor="supervisor")
        assert (record.conversations_moved, record.identities_moved) == (1, 1)
        async with runtime.sessions() as session:
            kept = await customers.get_customer(session, poor_id)
            history = await customers.history_of(session, poor_id)
            with pytest.raises(NotFound):
                await customers.get_customer(session, rich_id)
            events = await conversations.events_of(session, rich.conversation_id)
        assert (kept.name, kept.tier, kept.email, kept.phone) == (
            "Ana Ruiz",
            "vip",
            "ana@example.com",
            "+34600222333",
        )
        assert kept.consent == {"surveys": False}  # a withdrawn consent stays withdrawn
        assert {c.id for c in history} == {rich.conversation_id, poor.conversation_id}
        assert "customer.merged" in [event.type for event in events]

    async def test_a_customer_cannot_be_merged_with_itself(self, runtime: RouterRuntime) -> None:
        outcome = await route(runtime, email_from("ana@example.com"))
        customer_id = await customer_of(runtime, outcome.conversation_id)
        async with runtime.uow() as uow:
            customer = await customers.get_customer(uow.session, customer_id)
            with pytest.raises(BadRequest):
                await customers.merge_customers(uow, customer, customer, actor="supervisor")


class TestLookup:
    async def test_queries_are_normalised_like_ingestion(self, runtime: RouterRuntime) -> None:
        email = await route(runtime, email_from("Ana@Example.com"))
        await route(runtime, whatsapp_from("34600111222"))
        customer_id = await customer_of(runtime, email.conversation_id)
        async with runtime.sessions() as session:
            by_email = await customers.find_customers(
                session,
                customers.lookup_keys(
                    email=" ANA@example.COM ", phone=None, handle=None, channel=None
                ),
            )
            by_phone = await customers.find_customers(
                session,
                customers.lookup_keys(email=None, phone="600 111 222", handle=None, channel=None),
            )
        assert [c.id for c in by_email] == [customer_id]
        assert len(by_phone) == 1
        assert by_phone[0].phone == "+34600111222"

    def test_a_query_names_exactly_one_identity(self) -> None:
        with pytest.raises(BadRequest):
            customers.lookup_keys(email=None, phone=None, handle=None, channel=None)
        with pytest.raises(BadRequest):
            customers.lookup_keys(email="a@b.c", phone="+34600111222", handle=None, channel=None)

    async def test_an_agent_reads_only_the_customer_of_a_conversation_it_holds(
        self, runtime: RouterRuntime
    ) -> None:
        async with runtime.uow() as uow:
            holder = await create_agent(uow, name="Marta")
            stranger = await create_agent(uow, name="Luis", status=AgentStatus.AWAY)
        outcome = await route(runtime, email_from("ana@example.com"))
        customer_id = await customer_of(runtime, outcome.conversation_id)
        await runtime.dispatch_once()
        async with runtime.uow() as uow:
            [offer] = await offers.pending_offers(uow.session, holder.id)
            await offers.accept(uow, Principal(role=Role.AGENT, agent_id=holder.id), offer.id)
        async with runtime.sessions() as session:
            seen = await customers.readable_customer(
                session, Principal(role=Role.AGENT, agent_id=holder.id), customer_id
            )
            with pytest.raises(NotFound):
                await customers.readable_customer(
                    session, Principal(role=Role.AGENT, agent_id=stranger.id), customer_id
                )
        assert seen.id == customer_id


class TestThreading:
    async def test_a_reply_quoting_the_reference_joins_its_conversation(
        self, runtime: RouterRuntime
    ) -> None:
        first = await route(runtime, email_from("ana@example.com"))
        async with runtime.sessions() as session:
            conversation = await session.get(Conversation, first.conversation_id)
        assert conversation is not None
        assert conversation.reference == reference_for(first.conversation_id)
        # Headers lost: a new thread key, but the subject's reference found by the gateway.
        reply = email_from("ana@example.com", metadata={"reference": conversation.reference})
        outcome = await route(runtime, reply)
        assert outcome.conversation_id == first.conversation_id
        async with runtime.sessions() as session:
            count = await session.scalar(select(func.count()).select_from(Conversation))
            joined = await session.get(Conversation, first.conversation_id)
        assert count == 1
        assert joined is not None
        assert joined.message_count == 2
        # A redelivery of the reply is a duplicate of the contact in that conversation.
        again = await route(runtime, reply)
        assert (again.duplicate, again.conversation_id) == (True, first.conversation_id)

    async def test_the_gateways_id_for_the_joined_thread_stays_valid(
        self, runtime: RouterRuntime
    ) -> None:
        first = await route(runtime, email_from("ana@example.com"))
        reply = email_from(
            "ana@example.com", metadata={"reference": reference_for(first.conversation_id)}
        )
        await route(runtime, reply)
        # The gateway answered with the reply thread's own id; it names the joined conversation.
        supervisor = Principal(role=Role.SUPERVISOR)
        async with runtime.sessions() as session:
            found = await conversations.get_for(session, supervisor, reply.contact.conversation_id)
        assert found.id == first.conversation_id
        # A later message of the reply's thread finds it without quoting the reference.
        later = email_from("ana@example.com")
        later = later.model_copy(
            update={
                "contact": later.contact.model_copy(
                    update={"conversation_id": reply.contact.conversation_id}
                )
            }
        )
        outcome = await route(runtime, later)
        assert outcome.conversation_id == first.conversation_id

    async def test_an_unknown_reference_starts_a_new_conversation(
        self, runtime: RouterRuntime
    ) -> None:
        contact = email_from("ana@example.com", metadata={"reference": "AAAA-BBBB"})
        outcome = await route(runtime, contact)
        assert outcome.conversation_id == contact.contact.conversation_id

    async def test_a_reply_by_reference_after_completion_reopens_for_the_previous_agent(
        self, runtime: RouterRuntime
    ) -> None:
        async with runtime.uow() as uow:
            await create_agent(uow, name="Marta", capacity={"default": 5})
            await create_agent(uow, name="Luis", capacity={"default": 5})
        first = await route(runtime, email_from("ana@example.com"))
        await runtime.dispatch_once()
        async with runtime.sessions() as session:
            offer = await session.scalar(select(Offer))
        assert offer is not None
        holder = Principal(role=Role.AGENT, agent_id=offer.agent_id)
        async with runtime.uow() as uow:
            await offers.accept(uow, holder, offer.id)
        async with runtime.uow() as uow:
            await conversations.complete(uow, holder, first.conversation_id)
        # The other agent has now been idle longer; the previous agent is still preferred.
        reply = email_from(
            "ana@example.com", metadata={"reference": reference_for(first.conversation_id)}
        )
        outcome = await route(runtime, reply)
        assert (outcome.queued, outcome.conversation_id) == (True, first.conversation_id)
        await runtime.dispatch_once()
        async with runtime.uow() as uow:
            [again] = await offers.pending_offers(uow.session, offer.agent_id)
        assert again.conversation_id == first.conversation_id


NEEDLES = (
    "zenobia",
    "quintanilla",
    "zenobia.q@example.org",
    "example.org",
    "611222333",
    "zarzaparrilla",
    "tamarindo",
)


async def tables_containing(runtime: RouterRuntime, needle: str) -> list[str]:
    """Every (table.column) of the database whose text contains the needle, case-insensitively."""
    async with runtime.sessions() as session:
        connection = await session.connection()
        tables = await connection.run_sync(
            lambda sync: {
                name: [column["name"] for column in inspect(sync).get_columns(name)]
                for name in inspect(sync).get_table_names()
            }
        )
        hits: list[str] = []
        for table, columns in tables.items():
            for column in columns:
                found = await session.scalar(
                    text(
                        f'SELECT count(*) FROM "{table}" '
                        f'WHERE lower(CAST("{column}" AS TEXT)) LIKE :needle'
                    ),
                    {"needle": f"%{needle.lower()}%"},
                )
                if found:
                    hits.append(f"{table}.{column}")
    return hits


class TestErasure:
    async def _a_customer_everywhere(self, runtime: RouterRuntime) -> uuid.UUID:
        """Zenobia writes by e-mail, WhatsApp and phone; is answered, notified and surveyed."""
        ref = CustomerRef(
            name="Zenobia Quintanilla", email="Zenobia.Q@example.org", phone="+34 611 222 333"
        )
        mail = await route(
            runtime,
            classified(
                inbound(
                    channel=Channel.EMAIL,
                    customer=ref,
                    subject="Reembolso Zarzaparrilla",
                    text="Soy Zenobia Quintanilla, quiero el reembolso de la Zarzaparrilla.",
                    attachments=[Attachment(filename="zarzaparrilla-zenobia.pdf", size=10)],
                    metadata={"from_name": "Zenobia Quintanilla"},
                )
            ),
        )
        await route(
            runtime,
            classified(
                inbound(
                    channel=Channel.WHATSAPP,
                    conversation_key="106540352242922:34611222333",
                    customer=CustomerRef(name="Zenobia", provider_ids={"wa_id": "34611222333"}),
                    text="Hola, soy Zenobia: ¿y mi tamarindo?",
                )
            ),
        )
        await route(
            runtime,
            classified(
                inbound(
                    channel=Channel.PHONE,
                    customer=CustomerRef(phone="611222333"),
                    text="Llamada de Zenobia Quintanilla sobre el tamarindo",
                    transcript=[
                        TranscriptTurn(speaker="customer", text="Soy Zenobia, del tamarindo"),
                    ],
                )
            ),
        )
        async with runtime.uow() as uow:
            agent = await create_agent(uow, name="Marta Gil", capacity={"default": 5})
        await runtime.dispatch_once()
        holder = Principal(role=Role.AGENT, agent_id=agent.id)
        async with runtime.uow() as uow:
            for offer in await offers.pending_offers(uow.session, agent.id):
                await offers.accept(uow, holder, offer.id)
        async with runtime.uow() as uow:
            await conversations.complete(uow, holder, mail.conversation_id)
        notifier = Notifier(RouterSettings())
        async with runtime.uow() as uow:
            await notifier.run_once(uow, utcnow())
        async with runtime.uow() as uow:
            await record_feedback(
                uow,
                mail.conversation_id,
                csat=5,
                nps=9,
                comment="Zenobia Quintanilla: la zarzaparrilla llegó",
            )
        return await customer_of(runtime, mail.conversation_id)

    async def test_no_personal_data_is_left_anywhere(self, runtime: RouterRuntime) -> None:
        bystander = await route(
            runtime, email_from("bartolome@example.net", name="Bartolome", text="Hola Bartolome")
        )
        customer_id = await self._a_customer_everywhere(runtime)
        for needle in NEEDLES:
            assert await tables_containing(runtime, needle), f"the scenario must store {needle}"
        async with runtime.uow() as uow:
            record = await erase_customer(uow, customer_id, actor="admin")
        assert (record.conversations, record.contacts) == (3, 3)
        for needle in NEEDLES:
            assert await tables_containing(runtime, needle) == [], needle
        # The bystander is untouched.
        assert "contacts.text" in await tables_containing(runtime, "Hola Bartolome")
        assert await customer_of(runtime, bystander.conversation_id)

    async def test_anonymous_routing_facts_and_the_record_remain(
        self, runtime: RouterRuntime
    ) -> None:
        customer_id = await self._a_customer_everywhere(runtime)
        async with runtime.uow() as uow:
            first = await erase_customer(uow, customer_id, actor="supervisor:k1")
        async with runtime.uow() as uow:
            again = await erase_customer(uow, customer_id, actor="admin")
        assert again.id == first.id
        async with runtime.sessions() as session:
            rows = list(
                (
                    await session.scalars(
                        select(Conversation).where(Conversation.customer_id == customer_id)
                    )
                ).all()
            )
            feedback = await session.scalar(select(Feedback))
            erasure = await session.scalar(select(Erasure))
            events = await session.scalars(
                select(ConversationEvent.type).where(ConversationEvent.type == "customer.erased")
            )
            identities = await session.scalar(select(func.count()).select_from(CustomerIdentity))
            notices = (await session.scalars(select(Notification))).all()
            with pytest.raises(NotFound):
                await customers.get_customer(session, customer_id)
        assert sorted(row.channel for row in rows) == ["email", "phone", "whatsapp"]
        assert all(row.category and row.priority_level for row in rows)
        assert feedback is not None
        assert (feedback.csat, feedback.nps, feedback.comment) == (5, 9, None)
        assert erasure is not None
        assert (erasure.actor, erasure.customer_id) == ("supervisor:k1", customer_id)
        assert len(list(events)) == 3
        assert identities == 0
        assert notices
        assert all(n.text == "" and n.recipient is None for n in notices)
        assert {n.kind for n in notices} >= {"acknowledgement", "assigned", "survey"}

    async def test_a_new_message_after_erasure_makes_a_new_customer(
        self, runtime: RouterRuntime
    ) -> None:
        first = await route(runtime, email_from("ana@example.com"))
        customer_id = await customer_of(runtime, first.conversation_id)
        async with runtime.uow() as uow:
            await erase_customer(uow, customer_id, actor="admin")
        later = await route(runtime, email_from("ana@example.com"))
        assert await customer_of(runtime, later.conversation_id) != customer_id

    async def test_open_work_ends_and_no_notice_follows(self, runtime: RouterRuntime) -> None:
        async with runtime.uow() as uow:
            agent = await create_agent(uow, name="Marta")
        mail = await route(runtime, email_from("ana@example.com"))
        call = await route(runtime, call_from("+34600555444", email="ana@example.com"))
        await runtime.dispatch_once()
        async with runtime.uow() as uow:
            [offer, *_] = await offers.pending_offers(uow.session, agent.id)
            await offers.accept(uow, Principal(role=Role.AGENT, agent_id=agent.id), offer.id)
        customer_id = await customer_of(runtime, mail.conversation_id)
        async with runtime.uow() as uow:
            await erase_customer(uow, customer_id, actor="admin")
        async with runtime.uow() as uow:
            result = await Notifier(RouterSettings()).run_once(uow, utcnow())
        assert (result.acknowledgements, result.assigned, result.surveys) == (0, 0, 0)
        async with runtime.sessions() as session:
            statuses = {
                (await session.get(Conversation, o.conversation_id)).status  # type: ignore[union-attr]
                for o in (mail, call)
            }
            open_assignments = await session.scalar(
                select(func.count()).select_from(Assignment).where(Assignment.ended_at.is_(None))
            )
            pending = await session.scalar(
                select(func.count()).select_from(Offer).where(Offer.status == "pending")
            )
        assert statuses == {"completed"}
        assert (open_assignments, pending) == (0, 0)
