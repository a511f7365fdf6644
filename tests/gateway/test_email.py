"""The e-mail adapter: real-world and pathological RFC 822 messages."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from omniroute.gateway.channels.email import (
    MAX_HEADER_CHARS,
    MAX_PARTS,
    EmailAdapter,
    decode_bytes,
    parse_email,
)
from omniroute.shared.errors import BadRequest, Unprocessable
from omniroute.shared.events import Channel, contact_id_for
from tests.gateway.conftest import delivery


def email_files(shared_data: Path) -> list[Path]:
    return sorted(path for path in (shared_data / "email").rglob("*") if path.is_file())


def message(headers: str, body: str = "Hello, I need help with my order.") -> bytes:
    return (
        (headers.strip() + "\r\n\r\n" + body).replace("\r\n", "\n").replace("\n", "\r\n").encode()
    )


PLAIN = """
From: "Ana García" <Ana.Garcia@Example.COM>
To: support@omniroute.test
Subject: Order 42
Message-ID: <msg-1@example.com>
Date: Tue, 07 May 2013 23:11:57 +0000
"""


class TestEveryFixture:
    def test_every_message_file_parses(self, shared_data: Path) -> None:
        files = email_files(shared_data)
        assert len(files) > 200
        for path in files:
            raw = path.read_bytes()
            if not raw.strip():
                with pytest.raises(BadRequest):
                    parse_email(raw)
                continue
            contact = parse_email(raw)
            assert contact.channel is Channel.EMAIL, path
            assert contact.external_id, path

    def test_adapter_returns_one_contact(self, shared_data: Path) -> None:
        raw = (shared_data / "email/talon/standard_replies/gmail.eml").read_bytes()
        contacts = EmailAdapter().parse(delivery(raw, "message/rfc822"))
        assert len(contacts) == 1


class TestPathologicalInput:
    def test_endless_nesting_is_cut_at_the_part_limit(self, shared_data: Path) -> None:
        contact = parse_email((shared_data / "email/flanker/enclosed-endless.eml").read_bytes())
        assert contact.metadata["mime_truncated"] == "true"
        assert contact.subject == "Wow"

    def test_hundreds_of_attachments_are_bounded(self, shared_data: Path) -> None:
        contact = parse_email(
            (shared_data / "email/php-mime-mail-parser/issue408.eml").read_bytes()
        )
        assert 0 < len(contact.attachments) <= 100

    def test_deeply_nested_html_parses(self, shared_data: Path) -> None:
        raw = (shared_data / "email/nodemailer-mailparser/htmllargecallstack.eml").read_bytes()
        contact = parse_email(raw)
        assert contact.subject == "Kill the HTML parser"

    def test_thousand_level_multipart_nesting(self) -> None:
        depth = 1000
        parts = [
            f"--b{i}\r\nContent-Type: multipart/mixed; boundary=b{i + 1}\r\n\r\n"
            for i in range(depth)
        ]
        body = "".join(parts) + f"--b{depth}\r\nContent-Type: text/plain\r\n\r\ndeep\r\n"
        raw = message(PLAIN + "Content-Type: multipart/mixed; boundary=b0", body)
        contact = parse_email(raw)
        assert contact.metadata["mime_truncated"] == "true"

    def test_many_tiny_parts_are_cut(self) -> None:
        body = "".join(f"--b\r\nContent-Type: text/plain\r\n\r\npart {i}\r\n" for i in range(5000))
        contact = parse_email(message(PLAIN + "Content-Type: multipart/mixed; boundary=b", body))
        assert contact.metadata["mime_truncated"] == "true"
        assert MAX_PARTS < 5000

    def test_huge_encoded_subject_is_cut_before_parsing(self) -> None:
        word = "=?utf-8?q?Die_hei=C3=9Fe_Zypernsonne?="
        subject = "\r\n ".join([word] * 20_000)
        contact = parse_email(message(PLAIN.replace("Subject: Order 42", f"Subject: {subject}")))
        assert contact.subject is not None
        assert contact.subject.startswith("Die heiße Zypernsonne")
        assert len(contact.subject) <= 2000
        assert len(subject) > MAX_HEADER_CHARS

    def test_binary_garbage_does_not_raise(self) -> None:
        contact = parse_email(bytes(range(256)) * 50)
        assert contact.channel is Channel.EMAIL


class TestHeaders:
    def test_rfc2047_display_name(self, shared_data: Path) -> None:
        contact = parse_email((shared_data / "email/flanker/encoded-header.eml").read_bytes())
        assert contact.customer.name == "Foo, Bar"
        assert contact.customer.email == "foo.bar@example.com"

    def test_rfc6532_utf8_headers(self, shared_data: Path) -> None:
        contact = parse_email(
            (shared_data / "email/ruby-mail/rfc6532/utf8_headers.eml").read_bytes()
        )
        assert contact.customer.email == "jdöe@mächine.example"
        assert contact.subject == "Säying Hello"

    def test_encoded_word_in_charset_python_does_not_know(self, shared_data: Path) -> None:
        contact = parse_email(
            (shared_data / "email/php-mime-mail-parser/issue149.eml").read_bytes()
        )
        assert contact.subject is not None
        assert contact.subject.startswith("מענה")

    def test_raw_latin1_header_does_not_break_the_contact(self, shared_data: Path) -> None:
        contact = parse_email((shared_data / "email/flanker/from-encoding.eml").read_bytes())
        assert contact.customer.email == "ingo@blank.pages.de"
        assert contact.customer.name is not None
        assert "\udcfc" not in contact.customer.name

    def test_sender_is_lower_cased_with_display_name(self) -> None:
        contact = parse_email(message(PLAIN))
        assert contact.customer.email == "ana.garcia@example.com"
        assert contact.customer.name == "Ana García"
        assert contact.customer.provider_ids == {"email": "ana.garcia@example.com"}

    def test_date_becomes_occurred_at(self) -> None:
        contact = parse_email(message(PLAIN))
        assert contact.occurred_at is not None
        assert contact.occurred_at.isoformat() == "2013-05-07T23:11:57+00:00"

    def test_unparseable_date_is_dropped(self) -> None:
        contact = parse_email(message(PLAIN.replace("Tue, 07 May 2013 23:11:57 +0000", "soon")))
        assert contact.occurred_at is None


class TestCharsets:
    @pytest.mark.parametrize(
        ("charset", "codec"),
        [("x-mac-cyrillic", "mac_cyrillic"), ("ks_c_5601-1987", "cp949"), ("gb2312", "gb18030")],
    )
    def test_charsets_python_names_differently(self, charset: str, codec: str) -> None:
        text = {"mac_cyrillic": "Привет, мир", "cp949": "안녕하세요", "gb18030": "你好"}[codec]
        headers = (
            PLAIN
            + f'Content-Type: text/plain; charset="{charset}"\nContent-Transfer-Encoding: 8bit'
        )
        raw = message(headers, "").replace(b"\r\n\r\n", b"\r\n\r\n" + text.encode(codec), 1)
        assert parse_email(raw).text == text

    def test_unknown_8bit_falls_back_to_utf8(self) -> None:
        assert decode_bytes("¿Dónde está?".encode(), "unknown-8bit") == "¿Dónde está?"

    def test_undeclared_latin1_falls_back_gracefully(self) -> None:
        assert decode_bytes("año".encode("latin-1"), None) == "año"

    def test_korean_fixture(self, shared_data: Path) -> None:
        raw = (shared_data / "email/ruby-mail/multi_charset/ks_c_5601-1987.eml").read_bytes()
        contact = parse_email(raw)
        assert contact.text
        assert all("\uac00" <= char <= "\ud7a3" for char in contact.text)

    def test_iso_2022_jp_fixture(self, shared_data: Path) -> None:
        raw = (shared_data / "email/ruby-mail/multi_charset/japanese_iso_2022.eml").read_bytes()
        contact = parse_email(raw)
        assert contact.subject == "まみむめも"
        assert contact.text == "すみません。"


class TestBody:
    def test_plain_part_is_preferred_over_html(self) -> None:
        body = (
            "--b\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nPlain words\r\n"
            "--b\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>HTML words</p>\r\n--b--\r\n"
        )
        contact = parse_email(
            message(PLAIN + "Content-Type: multipart/alternative; boundary=b", body)
        )
        assert contact.text == "Plain words"

    def test_html_only_is_turned_into_text(self) -> None:
        html = (
            "<html><body><p>Hola,</p><p>mi pedido <b>no llegó</b></p>"
            "<script>x()</script></body></html>"
        )
        contact = parse_email(message(PLAIN + "Content-Type: text/html; charset=utf-8", html))
        assert "Hola," in contact.text
        assert "mi pedido no llegó" in contact.text
        assert "<" not in contact.text

    def test_forwarded_message_text_is_not_the_customer_text(self, shared_data: Path) -> None:
        raw = (
            shared_data / "email/ruby-mail/attachment_emails/attachment_message_rfc822.eml"
        ).read_bytes()
        contact = parse_email(raw)
        assert contact.text == "This is the first part."


class TestAttachments:
    def test_rfc2231_filename(self, shared_data: Path) -> None:
        raw = (
            shared_data / "email/ruby-mail/attachment_emails/attachment_nonascii_filename.eml"
        ).read_bytes()
        [attachment] = parse_email(raw).attachments
        assert attachment.filename == "ciële.txt"

    def test_rfc2047_filename(self, shared_data: Path) -> None:
        path = "email/ruby-mail/attachment_emails/attachment_with_base64_encoded_name.eml"
        [attachment] = parse_email((shared_data / path).read_bytes()).attachments
        assert attachment.filename == "This is a test.pdf"
        assert attachment.content_type == "application/pdf"
        assert attachment.size == 399

    def test_ten_attachments_with_sizes(self, shared_data: Path) -> None:
        contact = parse_email((shared_data / "email/php-mime-mail-parser/m0028.eml").read_bytes())
        assert len(contact.attachments) == 10
        assert all(attachment.size == 13 for attachment in contact.attachments)
        assert contact.text == "This is the plain text content of the email"

    def test_forwarded_message_is_listed(self, shared_data: Path) -> None:
        raw = (
            shared_data / "email/ruby-mail/attachment_emails/attachment_message_rfc822.eml"
        ).read_bytes()
        kinds = [attachment.content_type for attachment in parse_email(raw).attachments]
        assert "message/rfc822" in kinds


class TestThreading:
    def test_first_reference_is_the_conversation(self, shared_data: Path) -> None:
        reply = parse_email((shared_data / "email/ruby-mail/rfc2822/example07.eml").read_bytes())
        assert reply.external_id == "<abcd.1234@local.machine.tld>"
        assert reply.conversation_key == "<1234@local.machine.example>"

    def test_a_thread_is_one_conversation(self, shared_data: Path) -> None:
        root = parse_email((shared_data / "email/ruby-mail/rfc2822/example05.eml").read_bytes())
        first = parse_email((shared_data / "email/ruby-mail/rfc2822/example06.eml").read_bytes())
        second = parse_email((shared_data / "email/ruby-mail/rfc2822/example07.eml").read_bytes())
        assert root.external_id == "<1234@local.machine.example>"
        assert root.conversation_id == first.conversation_id == second.conversation_id

    def test_in_reply_to_without_references(self) -> None:
        contact = parse_email(message(PLAIN + "In-Reply-To: <parent@example.com>"))
        assert contact.conversation_key == "<parent@example.com>"

    def test_own_message_id_starts_a_conversation(self) -> None:
        contact = parse_email(message(PLAIN))
        assert contact.external_id == "<msg-1@example.com>"
        assert contact.conversation_key == "<msg-1@example.com>"
        assert contact.contact_id == contact_id_for("email", "<msg-1@example.com>")

    def test_missing_message_id_uses_a_digest_of_the_bytes(self) -> None:
        raw = message(PLAIN.replace("Message-ID: <msg-1@example.com>\n", ""))
        contact = parse_email(raw)
        assert contact.external_id == "sha256:" + hashlib.sha256(raw).hexdigest()
        assert parse_email(raw).contact_id == contact.contact_id


class TestAutoReplies:
    def test_chatwoot_autoreply_is_flagged(self, shared_data: Path) -> None:
        contact = parse_email(
            (shared_data / "email/chatwoot/non_utf_encoded_mail.eml").read_bytes()
        )
        assert contact.metadata["auto_submitted"] == "auto-replied"

    @pytest.mark.parametrize(
        ("header", "flag"),
        [
            ("Auto-Submitted: auto-replied", "auto-replied"),
            ("Auto-Submitted: auto-generated", "auto-generated"),
            ("X-Autoreply: yes", "auto-replied"),
            ("Precedence: bulk", "bulk"),
            ("Precedence: junk", "junk"),
            ("Precedence: auto_reply", "auto-replied"),
            ("X-Autorespond: vacation", "auto-replied"),
            ("X-Autoresponder: yes", "auto-replied"),
            ("X-Auto-Reply: yes", "auto-replied"),
            ("X-Autogenerated: Reply", "auto-replied"),
            ("X-Mail-Autoreply: yes", "auto-replied"),
            ("X-FC-MachineGenerated: true", "auto-replied"),
        ],
    )
    def test_headers(self, header: str, flag: str) -> None:
        assert parse_email(message(PLAIN + header)).metadata["auto_submitted"] == flag

    @pytest.mark.parametrize(
        "subject",
        [
            "Out of Office: Order 42",
            "Automatic reply: Order 42",
            "Respuesta automática: Pedido 42",
            "Fuera de la oficina",
            "Auto-Reply",
            "Out of Office Reply: Order 42",
            "Respuesta automática",
            "Réponse automatique : Commande 42",
            "Resposta automática: Pedido 42",
            "Risposta automatica: Ordine 42",
            "Automatische Antwort: Bestellung 42",
            "Abwesenheitsnotiz: Bestellung 42",
            "AUTO: Ana is out of the office",
        ],
    )
    def test_out_of_office_subjects(self, subject: str) -> None:
        raw = message(PLAIN.replace("Subject: Order 42", f"Subject: {subject}"))
        assert parse_email(raw).metadata["auto_submitted"] == "auto-replied"

    @pytest.mark.parametrize(
        "extra",
        ["Auto-Submitted: no", "Precedence: first-class", "X-Autoreply: no", "Precedence: list"],
    )
    def test_people_are_not_flagged(self, extra: str) -> None:
        assert "auto_submitted" not in parse_email(message(PLAIN + extra)).metadata

    @pytest.mark.parametrize(
        "subject",
        [
            "Re: your out of office hours",
            "Out of office hours support?",
            "Ausencia de respuesta",
            "On vacation and my card was blocked",
            "De vacaciones sin servicio",
            "Auto: ruido en el motor",
            "Respuesta automática incorrecta de su bot",
        ],
    )
    def test_customers_writing_about_absence_are_not_flagged(self, subject: str) -> None:
        raw = message(PLAIN.replace("Subject: Order 42", f"Subject: {subject}"))
        assert "auto_submitted" not in parse_email(raw).metadata


class TestBounces:
    def test_every_dsn_fixture_is_a_bounce(self, shared_data: Path) -> None:
        bounces = sorted((shared_data / "email/flanker/bounce").glob("*.eml"))
        bounces += sorted((shared_data / "email/ruby-mail/multipart_report_emails").glob("*.eml"))
        assert len(bounces) >= 10
        for path in bounces:
            assert parse_email(path.read_bytes()).metadata.get("auto_submitted") == "bounce", path

    def test_arf_complaints_are_flagged(self, shared_data: Path) -> None:
        for path in sorted((shared_data / "email/flanker/complaints").glob("*.eml")):
            assert parse_email(path.read_bytes()).metadata["auto_submitted"] == "feedback-report"

    def test_read_receipt_is_flagged(self, shared_data: Path) -> None:
        raw = (shared_data / "email/flanker/disposition-notification.eml").read_bytes()
        assert parse_email(raw).metadata["auto_submitted"] == "read-receipt"


class TestInboundParseForms:
    FORM = "multipart/form-data; boundary=xYzZY"

    def parse_form(self, shared_data: Path, name: str) -> list:
        body = (shared_data / "webhooks/sendgrid-inbound-parse" / name).read_bytes()
        return EmailAdapter().parse(delivery(body, self.FORM))

    def test_sendgrid_raw_mode(self, shared_data: Path) -> None:
        [contact] = self.parse_form(shared_data, "raw_data.txt")
        assert contact.customer.email == "test@example.com"
        assert contact.subject == "Inbound Parse Test Raw Data"
        assert contact.text == "Hello Twilio SendGrid!"

    def test_sendgrid_raw_mode_with_attachment(self, shared_data: Path) -> None:
        [contact] = self.parse_form(shared_data, "raw_data_with_attachments.txt")
        [attachment] = contact.attachments
        assert attachment.filename == "SendGrid.jpg"
        assert attachment.content_type == "image/jpeg"

    def test_sendgrid_parsed_mode(self, shared_data: Path) -> None:
        [contact] = self.parse_form(shared_data, "default_data.txt")
        assert contact.customer.email == "test@example.com"
        assert contact.customer.name == "Example User"
        assert contact.subject == "Inbound Parse Test Data"
        assert contact.text == "Hello Twilio SendGrid!"

    def test_a_form_without_a_message_is_refused(self) -> None:
        body = b'--b\r\nContent-Disposition: form-data; name="x"\r\n\r\n1\r\n--b--\r\n'
        with pytest.raises(Unprocessable):
            EmailAdapter().parse(delivery(body, "multipart/form-data; boundary=b"))

    def test_wrong_boundary_is_a_bad_request(self, shared_data: Path) -> None:
        body = (shared_data / "webhooks/sendgrid-inbound-parse/raw_data.txt").read_bytes()
        with pytest.raises((BadRequest, Unprocessable)):
            EmailAdapter().parse(delivery(body, "multipart/form-data; boundary=nope"))
