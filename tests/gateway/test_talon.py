"""The person's own words, measured on talon's fixtures (mailgun/talon's expected texts).

Quotation fixtures: the plain replies expect the text of their `*_reply_text` file (or "Hello"),
the HTML replies "Hi. I am fine. Thanks, Alex" compared without whitespace, as talon's own tests
do. Signature fixtures: `*_body` minus `*_signature` (talon's `#sig#` annotations removed).
"""

from __future__ import annotations

import re
from email.message import Message
from pathlib import Path

import pytest

from omniroute.gateway.channels.email import (
    _body_text,
    _decode_text,
    html_to_text,
    parse_email,
    parse_message,
)
from omniroute.gateway.channels.replies import cut_html_quote, latest_reply, strip_signature
from tests.fixtures.data import SHARED_DATA

TALON = SHARED_DATA / "email/talon"
WHITESPACE = re.compile(r"\s+")
HTML_EXPECTED = "Hi. I am fine.\n\nThanks,\nAlex"


def names(folder: str, pattern: str) -> list[str]:
    return sorted(path.name for path in (TALON / folder).glob(pattern))


def plain_part(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain":
            return _decode_text(part)
    return _body_text(message)


def html_reply(html: str, subject: str | None = None) -> str:
    text = html_to_text(cut_html_quote(html, subject=subject))
    return latest_reply(text, subject=subject)[0]


def squash(text: str) -> str:
    return WHITESPACE.sub("", text)


class TestQuotations:
    @pytest.mark.parametrize("name", names("standard_replies", "*.eml"))
    def test_plain_replies(self, shared_data: Path, name: str) -> None:
        path = shared_data / "email/talon/standard_replies" / name
        message, _ = parse_message(path.read_bytes())
        expected_file = path.with_name(path.stem + "_reply_text")
        expected = expected_file.read_text().strip() if expected_file.exists() else "Hello"
        got, _ = latest_reply(plain_part(message).replace("\r\n", "\n"), subject=message["subject"])
        assert got.strip() == expected

    @pytest.mark.parametrize("name", names("html_replies", "*.html"))
    def test_html_replies(self, shared_data: Path, name: str) -> None:
        html = (shared_data / "email/talon/html_replies" / name).read_text(errors="replace")
        assert squash(html_reply(html)) == squash(HTML_EXPECTED)

    def test_outlook_mac_source_section(self, shared_data: Path) -> None:
        html = (shared_data / "email/talon/OLK_SRC_BODY_SECTION.html").read_text()
        assert squash(html_reply(html)) == "Reply"

    def test_reply_separated_by_a_rule(self, shared_data: Path) -> None:
        html = (shared_data / "email/talon/reply-separated-by-hr.html").read_text()
        assert squash(html_reply(html)) == "HithereBob"

    def test_quotation_sharing_a_block(self, shared_data: Path) -> None:
        raw = (shared_data / "email/talon/reply-quotations-share-block.eml").read_bytes()
        message, _ = parse_message(raw)
        got, _ = latest_reply(plain_part(message))
        assert got.strip()
        assert "From" not in got


class TestSignatures:
    @pytest.mark.parametrize(
        "stem",
        [name.removesuffix("_body") for name in names("signature/emails/stripped", "*_body")],
    )
    def test_stripped(self, shared_data: Path, stem: str) -> None:
        folder = shared_data / "email/talon/signature/emails/stripped"
        body = (folder / f"{stem}_body").read_text().replace("#sig#", "").strip()
        signature = (folder / f"{stem}_signature").read_text().replace("#sig#", "").strip()
        sender = (folder / f"{stem}_sender").read_text().strip()
        name, email = (None, sender) if "@" in sender else (sender or None, None)
        expected = body[: len(body) - len(signature)].strip() if signature else body
        got, removed = strip_signature(body, sender_name=name, sender_email=email)
        assert got.strip() == expected
        assert removed == bool(signature)

    def test_russian_sign_off(self, shared_data: Path) -> None:
        text = (shared_data / "email/talon/signature/emails/P/unicode_msg").read_text()
        body = text.split("\n", 1)[1].strip()
        got, removed = strip_signature(body, sender_name="Сергей Обухов")
        assert removed
        assert got.endswith("ответьте на это письмо.")


class TestContactText:
    @pytest.mark.parametrize("name", names("standard_replies", "*.eml"))
    def test_only_the_new_words_reach_the_contact(self, shared_data: Path, name: str) -> None:
        contact = parse_email((shared_data / "email/talon/standard_replies" / name).read_bytes())
        assert contact.text.strip() == "Hello"

    @pytest.mark.parametrize("text", ["Thanks!", "Gracias,\nAna", "-- \nAna"])
    def test_a_message_that_is_only_a_sign_off_is_kept(self, text: str) -> None:
        assert strip_signature(text, sender_name="Ana") == (text, False)

    def test_questions_after_a_closing_are_kept(self) -> None:
        text = "My router is broken.\n\nThanks,\nAna\nCan you call me back today?"
        assert strip_signature(text, sender_name="Ana")[0] == text

    def test_an_announced_block_is_kept(self) -> None:
        text = "Please change my address to:\n\nAna García\nCalle Mayor 5\n28013 Madrid"
        assert strip_signature(text, sender_name="Ana García")[0] == text

    def test_a_postscript_is_kept(self) -> None:
        text = "My order has not arrived.\n\nBest,\nAna\n\nP.S. The order number is 12345"
        assert strip_signature(text, sender_name="Ana")[0] == text

    def test_a_closing_with_contact_details_is_cut(self) -> None:
        text = "My order has not arrived.\n\nThanks,\nAna García\nCalle Mayor 5\n+34 600 111 222"
        assert strip_signature(text, sender_name="Ana García") == (
            "My order has not arrived.",
            True,
        )
