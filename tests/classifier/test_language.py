from __future__ import annotations

import pytest

from omniroute.classifier.language import LanguageIdentifier
from omniroute.classifier.text import fold, words


@pytest.fixture(scope="module")
def identifier() -> LanguageIdentifier:
    return LanguageIdentifier()


def identify(identifier: LanguageIdentifier, text: str, known: str | None = None) -> str:
    return identifier.identify(text, words(fold(text)), known).code


class TestShortTexts:
    @pytest.mark.parametrize(
        ("text", "code"),
        [
            ("¿Dónde está mi pedido?", "es"),
            ("Where is my parcel?", "en"),
            ("Obrigado, o pedido ainda não chegou", "pt"),
            ("Bonjour, ma commande est en retard", "fr"),
            ("Hallo, meine Bestellung ist nicht angekommen", "de"),
            ("Ciao, il mio ordine non è arrivato", "it"),
            ("me habéis cobrado dos veces!!", "es"),
            ("charged twice wtf", "en"),
        ],
    )
    def test_tweet_sized_messages(self, identifier: LanguageIdentifier, text: str, code: str):
        assert identify(identifier, text) == code

    def test_confidence_is_reported(self, identifier: LanguageIdentifier) -> None:
        text = "Hola, quiero devolver el pedido que me llegó ayer"
        guess = identifier.identify(text, words(fold(text)))
        assert 0.5 < guess.confidence <= 1.0


class TestLongTexts:
    def test_an_email_is_settled_by_function_words(self, identifier: LanguageIdentifier) -> None:
        text = (
            "Buenos días, les escribo porque el pedido que hice la semana pasada todavía no ha "
            "llegado y el número de seguimiento no muestra nada desde el lunes. Gracias."
        )
        guess = identifier.identify(text, words(fold(text)))
        assert (guess.code, guess.method) == ("es", "function_words")

    def test_function_words_of_languages_not_configured_leave_it_to_lingua(self) -> None:
        english_only = LanguageIdentifier(["en"])
        text = "Ich habe die Bestellung nicht bekommen und das ist nicht gut, aber ich warte noch"
        guess = english_only.identify(text, words(fold(text)))
        assert guess.method != "function_words"
        assert guess.code in ("en", "und")


class TestKnownLanguage:
    def test_customer_language_breaks_a_tie(self, identifier: LanguageIdentifier) -> None:
        # "no" alone is as Spanish as it is Italian or Portuguese: the profile decides.
        assert identify(identifier, "no", known="es") == "es"
        assert identify(identifier, "no", known="it") == "it"

    def test_customer_language_does_not_override_clear_text(
        self, identifier: LanguageIdentifier
    ) -> None:
        assert identify(identifier, "My order never arrived, please help", known="es") == "en"

    def test_text_without_letters_falls_back_to_the_profile(
        self, identifier: LanguageIdentifier
    ) -> None:
        assert identify(identifier, "👍 123", known="pt") == "pt"
        assert identify(identifier, "👍 123") == "und"
