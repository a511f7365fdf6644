"""Keeping the customer informed: acknowledgement, who is responsible, delay, survey, stats."""

from __future__ import annotations

import asyncio
import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import select

from omniroute.router.conversations import service as conversations
from omniroute.router.conversations.service import IngestOutcome, ingest_classified
from omniroute.router.models import Agent, Conversation, Customer
from omniroute.router.notifications.models import Notification
from omniroute.router.notifications.service import (
    Notifier,
    PassResult,
    feedback_stats,
    notifications_of,
    record_feedback,
)
from omniroute.router.notifications.templates import TemplateError, Templates, format_due
from omniroute.router.offers import service as offers
from omniroute.router.runtime import RouterRuntime
from omniroute.shared.auth import Principal, Role
from omniroute.shared.errors import Conflict
from omniroute.shared.events import Channel, ClassifiedContact, CustomerRef, utcnow
from omniroute.shared.reference import reference_for
from omniroute.shared.settings import RouterSettings
from omniroute.shared.transport import Message
from tests.builders import classified, create_agent

SETTINGS = RouterSettings(brand_name="Tiendas Sol", brand_timezone="Europe/Madrid")
ZONE = ZoneInfo("Europe/Madrid")


async def route(runtime: RouterRuntime, contact: ClassifiedContact) -> IngestOutcome:
    async with runtime.uow() as uow:
        return await ingest_classified(uow, contact, runtime.rules, runtime.reopen_window)


async def notify(
    runtime: RouterRuntime, now: datetime | None = None, notifier: Notifier | None = None
) -> PassResult:
    async with runtime.uow() as uow:
        return await (notifier or Notifier(SETTINGS)).run_once(uow, now or utcnow())


def published_on(runtime: RouterRuntime) -> list[Message]:
    messages: list[Message] = runtime.published  # type: ignore[attr-defined]
    return messages


async def notices(runtime: RouterRuntime, conversation_id: uuid.UUID) -> list[Notification]:
    async with runtime.sessions() as session:
        return await notifications_of(session, conversation_id)


async def accept_all(runtime: RouterRuntime, agent: Agent) -> None:
    await runtime.dispatch_once()
    async with runtime.uow() as uow:
        for offer in await offers.pending_offers(uow.session, agent.id):
            await offers.accept(uow, Principal(role=Role.AGENT, agent_id=agent.id), offer.id)


def email(language: str = "es", **fields: object) -> ClassifiedContact:
    return classified(
        channel=Channel.EMAIL,
        language=language,
        customer=CustomerRef(email="ana@example.com", name="Ana"),
        **fields,
    )


class TestAcknowledgement:
    async def test_an_email_gets_a_full_spanish_acknowledgement(
        self, runtime: RouterRuntime
    ) -> None:
        contact = email()
        outcome = await route(runtime, contact)
        result = await notify(runtime)
        assert result.acknowledgements == 1
        [ack] = await notices(runtime, outcome.conversation_id)
        reference = reference_for(outcome.conversation_id)
        due = format_due(contact.sla.first_response_due, "es", ZONE)
        assert (ack.kind, ack.channel, ack.language) == ("acknowledgement", "email", "es")
        assert ack.recipient == "email:ana@example.com"
        assert ack.subject == f"[#{reference}] Hemos recibido su mensaje"
        assert "gracias por escribir a Tiendas Sol" in ack.text
        assert ack.text.startswith(("Buenos días", "Buenas tardes", "Buenas noches"))
        assert reference in ack.text
        assert due in ack.text

    async def test_a_chat_gets_a_short_english_one(self, runtime: RouterRuntime) -> None:
        outcome = await route(runtime, classified(language="en"))
        await notify(runtime)
        [ack] = await notices(runtime, outcome.conversation_id)
        assert ack.language == "en"
        assert ack.subject is None
        assert ack.text.startswith("Thanks for writing to Tiendas Sol")
        assert "\n" not in ack.text
        assert len(ack.text) < 200

    async def test_an_unknown_language_falls_back_to_english(self, runtime: RouterRuntime) -> None:
        outcome = await route(runtime, classified(language="fr"))
        await notify(runtime)
        [ack] = await notices(runtime, outcome.conversation_id)
        assert ack.language == "en"

    async def test_the_customers_known_language_and_time_zone_are_used(
        self, runtime: RouterRuntime
    ) -> None:
        contact = classified(
            language="en",
            customer=CustomerRef(email="ana@example.com", language="es"),
        )
        outcome = await route(runtime, contact)
        async with runtime.uow() as uow:
            customer = await uow.session.scalar(select(Customer))
            assert customer is not None
            customer.timezone = "America/Mexico_City"
        await notify(runtime)
        [ack] = await notices(runtime, outcome.conversation_id)
        assert ack.language == "es"
        mexico = format_due(contact.sla.first_response_due, "es", ZoneInfo("America/Mexico_City"))
        assert mexico in ack.text

    async def test_held_messages_and_follow_ups_get_none(self, runtime: RouterRuntime) -> None:
        auto = await route(runtime, email(metadata={"auto_submitted": "auto-replied"}))
        spam = await route(runtime, email(spam=True))
        first = await route(runtime, classified(conversation_key="chat-1"))
        await notify(runtime)
        follow_up = await route(runtime, classified(conversation_key="chat-1"))
        assert follow_up.conversation_id == first.conversation_id
        result = await notify(runtime)
        assert result.acknowledgements == 0
        assert await notices(runtime, auto.conversation_id) == []
        assert await notices(runtime, spam.conversation_id) == []
        assert len(await notices(runtime, first.conversation_id)) == 1

    async def test_a_reopened_conversation_is_acknowledged_again(
        self, runtime: RouterRuntime
    ) -> None:
        first = await route(runtime, classified(conversation_key="chat-2"))
        await notify(runtime)
        async with runtime.uow() as uow:
            await conversations.complete(
                uow, Principal(role=Role.SUPERVISOR), first.conversation_id
            )
        await route(runtime, classified(conversation_key="chat-2"))
        await notify(runtime)
        kinds = [n.kind for n in await notices(runtime, first.conversation_id)]
        # The survey was moot once the customer wrote again: the new acknowledgement replaces it.
        assert kinds == ["acknowledgement", "acknowledgement"]

    async def test_a_notice_is_a_routing_event_with_its_text(self, runtime: RouterRuntime) -> None:
        outcome = await route(runtime, email())
        await notify(runtime)
        published = [json.loads(m.value) for m in published_on(runtime)]
        [event] = [e for e in published if e["type"] == "notification.sent"]
        assert event["conversation_id"] == str(outcome.conversation_id)
        assert event["data"]["kind"] == "acknowledgement"
        assert event["data"]["recipient"] == "email:ana@example.com"
        assert "Tiendas Sol" in event["data"]["text"]
        async with runtime.sessions() as session:
            log = await conversations.events_of(session, outcome.conversation_id)
        assert "notification.sent" in [e.type for e in log]


class TestAssigned:
    async def test_the_customer_learns_who_is_responsible(self, runtime: RouterRuntime) -> None:
        async with runtime.uow() as uow:
            marta = await create_agent(uow, name="Marta Gil")
        outcome = await route(runtime, email())
        await notify(runtime)
        await accept_all(runtime, marta)
        result = await notify(runtime)
        assert result.assigned == 1
        assert (await notify(runtime)).assigned == 0  # once per assignment
        kinds = [n.kind for n in await notices(runtime, outcome.conversation_id)]
        assert kinds == ["acknowledgement", "assigned"]
        assigned = (await notices(runtime, outcome.conversation_id))[1]
        assert "le atiende Marta" in assigned.text
        assert "Gil" not in assigned.text
        assert assigned.subject is not None
        assert assigned.subject.endswith("Le atiende Marta")


class TestSla:
    async def test_a_delay_notice_once_at_the_warning_fraction(
        self, runtime: RouterRuntime
    ) -> None:
        outcome = await route(runtime, email(first_response_in=timedelta(hours=10)))
        async with runtime.sessions() as session:
            row = await session.get(Conversation, outcome.conversation_id)
        assert row is not None
        assert row.enqueued_at is not None
        start = row.enqueued_at
        assert (await notify(runtime, start + timedelta(hours=7, minutes=50))).warnings == 0
        assert (await notify(runtime, start + timedelta(hours=8, minutes=1))).warnings == 1
        assert (await notify(runtime, start + timedelta(hours=9))).warnings == 0
        delay = [n for n in await notices(runtime, outcome.conversation_id) if n.kind == "delay"]
        assert len(delay) == 1
        assert "más de lo previsto" in delay[0].text
        types = [json.loads(m.value)["type"] for m in published_on(runtime)]
        assert types.count("sla.warning") == 1

    async def test_the_fraction_is_configurable(self, runtime: RouterRuntime) -> None:
        outcome = await route(runtime, email(first_response_in=timedelta(hours=10)))
        async with runtime.sessions() as session:
            row = await session.get(Conversation, outcome.conversation_id)
        assert row is not None
        assert row.enqueued_at is not None
        half = Notifier(RouterSettings(sla_warning_fraction=0.5))
        at = row.enqueued_at + timedelta(hours=5, minutes=1)
        assert (await notify(runtime, at, half)).warnings == 1

    async def test_a_breach_escalates_once(self, runtime: RouterRuntime) -> None:
        outcome = await route(runtime, email(score=50, first_response_in=timedelta(hours=1)))
        later = utcnow() + timedelta(hours=2)
        result = await notify(runtime, later)
        assert (result.warnings, result.breaches) == (1, 1)
        assert (await notify(runtime, later + timedelta(hours=1))).breaches == 0
        async with runtime.sessions() as session:
            row = await session.get(Conversation, outcome.conversation_id)
            log = await conversations.events_of(session, outcome.conversation_id)
        types = [e.type for e in log]
        assert row is not None
        assert (row.priority_level, row.priority_score) == ("P2", 70)
        assert types.count("sla.breach") == 1
        assert types.count("conversation.escalated") == 1

    async def test_no_warning_once_an_agent_has_it(self, runtime: RouterRuntime) -> None:
        async with runtime.uow() as uow:
            agent = await create_agent(uow)
        await route(runtime, email(first_response_in=timedelta(hours=1)))
        await accept_all(runtime, agent)
        result = await notify(runtime, utcnow() + timedelta(hours=2))
        assert (result.warnings, result.breaches) == (0, 0)

    async def test_fresh_short_deadlines_do_not_hide_an_old_warning(
        self, runtime: RouterRuntime
    ) -> None:
        old = await route(runtime, email(first_response_in=timedelta(hours=3)))
        async with runtime.uow() as uow:
            row = await uow.session.get(Conversation, old.conversation_id)
            assert row is not None
            row.enqueued_at = utcnow() - timedelta(hours=20)  # 20 of 23 hours used
        for _ in range(3):  # due sooner, but with most of their time left
            await route(runtime, email(first_response_in=timedelta(hours=1)))
        small_batches = Notifier(SETTINGS, batch=2)
        async with runtime.uow() as uow:
            warned = await small_batches.watch_sla(uow, utcnow())
        assert warned == (1, 0)
        kinds = [n.kind for n in await notices(runtime, old.conversation_id)]
        assert kinds == ["delay"]

    async def test_replicas_racing_produce_each_notice_once(self, runtime: RouterRuntime) -> None:
        for _ in range(5):
            await route(runtime, email(first_response_in=timedelta(hours=1)))
        later = utcnow() + timedelta(hours=2)
        replicas = [Notifier(SETTINGS) for _ in range(3)]

        async def one_pass(notifier: Notifier) -> PassResult:
            try:
                return await notify(runtime, later, notifier)
            except Exception:  # a replica that lost a lock race retries on its next pass
                return PassResult()

        results = await asyncio.gather(*(one_pass(n) for n in replicas))
        results.append(await notify(runtime, later))
        assert sum(r.acknowledgements for r in results) == 5
        assert sum(r.warnings for r in results) == 5
        assert sum(r.breaches for r in results) == 5
        async with runtime.sessions() as session:
            rows = (await session.scalars(select(Notification))).all()
        assert sorted(n.kind for n in rows) == ["acknowledgement"] * 5 + ["delay"] * 5


class TestSurvey:
    async def test_a_survey_after_completion_and_its_answer(self, runtime: RouterRuntime) -> None:
        async with runtime.uow() as uow:
            agent = await create_agent(uow, name="Marta")
        outcome = await route(runtime, email())
        await accept_all(runtime, agent)
        async with runtime.uow() as uow:
            with pytest.raises(Conflict):  # not before the conversation is completed
                await record_feedback(uow, outcome.conversation_id, csat=5, nps=10, comment=None)
        async with runtime.uow() as uow:
            await conversations.complete(
                uow, Principal(role=Role.AGENT, agent_id=agent.id), outcome.conversation_id
            )
        assert (await notify(runtime)).surveys == 1
        assert (await notify(runtime)).surveys == 0
        survey = [n for n in await notices(runtime, outcome.conversation_id) if n.kind == "survey"]
        assert len(survey) == 1
        assert "del 1 al 5" in survey[0].text
        async with runtime.uow() as uow:
            feedback, created = await record_feedback(
                uow, outcome.conversation_id, csat=4, nps=9, comment="Muy bien"
            )
        assert created
        assert feedback.agent_id == agent.id
        async with runtime.uow() as uow:
            _, again = await record_feedback(
                uow, outcome.conversation_id, csat=4, nps=9, comment="Muy bien"
            )
        assert not again  # a relayed retry changes nothing
        async with runtime.uow() as uow:
            with pytest.raises(Conflict):
                await record_feedback(uow, outcome.conversation_id, csat=1, nps=0, comment=None)

    async def test_no_survey_without_consent_or_for_held_messages(
        self, runtime: RouterRuntime
    ) -> None:
        supervisor = Principal(role=Role.SUPERVISOR)
        consented = await route(runtime, classified(conversation_key="a"))
        held = await route(runtime, email(spam=True))
        async with runtime.uow() as uow:
            customer = await uow.session.scalar(select(Customer))
            assert customer is not None
            customer.consent = {"surveys": False}
        async with runtime.uow() as uow:
            await conversations.complete(uow, supervisor, consented.conversation_id)
            await conversations.complete(uow, supervisor, held.conversation_id)
        assert (await notify(runtime)).surveys == 0


class TestStats:
    async def test_csat_average_and_nps(self, runtime: RouterRuntime) -> None:
        supervisor = Principal(role=Role.SUPERVISOR)
        answers = [(5, 10), (4, 9), (3, 7), (1, 2)]
        for index, (csat, nps) in enumerate(answers):
            outcome = await route(runtime, classified(conversation_key=f"s{index}"))
            async with runtime.uow() as uow:
                await conversations.complete(uow, supervisor, outcome.conversation_id)
                await record_feedback(
                    uow, outcome.conversation_id, csat=csat, nps=nps, comment=None
                )
        async with runtime.sessions() as session:
            stats = await feedback_stats(session)
            row = await session.scalar(select(Conversation).limit(1))
            assert row is not None
            per_queue = await feedback_stats(session, row.queue_id)
        assert stats.responses == 4
        assert stats.csat_average == 3.25
        assert stats.nps_score == 25.0  # 2 promoters, 1 detractor of 4
        assert per_queue.responses == 4


class TestTemplates:
    def test_an_override_file_replaces_entries_and_keeps_the_rest(self, tmp_path: Path) -> None:
        override = tmp_path / "templates.yaml"
        override.write_text(
            "acknowledgement:\n  whatsapp:\n    es: '¡Recibido! Ref. {reference}, {brand}.'\n",
            encoding="utf-8",
        )
        templates = Templates.load(override)
        custom, _ = templates.find("acknowledgement", "whatsapp", "es")
        default, _ = templates.find("acknowledgement", "sms", "es")
        assert custom.text == "¡Recibido! Ref. {reference}, {brand}."
        assert default.text.startswith("Gracias por escribir")

    def test_unknown_placeholders_fail_at_load(self, tmp_path: Path) -> None:
        override = tmp_path / "templates.yaml"
        override.write_text("survey:\n  default:\n    en: 'Hi {nombre}'\n", encoding="utf-8")
        with pytest.raises(TemplateError, match="nombre"):
            Templates.load(override)

    def test_dates_read_naturally(self) -> None:
        moment = datetime(2026, 11, 23, 9, 15, tzinfo=UTC)
        assert format_due(moment, "es", ZONE) == "lunes 23 de noviembre a las 10:15 (CET)"
        assert format_due(moment, "en", ZONE) == "Monday 23 November at 10:15 (CET)"
