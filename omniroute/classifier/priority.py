"""Priority score (0-100) and level (P1-P4) from the signals, with the reasons behind it."""

from __future__ import annotations

from dataclasses import dataclass

from omniroute.classifier.sentiment import SentimentAnalysis
from omniroute.shared.events import Channel, PriorityLevel, Sentiment

# Live channels wait on a person at the other end; public posts are seen by everyone.
_CHANNEL_WEIGHT = {
    Channel.PHONE: 10,
    Channel.CHAT: 8,
    Channel.WHATSAPP: 5,
    Channel.SMS: 4,
    Channel.MESSENGER: 4,
    Channel.INSTAGRAM: 4,
    Channel.X: 4,
}
_BASE = 20
_LEVELS = ((70, PriorityLevel.P1), (50, PriorityLevel.P2), (30, PriorityLevel.P3))


# A reason as the fields of `Reason`: the pipeline validates them all at once, with the contact.
ReasonFields = dict[str, str | float]
# The fields of `UrgencySignals`, likewise validated with the contact.
UrgencyFields = dict[str, bool]


@dataclass(frozen=True, slots=True)
class PriorityDecision:
    level: PriorityLevel
    score: int
    reasons: list[ReasonFields]


def prioritise(
    *,
    category_weight: int,
    category: str,
    sentiment: SentimentAnalysis,
    urgency: UrgencyFields,
    channel: Channel,
    spam: bool,
) -> PriorityDecision:
    reasons: list[ReasonFields] = []

    def add(signal: str, detail: str, weight: float) -> None:
        if weight:
            reasons.append({"signal": signal, "detail": detail, "weight": round(weight, 2)})

    if spam:
        add("spam", "flagged as spam or phishing", -_BASE)
        return PriorityDecision(PriorityLevel.P4, 0, reasons)
    add("category", category, category_weight)
    if sentiment.label is Sentiment.NEGATIVE:
        add("sentiment", f"negative ({sentiment.score:+.2f})", round(10 * -sentiment.score))
    if sentiment.anger >= 0.3:
        add(
            "anger",
            f"anger {sentiment.anger:.2f}: {', '.join(sentiment.cues)}",
            20 * sentiment.anger,
        )
    if urgency["urgent_wording"]:
        add("urgency", "urgent wording", 15)
    if urgency["legal_threat"]:
        add("legal_threat", "legal action mentioned", 20)
    if urgency["cancellation_threat"]:
        add("cancellation_threat", "customer may leave", 15)
    if urgency["repeated_contact"]:
        add("repeated_contact", "customer wrote again on this conversation", 10)
    if urgency["public"]:
        add("public", "public post, visible to everyone", 15)
    if urgency["vip"]:
        add("vip", "VIP customer", 15)
    add("channel", channel.value, _CHANNEL_WEIGHT.get(channel, 0))
    # Summed as floats, as the validated Reason weights were (from 0.0: compiled, a sum from
    # the int 0 is taken as an int).
    weights = sum([float(r["weight"]) for r in reasons], 0.0)
    score = int(round(max(0.0, min(100.0, _BASE + weights))))
    level = next((lvl for floor, lvl in _LEVELS if score >= floor), PriorityLevel.P4)
    return PriorityDecision(level, score, reasons)
