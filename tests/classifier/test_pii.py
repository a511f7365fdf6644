from __future__ import annotations

import random

import pytest

from omniroute.classifier import pii
from omniroute.classifier.pii import PiiRedactor, dni_valid, iban_valid, nie_valid
from omniroute.shared.pii import luhn_valid

redact = PiiRedactor()


class TestCardNumbers:
    @pytest.mark.parametrize(
        "number",
        ["4111111111111111", "4111 1111 1111 1111", "4111-1111-1111-1111", "5500 0000-0000 0004"],
    )
    def test_luhn_valid_numbers_are_masked_however_grouped(self, number: str) -> None:
        result = redact(f"Mi tarjeta es {number}, cobrad de ahí")
        assert number not in result.text
        assert "[CARD]" in result.text
        assert "card_number" in result.kinds

    def test_a_number_failing_luhn_is_left_alone(self) -> None:
        result = redact("Order 4111 1111 1111 1112 is late")
        assert "4111 1111 1111 1112" in result.text
        assert "card_number" not in result.kinds

    def test_luhn_check_agrees_with_the_textbook_definition(self) -> None:
        def textbook(digits: str) -> bool:
            doubled = [int(d) * (2 if i % 2 else 1) for i, d in enumerate(reversed(digits))]
            return sum(value - 9 if value > 9 else value for value in doubled) % 10 == 0

        rng = random.Random(11)
        for _ in range(20_000):
            digits = "".join(rng.choice("0123456789") for _ in range(rng.randint(1, 19)))
            assert luhn_valid(digits) is textbook(digits), digits


class TestCvv:
    @pytest.mark.parametrize(
        "text",
        [
            "card 4111 1111 1111 1111 cvv 123",
            "tarjeta 4111111111111111 código de seguridad: 987",
            "my security code is 4321",
            "tarjeta 4111-1111-1111-1111 caduca 04/27 y detrás pone 123",
        ],
    )
    def test_codes_next_to_card_talk_are_masked(self, text: str) -> None:
        result = redact(text)
        assert "[CVV]" in result.text
        assert "cvv" in result.kinds
        for code in ("123", "987", "4321"):
            assert f" {code}" not in result.text

    def test_numbers_without_card_talk_are_not_cvvs(self) -> None:
        result = redact("Tengo 123 paquetes pendientes")
        assert result.text == "Tengo 123 paquetes pendientes"
        assert result.kinds == []


class TestIban:
    def test_valid_iban_grouped_or_not_is_masked(self) -> None:
        for iban in ("ES91 2100 0418 4502 0005 1332", "GB82WEST12345698765432"):
            result = redact(f"Devolvedlo a {iban} por favor")
            assert iban not in result.text
            assert "[IBAN]" in result.text
            assert result.kinds == ["iban"]

    def test_checksum_rejects_a_typo(self) -> None:
        assert iban_valid("ES9121000418450200051332")
        assert not iban_valid("ES9121000418450200051333")


class TestSpanishIds:
    def test_dni_with_right_letter_is_masked(self) -> None:
        result = redact("Mi DNI es 12345678Z")
        assert result.text == "Mi DNI es [DNI]"
        assert result.kinds == ["dni"]

    def test_dni_with_wrong_letter_is_not_a_dni(self) -> None:
        assert not dni_valid("12345678", "A")
        assert "dni" not in redact("ref 12345678A").kinds

    def test_nie_check_letter(self) -> None:
        assert nie_valid("X", "1234567", "L")
        result = redact("NIE X-1234567-L")
        assert result.kinds == ["nie"]
        assert "1234567" not in result.text


class TestEmailAndPhone:
    def test_email_addresses(self) -> None:
        result = redact("write to ana.garcia+shop@example.co.uk today")
        assert result.text == "write to [EMAIL] today"
        assert result.kinds == ["email"]

    @pytest.mark.parametrize(
        "phone", ["+34 612 345 678", "612345678", "+44 20 7946 0958", "(415) 555-0132"]
    )
    def test_phone_numbers(self, phone: str) -> None:
        result = redact(f"Llamadme al {phone} por la tarde")
        assert phone not in result.text
        assert result.kinds == ["phone"]

    def test_order_numbers_and_dates_are_not_phones(self) -> None:
        result = redact("Pedido 45821 del 12/03/2025, total 129,99 €")
        assert result.kinds == []


class TestKeepingKinds:
    def test_cards_are_masked_even_when_only_other_kinds_are_kept(self) -> None:
        keep_contacts = PiiRedactor(redact=[])
        result = keep_contacts("call +34 612 345 678, card 4111 1111 1111 1111")
        assert "+34 612 345 678" in result.text
        assert "[CARD]" in result.text
        assert set(result.kinds) == {"phone", "card_number"}


class TestLatin1Path:
    """Latin-1 texts are read with 0-9 for digits and marked byte copies; any other text with
    the Unicode patterns. The same content must be masked the same way on both paths."""

    PIECES = (
        "4111 1111 1111 1111",
        "5500-0000-0000-0004",
        "4111111111111112",
        "cvv",
        "CVC:",
        "código de seguridad",
        "número de atrás",
        "tres dígitos",
        "Security Code",
        "caduca",
        "exp",
        "04/27",
        "ES91 2100 0418 4502 0005 1332",
        "612 345 678",
        "+34 612345678",
        "(555) 123-4567",
        "0044 20 7946 0958",
        "12345678Z",
        "X1234567L",
        "ana@example.com",
        "123",
        "4567",
        "\n",
        "é",
        "Ñ",
        "twice",
        "-",
        "/",
        ".",
    )

    def test_both_paths_mask_alike(self) -> None:
        rng = random.Random(11)
        for _ in range(3000):
            parts = [rng.choice(self.PIECES) for _ in range(rng.randint(1, 10))]
            text = rng.choice(("", " ", "  ")).join(parts)
            latin1 = redact(text)
            unicode_path = redact(text + " €")  # the euro sign is not Latin-1
            assert unicode_path.text.endswith(" €")
            assert (latin1.text, latin1.kinds) == (unicode_path.text[:-2], unicode_path.kinds)

    def test_number_runs_are_the_patterns_runs(self) -> None:
        rng = random.Random(12)
        alphabet = "0123456789 ().+/-abéZ\n€٣"
        for _ in range(20_000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 25)))
            expected = [match.span() for match in pii._NUMBER_RUN.finditer(text)]
            if text.isascii() or all(ord(ch) < 256 for ch in text):
                marked = text.encode("latin-1").translate(pii._RUN_MARKS)
                assert [m.span() for m in pii._MARKED_RUN.finditer(marked)] == expected
                assert pii._number_runs(text, latin1=True) == expected, repr(text)
            assert pii._number_runs(text, latin1=False) == expected, repr(text)
