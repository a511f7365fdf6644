from __future__ import annotations

import pytest

from omniroute.classifier.spam import SpamVerdict, detect
from omniroute.classifier.text import fold, words


def verdict(text: str) -> SpamVerdict:
    return detect(text, words(fold(text)))


class TestSpam:
    @pytest.mark.parametrize(
        "text",
        [
            "Congratulations! You have won a prize, click here http://bit.ly/abc to claim it",
            "¡Has ganado un premio! Gana dinero fácil con bitcoin: www.ganaya.example",
            "Best SEO services, guest post and backlinks to increase your traffic",
        ],
    )
    def test_spam_is_flagged(self, text: str) -> None:
        assert verdict(text).spam

    def test_phishing_is_flagged(self) -> None:
        result = verdict("Security alert: verify your account at http://192.168.4.2/login")
        assert result.spam
        assert result.phishing

    @pytest.mark.parametrize(
        "text",
        [
            "Hola, mi pedido 4521 no ha llegado, ¿podéis mirarlo?",
            "My invoice link https://shop.example/invoices/77 gives an error",
        ],
    )
    def test_customers_are_not_spam(self, text: str) -> None:
        assert not verdict(text).spam
