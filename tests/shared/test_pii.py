"""Card redaction that the gateway applies before anything is published."""

from __future__ import annotations

import random

import pytest

from omniroute.shared.pii import _redact, redact_cards


class TestCardRedaction:
    @pytest.mark.parametrize(
        "text",
        [
            "mi tarjeta es 4111 1111 1111 1111, gracias",
            "card 4111-1111-1111-1111 please",
            "pan:4111111111111111",
            "amex 3782 822463 10005",
        ],
    )
    def test_luhn_valid_cards_are_masked(self, text: str) -> None:
        redacted, kinds = redact_cards(text)
        assert "[CARD]" in redacted
        assert kinds == ["card_number"]
        assert not any(group in redacted for group in ("4111", "3782"))

    def test_numbers_failing_luhn_are_kept(self) -> None:
        text = "pedido 4111 1111 1111 1112 y teléfono 600 111 222"
        assert redact_cards(text) == (text, [])

    def test_cvv_next_to_card_words_is_masked(self) -> None:
        redacted, kinds = redact_cards("el CVV: 123 y el código de seguridad es 9876")
        assert redacted == "el CVV: [CVV] y el código de seguridad es [CVV]"
        assert kinds == ["cvv"]

    def test_text_without_digits_is_returned_unchanged(self) -> None:
        assert redact_cards("hola, ¿dónde está mi pedido?") == ("hola, ¿dónde está mi pedido?", [])

    @pytest.mark.parametrize(
        "text",
        [
            "cıd: 123",  # dotless i: IGNORECASE matches it to "i", str.lower() keeps it
            "CİD 1234",  # dotted capital I
            "ſecurity code 321",  # long s
            "CÓDIGO DE SEGURIDAD: 456",
        ],
    )
    def test_cvv_labels_in_odd_cases_are_masked(self, text: str) -> None:
        redacted, kinds = redact_cards(text)
        assert redacted.endswith("[CVV]")
        assert kinds == ["cvv"]

    def test_a_card_right_after_a_dash_or_digit_is_not_a_candidate(self) -> None:
        # The lookbehind sits after the first digit; it must still see what precedes it.
        assert redact_cards("ref-4111111111111111") == ("ref-4111111111111111", [])
        assert redact_cards("ref:4111111111111111") == ("ref:[CARD]", ["card_number"])
        assert redact_cards("4111111111111111") == ("[CARD]", ["card_number"])


class TestTheCheapCheckBeforeTheRegexes:
    """redact_cards runs the card and CVV regexes only where its byte count says they may
    match; on any text it must answer what running both regexes answers."""

    PIECES = (
        "4111 1111 1111 1111",
        "4111-1111-1111-1111",
        "5500000000000004",
        "4222222222222",  # 13 digits
        "3782 822463 10005",
        "123",
        "9876",
        "0",
        " ",
        "-",
        ":",
        "cvv",
        "CVC2",
        "Cid",
        "código de seguridad es ",
        "CÓDIGO",
        "security code",
        "cıd",
        "CİD ",
        "ſecurity",
        "٤١١١",  # Arabic-Indic digits: \d matches them, the byte count does not see them
        "pedido",
        "ñandú",
        "🙂",
        "\u00a0",
    )

    def test_it_agrees_with_running_both_regexes_on_random_texts(self) -> None:
        rng = random.Random(20261207)
        for _ in range(20_000):
            text = "".join(rng.choice(self.PIECES) for _ in range(rng.randint(0, 12)))
            assert redact_cards(text) == _redact(text, cards=True, cvvs=True), text

    @pytest.mark.parametrize(
        "text",
        [
            "pedido 12345 de ayer",  # digits, but too few for a card and no CVV label
            "mi código es 12",  # a label, but too few digits for a CVV
            "tarjeta 4111 1111 1111 1111 y el cvv 123",
            "٤١١١ ٤١١١ ٤١١١ ٤١١١",
        ],
    )
    def test_the_edges_of_the_check(self, text: str) -> None:
        assert redact_cards(text) == _redact(text, cards=True, cvvs=True)
