from __future__ import annotations

import pytest

from omniroute.classifier.text import fold, words
from omniroute.classifier.urgency import UrgencyCues, detect


def cues(text: str) -> UrgencyCues:
    return detect(words(fold(text)))


class TestUrgentWording:
    @pytest.mark.parametrize(
        "text", ["Es urgente, lo necesito hoy mismo", "Please fix this ASAP, it's urgent"]
    )
    def test_urgent(self, text: str) -> None:
        assert cues(text).urgent_wording

    def test_plain_question_is_not_urgent(self) -> None:
        assert not cues("¿Cuál es el horario de la tienda?").urgent_wording


class TestLegalThreat:
    @pytest.mark.parametrize(
        "text",
        ["Voy a hablar con mi abogado", "Pondré una denuncia en consumo", "I will sue you"],
    )
    def test_legal(self, text: str) -> None:
        assert cues(text).legal_threat


class TestCancellationThreat:
    @pytest.mark.parametrize(
        "text", ["Si no lo arregláis me doy de baja", "I'm going to cancel my subscription"]
    )
    def test_cancel(self, text: str) -> None:
        assert cues(text).cancellation_threat

    def test_no_threat(self) -> None:
        assert cues("Thanks, all sorted") == UrgencyCues(False, False, False)
