"""E-mail threading: reply chains by headers, the subject's reference when headers are lost."""

from __future__ import annotations

import uuid

import pytest

from omniroute.gateway.channels.email import parse_email
from omniroute.shared.events import conversation_id_for
from omniroute.shared.reference import find_reference, reference_for
from tests.gateway.conftest import Gateway


def mail(headers: str, body: str) -> bytes:
    return (headers.strip() + "\n\n" + body).replace("\n", "\r\n").encode()


ORIGINAL = mail(
    """
From: Ana <ana@example.com>
To: support@omniroute.test
Subject: Router keeps rebooting
Message-ID: <m1@example.com>
""",
    "My router reboots every hour since Monday.",
)
OUR_ACK = mail(
    """
From: Support <support@omniroute.test>
To: ana@example.com
Subject: Re: [#ABCD-2345] Router keeps rebooting
Message-ID: <ack1@omniroute.test>
In-Reply-To: <m1@example.com>
References: <m1@example.com>
""",
    "We received your message.",
)
REPLY = mail(
    """
From: Ana <ana@example.com>
Subject: Re: [#ABCD-2345] Router keeps rebooting
Message-ID: <m2@example.com>
In-Reply-To: <ack1@omniroute.test>
References: <m1@example.com> <ack1@omniroute.test>
""",
    "It happened again this morning.\n\nOn Tue, 3 Sep 2024 at 10:00, Support"
    " <support@omniroute.test> wrote:\n> We received your message.",
)
SECOND_REPLY = mail(
    """
From: Ana <ana@example.com>
Subject: Re: [#ABCD-2345] Router keeps rebooting
Message-ID: <m3@example.com>
In-Reply-To: <m2@example.com>
References: <m1@example.com> <ack1@omniroute.test> <m2@example.com>
""",
    "Any news?",
)
HEADERS_LOST = mail(
    """
From: Ana <ana@example.com>
Subject: RE: [#ABCD-2345] Router keeps rebooting
Message-ID: <m4@webmail.example.com>
""",
    "Writing from my webmail, still broken.",
)


class TestReplyChain:
    def test_every_message_of_the_chain_is_one_conversation(self) -> None:
        contacts = [parse_email(raw) for raw in (ORIGINAL, REPLY, SECOND_REPLY)]
        assert len({contact.conversation_id for contact in contacts}) == 1
        assert len({contact.contact_id for contact in contacts}) == 3
        assert contacts[0].conversation_id == conversation_id_for("email", "<m1@example.com>")

    def test_reply_text_is_only_the_new_words(self) -> None:
        assert parse_email(REPLY).text == "It happened again this morning."

    def test_in_reply_to_alone_threads(self) -> None:
        only_parent = REPLY.replace(b"References: <m1@example.com> <ack1@omniroute.test>\r\n", b"")
        contact = parse_email(only_parent)
        assert contact.conversation_key == "<ack1@omniroute.test>"

    def test_headers_present_means_no_reference_lookup(self) -> None:
        assert "reference" not in parse_email(REPLY).metadata


class TestSubjectReference:
    def test_lost_headers_fall_back_to_the_reference(self) -> None:
        contact = parse_email(HEADERS_LOST)
        assert contact.metadata["reference"] == "ABCD-2345"

    def test_no_reference_no_metadata(self) -> None:
        assert "reference" not in parse_email(ORIGINAL).metadata

    async def test_over_http(self, gateway: Gateway) -> None:
        response = await gateway.client.post(
            "/v1/channels/email",
            content=HEADERS_LOST,
            headers={**gateway.auth(), "Content-Type": "message/rfc822"},
        )
        assert response.status_code == 202
        assert gateway.published[0].metadata["reference"] == "ABCD-2345"


class TestReferenceHelpers:
    def test_format(self) -> None:
        reference = reference_for(uuid.UUID("6f1c9e0a-3b1d-5c4e-9a57-0e1d2c3b4a59"))
        assert len(reference) == 9
        assert reference[4] == "-"
        assert reference == reference.upper()

    def test_deterministic_and_distinct(self) -> None:
        one, two = uuid.uuid4(), uuid.uuid4()
        assert reference_for(one) == reference_for(one)
        assert reference_for(one) != reference_for(two)

    def test_round_trip_through_a_subject(self) -> None:
        reference = reference_for(uuid.uuid4())
        assert find_reference(f"Re: [#{reference}] Mi pedido") == reference
        assert find_reference(f"RE: RE: [# {reference.lower()} ] x") == reference

    @pytest.mark.parametrize(
        "subject", ["Order #1234", "[ABCD-2345]", "[#ABCD-234]", "", "[#ABC1-2345]"]
    )
    def test_no_reference(self, subject: str) -> None:
        assert find_reference(subject) is None
