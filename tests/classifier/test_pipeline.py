from __future__ import annotations

import json
from datetime import UTC, datetime
from pathlib import Path

import pytest

from omniroute.classifier.pipeline import Classifier
from omniroute.shared.events import Channel, PriorityLevel, Sentiment, TranscriptTurn, Visibility
from omniroute.shared.transport.base import encode_event
from tests.classifier.conftest import WEDNESDAY_10_MADRID, contact


class TestCategory:
    @pytest.mark.parametrize(
        ("text", "category"),
        [
            ("Hola, mi pedido no ha llegado y el seguimiento no se mueve", "delivery"),
            ("My parcel still hasn't arrived, the tracking is stuck", "delivery"),
            ("Me habéis cobrado dos veces la factura de marzo", "billing"),
            ("You charged me twice on this month's invoice", "billing"),
            ("Quiero devolver las zapatillas y que me reembolséis", "returns_refunds"),
            ("I want to return the shoes and get a refund", "returns_refunds"),
            ("No puedo iniciar sesión, me dice que la contraseña es incorrecta", "account"),
            ("The app crashes every time I open it", "technical"),
            ("Quiero darme de baja y cancelar mi suscripción", "cancellation"),
            ("Muchas gracias, el servicio ha sido excelente, os recomiendo", "feedback"),
        ],
    )
    def test_spanish_and_english(self, classifier: Classifier, text: str, category: str) -> None:
        result = classifier.classify(contact(text))
        assert result.category.category == category
        assert 0.35 <= result.category.confidence <= 1.0

    def test_subcategory(self, classifier: Classifier) -> None:
        result = classifier.classify(contact("El paquete ha llegado roto"))
        assert (result.category.category, result.category.subcategory) == ("delivery", "damaged")

    def test_gibberish_goes_to_triage(self, classifier: Classifier) -> None:
        result = classifier.classify(contact("asdf qwerty zxcv"))
        assert result.category.category == "unknown"
        assert result.required_skills[0] == "triage"


class TestSignalsTogether:
    def test_angry_public_tweet_is_p1_with_reasons(self, classifier: Classifier) -> None:
        result = classifier.classify(
            contact(
                "@tienda SOIS UNOS LADRONES!!! me cobrasteis dos veces, os voy a denunciar 😡",
                channel=Channel.X,
                visibility=Visibility.PUBLIC,
            )
        )
        assert result.sentiment.label is Sentiment.NEGATIVE
        assert result.sentiment.abusive
        assert result.urgency.public
        assert result.urgency.legal_threat
        assert result.priority.level is PriorityLevel.P1
        signals = {reason.signal for reason in result.reasons}
        assert {"public", "legal_threat", "anger"} <= signals
        assert result.sla.policy.startswith("social_public.P1")

    def test_polite_feedback_is_low_priority(self, classifier: Classifier) -> None:
        result = classifier.classify(contact("Thanks a lot, great service!"))
        assert result.priority.level is PriorityLevel.P4
        assert result.sentiment.label is Sentiment.POSITIVE

    def test_vip_raises_priority_and_shortens_the_sla(self, classifier: Classifier) -> None:
        text = "Where is my order?"
        normal = classifier.classify(contact(text, channel=Channel.CHAT))
        vip = classifier.classify(contact(text, channel=Channel.CHAT, tier="VIP"))
        assert vip.urgency.vip
        assert not normal.urgency.vip
        assert vip.priority.score > normal.priority.score
        assert vip.sla.first_response_due < normal.sla.first_response_due

    def test_repeated_contact_is_an_urgency_signal(self, classifier: Classifier) -> None:
        first = classifier.classify(contact("¿Y mi pedido?"))
        again = classifier.classify(contact("¿Y mi pedido?"), repeated_contact=True)
        assert again.urgency.repeated_contact
        assert again.priority.score > first.priority.score


class TestPersonalData:
    def test_text_subject_and_transcript_are_redacted(self, classifier: Classifier) -> None:
        result = classifier.classify(
            contact(
                "Pagad con la 4111-1111-1111-1111, cvv 123",
                subject="Mi IBAN ES91 2100 0418 4502 0005 1332",
                channel=Channel.PHONE,
                transcript=[
                    TranscriptTurn(speaker="customer", text="mi tarjeta es 4111 1111 1111 1111"),
                    TranscriptTurn(speaker="agent", text="gracias"),
                ],
            )
        )
        dumped = result.model_dump_json()
        assert "4111" not in dumped
        assert " 123" not in result.contact.text
        assert "ES91" not in dumped
        assert set(result.pii_kinds) >= {"card_number", "cvv", "iban"}

    @pytest.mark.parametrize(
        "text",
        [
            "Hola, quiero cambiar la tarjeta 4111 1111 1111 1111 por la nueva; mi teléfono es "
            "612 345 678 y mi correo ana@example.com",
            "Hi, please swap my card 4111 1111 1111 1111 for the new one; my phone is "
            "612 345 678 and my e-mail ana@example.com",
        ],
    )
    def test_masks_do_not_read_as_shouting(self, classifier: Classifier, text: str) -> None:
        result = classifier.classify(contact(text))
        assert result.contact.text.count("[") == 3
        assert result.sentiment.anger < 0.1
        assert "anger" not in {reason.signal for reason in result.reasons}


class TestStamps:
    def test_language_skills_version_and_times(self, classifier: Classifier) -> None:
        now = datetime(2025, 3, 12, 9, 0, 1, tzinfo=UTC)
        result = classifier.classify(
            contact("Hola, quiero cambiar la dirección de entrega"), now=now
        )
        assert result.language.code == "es"
        assert result.required_skills == ["delivery", "lang:es"]
        assert result.classified_at == now
        assert result.classifier_version.startswith("omniroute-classifier/")
        assert result.sla.first_response_due > WEDNESDAY_10_MADRID

    def test_spam_is_flagged_and_not_ordinary_work(self, classifier: Classifier) -> None:
        result = classifier.classify(
            contact("You have won a prize! Click here http://bit.ly/win to claim")
        )
        assert result.spam
        assert result.required_skills[0] == "spam_review"
        assert result.priority.level is PriorityLevel.P4

    def test_empty_text(self, classifier: Classifier) -> None:
        result = classifier.classify(contact(""))
        assert result.category.category == "unknown"
        assert result.language.code == "und"


class TestQualityOnHeldOutMessages:
    """Messages written apart from the training examples, labelled by hand."""

    def test_category_sentiment_and_anger(self, classifier: Classifier) -> None:
        path = Path(__file__).parent / "data" / "heldout.jsonl"
        rows = [json.loads(line) for line in path.read_text().splitlines() if line]
        pairs = [(classifier.classify(contact(row["text"])), row) for row in rows]
        category = sum(r.category.category == row["category"] for r, row in pairs)
        feeling = sum(r.sentiment.label.value == row["sentiment"] for r, row in pairs)
        anger = sum((r.sentiment.anger >= 0.5) == row["angry"] for r, row in pairs)
        assert category / len(rows) >= 0.85
        assert feeling / len(rows) >= 0.7
        assert anger / len(rows) >= 0.85


class TestAbstentionThreshold:
    class _Model:
        def __init__(self, threshold: float | None) -> None:
            self.threshold = threshold

    def test_the_model_recommendation_applies_unless_set(self) -> None:
        from omniroute.classifier.model import abstention_threshold
        from omniroute.shared.settings import ClassifierSettings

        settings = ClassifierSettings.model_construct()
        assert abstention_threshold(settings, self._Model(0.5)) == 0.5
        assert abstention_threshold(settings, self._Model(None)) == settings.threshold
        explicit = ClassifierSettings(threshold=0.2)
        assert abstention_threshold(explicit, self._Model(0.5)) == 0.2


class TestClassifyMany:
    def test_each_contact_comes_out_as_classify_gives_it_alone(
        self, classifier: Classifier
    ) -> None:
        texts = [
            "Hola, mi pedido no ha llegado y el seguimiento no se mueve",
            "You charged me twice!! Card 4111 1111 1111 1111, call +44 20 7946 0958",
            "¡Sois unos INÚTILES, os voy a denunciar! 😡",
            "Thanks a lot, great service!",
            "asdf qwerty zxcv zqxv81",
            "",
            "Quiero darme de baja y cancelar mi suscripción hoy mismo",
            "Win a FREE prize now at http://bit.ly/x enter your pin",
            "Bonjour, ma commande n'est pas arrivée, merci",
        ]
        now = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)
        inbound = [
            contact(
                text,
                channel=list(Channel)[n % len(Channel)],
                visibility=Visibility.PUBLIC if n % 3 == 0 else Visibility.PRIVATE,
                tier="vip" if n % 4 == 0 else None,
            )
            for n, text in enumerate(texts)
        ]
        repeated = [n % 2 == 1 for n in range(len(inbound))]
        together = classifier.classify_many(inbound, now=now, repeated=repeated)
        alone = [
            classifier.classify(c, now=now, repeated_contact=r)
            for c, r in zip(inbound, repeated, strict=True)
        ]
        assert [encode_event(c) for c in together] == [encode_event(c) for c in alone]
        assert [c.urgency.repeated_contact for c in together] == repeated

    def test_one_repeated_flag_per_contact(self, classifier: Classifier) -> None:
        with pytest.raises(ValueError, match="one repeated flag per contact"):
            classifier.classify_many([contact("hola")], repeated=[True, False])
