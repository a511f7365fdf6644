"""Spam and phishing heuristics: flagged so they go to review, not to agents as ordinary work."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass

from omniroute.classifier.text import PhraseMatcher, Tokens

_URL = re.compile(r"\bhttps?://[^\s<>\"]+|\bwww\.[^\s<>\"]+")
_SHORTENER = re.compile(r"(?i)\b(?:bit\.ly|tinyurl\.com|goo\.gl|t\.co|ow\.ly|is\.gd|cutt\.ly)/")
_IP_URL = re.compile(r"(?i)https?://\d{1,3}(?:\.\d{1,3}){3}")
_SPAM = (
    "viagra",
    "cialis",
    "casino",
    "apuestas",
    "bitcoin",
    "crypto",
    "criptomoneda",
    "forex",
    "lottery",
    "loteria",
    "you have won",
    "you've won",
    "has ganado",
    "ha ganado",
    "premio",
    "prize",
    "winner",
    "ganador",
    "free money",
    "dinero facil",
    "work from home",
    "trabaja desde casa",
    "earn money",
    "gana dinero",
    "100% free",
    "click here",
    "haz clic aqui",
    "pulsa aqui",
    "limited time offer",
    "oferta limitada",
    "seo services",
    "backlinks",
    "guest post",
    "increase your traffic",
    "weight loss",
    "adelgazar",
    "investment opportunity",
    "oportunidad de inversion",
    "nigerian prince",
    "inheritance",
    "herencia",
    "dear friend",
    "querido amigo",
    "unsubscribe",
    "darse de baja de esta lista",
)
_PHISHING = (
    "verify your account",
    "verifique su cuenta",
    "verifica tu cuenta",
    "confirm your password",
    "confirme su contrasena",
    "confirma tu contrasena",
    "your account has been suspended",
    "su cuenta ha sido suspendida",
    "tu cuenta ha sido suspendida",
    "update your payment",
    "actualice sus datos",
    "actualiza tus datos",
    "login to restore",
    "inicie sesion",
    "unusual activity",
    "actividad inusual",
    "your password expires",
    "security alert",
    "alerta de seguridad",
    "enter your pin",
    "introduzca su pin",
)


@dataclass(frozen=True, slots=True)
class SpamVerdict:
    spam: bool
    phishing: bool
    score: float


MATCHER = PhraseMatcher({"spam": _SPAM, "phishing": _PHISHING})


def detect(raw: str, tokens: Tokens | Sequence[str]) -> SpamVerdict:
    """Heuristic score; a real customer rarely writes prize talk next to links."""
    urls = len(_URL.findall(raw[:20_000])) if ("http" in raw or "www." in raw) else 0
    hits = MATCHER.counts(tokens)
    spam_hits, phishing_hits = hits.get("spam", 0), hits.get("phishing", 0)
    customer_tokens = len(tokens)
    score = 0.0
    score += 0.6 * min(spam_hits, 4)
    score += 0.25 * min(urls, 4)
    if urls and (_SHORTENER.search(raw) or _IP_URL.search(raw)):
        score += 0.6
    if urls and customer_tokens and urls * 8 > customer_tokens:
        score += 0.4
    phishing = phishing_hits > 0 and (urls > 0 or phishing_hits >= 2)
    return SpamVerdict(spam=score >= 1.2 or phishing, phishing=phishing, score=round(score, 2))
