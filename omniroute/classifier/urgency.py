"""Urgency wording, legal and cancellation threats, in Spanish and English (folded text)."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from omniroute.classifier.text import PhraseMatcher, Tokens

_URGENT = (
    "urgente",
    "urgentemente",
    "urgencia",
    "cuanto antes",
    "lo antes posible",
    "inmediatamente",
    "ya mismo",
    "ahora mismo",
    "de inmediato",
    "es urgente",
    "necesito ya",
    "hoy mismo",
    "sin falta",
    "emergencia",
    "me corre prisa",
    "asap",
    "urgent",
    "urgently",
    "immediately",
    "right now",
    "right away",
    "as soon as possible",
    "emergency",
    "today please",
    "critical",
    "time sensitive",
    "cannot wait",
    "can't wait any longer",
    "need it now",
    "need it today",
)
_LEGAL = (
    "abogado",
    "abogados",
    "abogada",
    "demanda",
    "demandar",
    "demandare",
    "denuncia",
    "denunciar",
    "denunciare",
    "juzgado",
    "tribunal",
    "tribunales",
    "juicio",
    "ocu",
    "facua",
    "consumo",
    "oficina del consumidor",
    "hoja de reclamaciones",
    "accion legal",
    "acciones legales",
    "via judicial",
    "reclamacion judicial",
    "lawyer",
    "lawyers",
    "attorney",
    "sue",
    "suing",
    "lawsuit",
    "legal action",
    "take legal",
    "court",
    "small claims",
    "trading standards",
    "ombudsman",
    "better business bureau",
    "bbb",
    "chargeback",
    "consumer protection",
)
_CANCEL = (
    "darme de baja",
    "dar de baja",
    "me doy de baja",
    "baja del servicio",
    "cancelar mi cuenta",
    "cancelar la cuenta",
    "cancelar mi suscripcion",
    "cancelar el contrato",
    "cancelar mi contrato",
    "cerrar mi cuenta",
    "me voy a la competencia",
    "me cambio de compania",
    "me cambio a",
    "no vuelvo a comprar",
    "no volvere a comprar",
    "ultima vez que compro",
    "cancel my account",
    "cancel my subscription",
    "cancel my membership",
    "cancel my contract",
    "close my account",
    "closing my account",
    "delete my account",
    "switch to another",
    "switching to",
    "take my business elsewhere",
    "never buy from you again",
    "never order again",
    "unsubscribe me",
    "leaving you",
    "i'm done with you",
    "im done with you",
)


@dataclass(frozen=True, slots=True)
class UrgencyCues:
    urgent_wording: bool
    legal_threat: bool
    cancellation_threat: bool


MATCHER = PhraseMatcher({"urgent": _URGENT, "legal": _LEGAL, "cancel": _CANCEL})


def detect(tokens: Tokens | Sequence[str]) -> UrgencyCues:
    """`tokens` are the folded words of the customer's text."""
    hits = MATCHER.counts(tokens)
    return UrgencyCues(
        urgent_wording="urgent" in hits,
        legal_threat="legal" in hits,
        cancellation_threat="cancel" in hits,
    )
