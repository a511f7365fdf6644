from __future__ import annotations

import random

import pytest

from omniroute.classifier.pii import MASKS, PiiRedactor
from omniroute.classifier.sentiment import (
    _CAPS_WORD,
    _CAPS_WORD_MARKS,
    _LEXICON,
    _REPEATED_MARKS,
    _REPEATED_PUNCT,
    _UPPER,
    PHRASES,
    SentimentAnalysis,
    _marks,
    analyse,
)
from omniroute.classifier.text import fold, words
from omniroute.shared.events import Sentiment


def feel(text: str) -> SentimentAnalysis:
    return analyse(text, words(fold(text)))


class TestPolarity:
    @pytest.mark.parametrize(
        "text",
        ["Muchas gracias, todo perfecto y muy rápido", "Thanks a lot, great service, love it"],
    )
    def test_positive(self, text: str) -> None:
        assert feel(text).label is Sentiment.POSITIVE
        assert feel(text).score > 0

    @pytest.mark.parametrize(
        "text",
        [
            "El pedido ha llegado roto, es un desastre",
            "The parcel arrived damaged, terrible experience",
        ],
    )
    def test_negative(self, text: str) -> None:
        assert feel(text).label is Sentiment.NEGATIVE
        assert feel(text).score < 0

    @pytest.mark.parametrize(
        "text", ["¿A qué hora abre la tienda?", "What time does the store open?"]
    )
    def test_neutral(self, text: str) -> None:
        assert feel(text).label is Sentiment.NEUTRAL


class TestCourtesy:
    @pytest.mark.parametrize(
        "text",
        [
            "¿Me podéis mandar la factura de marzo? Gracias",
            "Could you send me the March invoice? Thanks",
        ],
    )
    def test_a_polite_request_is_neutral(self, text: str) -> None:
        assert feel(text).label is Sentiment.NEUTRAL

    def test_heartfelt_thanks_are_positive(self) -> None:
        assert feel("Muchas gracias por todo").label is Sentiment.POSITIVE
        assert feel("Thank you so much for your help").label is Sentiment.POSITIVE


class TestNegation:
    @pytest.mark.parametrize(
        "text", ["No estoy contento con el servicio", "I am not happy with the service"]
    )
    def test_negated_praise_is_negative(self, text: str) -> None:
        assert feel(text).label is Sentiment.NEGATIVE

    def test_negated_problem_is_not_negative(self) -> None:
        assert feel("No es ningún problema, gracias").label is not Sentiment.NEGATIVE


class TestAnger:
    @pytest.mark.parametrize(
        "text", ["Sois unos ladrones y unos inútiles", "You are useless idiots"]
    )
    def test_insults_are_abusive(self, text: str) -> None:
        result = feel(text)
        assert result.abusive
        assert result.anger >= 0.5
        assert "insult" in result.cues

    @pytest.mark.parametrize("text", ["Os voy a denunciar, ya veréis", "I'll sue you for this"])
    def test_threats_are_abusive(self, text: str) -> None:
        assert feel(text).abusive
        assert "threat" in feel(text).cues

    def test_all_caps_raises_anger(self) -> None:
        calm = feel("mi pedido no ha llegado")
        shouting = feel("MI PEDIDO NO HA LLEGADO TODAVIA")
        assert "all_caps" in shouting.cues
        assert shouting.anger > calm.anger

    def test_repeated_punctuation_raises_anger(self) -> None:
        assert feel("where is my refund???!!!").anger > feel("where is my refund?").anger

    def test_emojis(self) -> None:
        assert feel("otra vez sin pedido 😡😡").anger > 0.4
        assert feel("perfecto 😊👍").label is Sentiment.POSITIVE

    @pytest.mark.parametrize(
        "text",
        ["Es la cuarta vez que llamo, estoy hasta las narices", "Third time I call. Fed up."],
    )
    def test_exasperation_without_insults(self, text: str) -> None:
        result = feel(text)
        assert result.label is Sentiment.NEGATIVE
        assert result.anger >= 0.5
        assert not result.abusive
        assert "exasperation" in result.cues

    def test_a_long_calm_complaint_is_not_anger(self) -> None:
        text = "Mi pedido no ha llegado todavía y sigo esperando. " * 40
        assert feel(text).label is Sentiment.NEGATIVE
        assert feel(text).anger < 0.6

    def test_polite_messages_are_calm(self) -> None:
        assert feel("Could you tell me when my order will arrive? Thanks").anger < 0.2


class TestRedactionMasks:
    """The redactor's "[CARD]", "[PHONE]"... are not capitals the customer typed."""

    @pytest.mark.parametrize(
        "text",
        [
            "Hola, quería cambiar la tarjeta 4111 1111 1111 1111 (cvv 123) por la nueva. "
            "Mi teléfono es 612 345 678 y mi correo ana@example.com, DNI 12345678Z. Gracias",
            "Hi, please update my card 5500-0000-0000-0004 to the new one. My phone is "
            "+34 612345678, e-mail ana@example.com, IBAN ES91 2100 0418 4502 0005 1332. Thanks",
        ],
    )
    def test_a_calm_redacted_message_is_not_angry(self, text: str) -> None:
        redacted = PiiRedactor()(text).text
        assert redacted.count("[") >= 4
        result = feel(redacted)
        assert "all_caps" not in result.cues
        assert result.anger < 0.3
        assert result.label is not Sentiment.NEGATIVE

    def test_masks_alone_do_not_shout(self) -> None:
        text = "Datos: [CARD] [CVV] [PHONE] [EMAIL] [IBAN] [DNI] [NIE] [CARD]"
        assert "all_caps" not in feel(text).cues

    @pytest.mark.parametrize(
        "text",
        [
            "MI TARJETA 4111 1111 1111 1111 NO FUNCIONA Y NADIE ME RESPONDE, LLAMAD AL 612 345 678",
            "MY CARD 4111 1111 1111 1111 STILL DOES NOT WORK AND NOBODY ANSWERS, CALL 612 345 678",
        ],
    )
    def test_a_shouted_redacted_message_still_shouts(self, text: str) -> None:
        redacted = PiiRedactor()(text).text
        assert "[CARD]" in redacted
        assert "[PHONE]" in redacted
        assert "all_caps" in feel(redacted).cues

    def test_a_few_shouted_words_beside_masks(self) -> None:
        # Three shouted words shout; two with masks beside them do not.
        assert "all_caps" in feel("Mi tarjeta ESTO NO FUNCIONA NUNCA, la [CARD]").cues
        assert "all_caps" not in feel("Mi tarjeta NO FUNCIONA NUNCA, la [CARD] y [PHONE]").cues

    def test_mask_words_are_in_no_lexicon(self) -> None:
        for mask in MASKS.values():
            for word in words(fold(mask)):
                assert word not in _LEXICON
                assert not PHRASES.counts([word])


class TestLatin1Marks:
    """Latin-1 texts are read from a marked byte copy instead of by the regexes: same counts."""

    def test_shouted_words_and_repeated_marks_count_as_the_regexes_do(self) -> None:
        rng = random.Random(5)
        alphabet = [chr(code) for code in range(256)] + list("AAAZZÁÑÜÇ  !!?")
        for _ in range(20_000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 40)))
            marks = _marks(text)
            assert marks is not None
            assert len(_CAPS_WORD_MARKS.findall(marks)) == len(_CAPS_WORD.findall(text))
            assert len(_REPEATED_MARKS.findall(marks)) == len(_REPEATED_PUNCT.findall(text))
            assert marks.count(b"A") + marks.count(b"B") == len(_UPPER.findall(text))

    @pytest.mark.parametrize(
        ("text", "shouting"),
        [
            ("MI PEDIDO NO HA LLEGADO, ¿DÓNDE ESTÁ? ¡¡¡RESPONDED!!!", True),
            ("Mi pedido NO HA LLEGADO y SIGO esperando, ¿dónde está?", False),
            ("Mi pedido NO HAS LLEGADO y SIGUE sin llegar, ¿dónde está?", True),
            ("Ver PDF ÜBER ÇAVA aquí y allá, no sé qué más decir hoy", False),
            ("Ver ABCé DEFñ GHI_ JKL2 y allá, no sé qué más decir hoy", False),
        ],
    )
    def test_shouted_words_in_accented_text(self, text: str, shouting: bool) -> None:
        assert ("all_caps" in feel(text).cues) is shouting
