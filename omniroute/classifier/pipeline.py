"""The classification pipeline: one synchronous, CPU-only call per inbound contact."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from pathlib import Path
from typing import Protocol

import structlog

from omniroute import __version__
from omniroute.classifier import sentiment as sentiment_mod
from omniroute.classifier import spam as spam_mod
from omniroute.classifier import urgency as urgency_mod
from omniroute.classifier.features import MAX_CHARS
from omniroute.classifier.language import LanguageGuess, LanguageIdentifier
from omniroute.classifier.model import abstention_threshold, load_default_model, load_model
from omniroute.classifier.pii import ALL_KINDS, PiiRedactor
from omniroute.classifier.priority import ReasonFields, UrgencyFields, prioritise
from omniroute.classifier.sentiment import SentimentAnalysis
from omniroute.classifier.sla import SlaBook
from omniroute.classifier.spam import SpamVerdict
from omniroute.classifier.taxonomy import UNKNOWN, Taxonomy
from omniroute.classifier.text import PhraseIndex, Tokens
from omniroute.classifier.urgency import UrgencyCues
from omniroute.shared.events import (
    Channel,
    ClassifiedContact,
    InboundContact,
    TranscriptTurn,
    Visibility,
    utcnow,
)
from omniroute.shared.settings import ClassifierSettings

log = structlog.get_logger(__name__)

# Only the opening of a very long e-mail is scored (the same opening the model was trained
# on); redaction still covers the whole text.
_CLASSIFY_CHARS = MAX_CHARS
TRIAGE_SKILL = "triage"
SPAM_SKILL = "spam_review"
# Contacts classified together by `Classifier.classify_many`'s callers: a contact waits for its
# batch, so batches stay small (about 2 ms for 8 messages of 1 KB, against a 5 ms p99 budget);
# most of the gain of running each step over a batch is there by 8.
BATCH_SIZE = 8
# Keyword votes and the model's probabilities count equally: on cross-validation of the shipped
# examples the mix beat either alone (0.80 against 0.73 for the model).
_RULE_WEIGHT_WITH_MODEL = 0.5


class CategoryModel(Protocol):
    """A trained text model: calibrated probabilities over its labels."""

    @property
    def labels(self) -> Sequence[str]: ...

    @property
    def model_id(self) -> str: ...

    def predict_proba(self, text: str, tokens: Tokens | None = None) -> Sequence[float]: ...


class Classifier:
    """Loads the taxonomy, SLA book and model once; `classify` is then pure CPU work."""

    def __init__(
        self,
        settings: ClassifierSettings,
        *,
        taxonomy: Taxonomy | None = None,
        sla: SlaBook | None = None,
        model: CategoryModel | None = None,
        redact: Sequence[str] = ALL_KINDS,
    ) -> None:
        self.settings = settings
        model_dir = settings.model_dir
        self.taxonomy = taxonomy or Taxonomy.load(_optional(model_dir, "taxonomy.yaml"))
        self.sla = sla or SlaBook.load(_optional(model_dir, "sla.yaml"), settings.timezone)
        self.model = model if model is not None else _load_model(model_dir, self.taxonomy)
        self.threshold = abstention_threshold(settings, self.model)
        self.languages = LanguageIdentifier()
        self.redactor = PiiRedactor(redact)
        # Per language, the phrases every signal looks for, so that one pass over a contact's
        # words finds them all (languages without keywords of their own share "*").
        self.phrases = {
            language: PhraseIndex(
                [
                    sentiment_mod.PHRASES,
                    urgency_mod.MATCHER,
                    spam_mod.MATCHER,
                    *self.taxonomy.matchers(language),
                ]
            )
            for language in self.taxonomy.languages | {"*"}
        }
        model_id = self.model.model_id if self.model is not None else "rules"
        self.version = f"omniroute-classifier/{__version__}+{self.taxonomy.id}.{model_id}"
        self._warm_up()
        log.info(
            "classifier.loaded",
            version=self.version,
            categories=len(self.taxonomy.categories),
            threshold=self.threshold,
        )

    def _warm_up(self) -> None:
        """Pay for lazy loads (holiday tables, caches) now rather than on the first contact."""
        for channel in (Channel.EMAIL, Channel.CHAT, Channel.WHATSAPP, Channel.PHONE):
            sample = InboundContact.build(
                channel=channel,
                external_id="warm-up",
                conversation_key="warm-up",
                text="Hola, mi pedido no ha llegado. Hello, where is my order?",
            )
            self.classify(sample)

    def classify(
        self,
        contact: InboundContact,
        *,
        now: datetime | None = None,
        repeated_contact: bool = False,
    ) -> ClassifiedContact:
        return self.classify_many([contact], now=now, repeated=[repeated_contact])[0]

    def classify_many(
        self,
        contacts: Sequence[InboundContact],
        *,
        now: datetime | None = None,
        repeated: Sequence[bool] | None = None,
    ) -> list[ClassifiedContact]:
        """Classify contacts that arrived together, each exactly as `classify` would.

        Each step runs over the whole batch before the next (redaction for every contact, then
        tokens, language...): a step's code and tables then stay in the CPU's caches from one
        contact to the next, where one contact at a time walks every step's in turn and evicts
        the last one's (about 20% less time per contact for batches of 8, 1 KB messages). A
        contact's result is ready when its batch's is, so callers keep batches small
        (`BATCH_SIZE`).
        """
        batch = list(contacts)
        count = len(batch)
        flags = list(repeated) if repeated is not None else [False] * count
        if len(flags) != count:
            raise ValueError("one repeated flag per contact")
        # Reasons and results are gathered as plain fields and validated in one pass with each
        # contact (pydantic's core builds the nested models), instead of one model at a time.
        # (Loops by index: compiled, they read the lists directly.)
        reasons: list[list[ReasonFields]] = [[] for _ in range(count)]
        redacted = [self._redact(contact) for contact in batch]
        heads = [_customer_text(redacted[i][0])[:_CLASSIFY_CHARS] for i in range(count)]
        tokens = [Tokens.of(head) for head in heads]
        languages = [
            self.languages.identify(heads[i], tokens[i], batch[i].customer.language)
            for i in range(count)
        ]
        for i in range(count):
            language = languages[i]
            tokens[i].share_phrases(self.phrases.get(language.code) or self.phrases["*"])
            reasons[i].append(
                {
                    "signal": "language",
                    "detail": f"{language.code} by {language.method}",
                    "weight": language.confidence,
                }
            )
        categories = [
            self._categorise(heads[i], tokens[i], languages[i].code, reasons[i])
            for i in range(count)
        ]
        feelings = [sentiment_mod.analyse(heads[i], tokens[i]) for i in range(count)]
        cues = [urgency_mod.detect(words) for words in tokens]
        verdicts = [spam_mod.detect(heads[i], tokens[i]) for i in range(count)]
        results = [
            self._finish(
                batch[i],
                redacted[i],
                languages[i],
                categories[i],
                feelings[i],
                cues[i],
                verdicts[i],
                reasons[i],
                now=now,
                repeated_contact=flags[i],
            )
            for i in range(count)
        ]
        return results

    def _finish(
        self,
        contact: InboundContact,
        redacted: tuple[InboundContact, list[str]],
        language: LanguageGuess,
        category: dict[str, str | float | None],
        feeling: SentimentAnalysis,
        cues: UrgencyCues,
        verdict: SpamVerdict,
        reasons: list[ReasonFields],
        *,
        now: datetime | None,
        repeated_contact: bool,
    ) -> ClassifiedContact:
        """Priority, SLA and the validated result of one contact from its signals."""
        if verdict.spam:
            kind = "phishing" if verdict.phishing else "spam"
            reasons.append({"signal": "spam", "detail": kind, "weight": verdict.score})
        tier = (contact.customer.tier or "").lower() or None
        # The fields of UrgencySignals (and below of SlaResult), validated with the rest.
        urgency: UrgencyFields = {
            "urgent_wording": cues.urgent_wording,
            "legal_threat": cues.legal_threat,
            "cancellation_threat": cues.cancellation_threat,
            "repeated_contact": repeated_contact,
            "public": contact.visibility is Visibility.PUBLIC,
            "vip": tier == "vip",
        }
        category_id = str(category["category"])
        known = self.taxonomy.categories.get(category_id)
        decision = prioritise(
            category_weight=known.priority if known else 10,
            category=category_id,
            sentiment=feeling,
            urgency=urgency,
            channel=contact.channel,
            spam=verdict.spam,
        )
        reasons.extend(decision.reasons)
        sla = self.sla.stamp_fields(
            channel=contact.channel,
            visibility=contact.visibility,
            priority=decision.level,
            tier=tier,
            received_at=contact.received_at,
            spam=verdict.spam,
        )
        reasons.append({"signal": "sla", "detail": sla["policy"]})
        if verdict.spam:
            skills = [SPAM_SKILL]
        elif category_id == UNKNOWN:
            skills = [TRIAGE_SKILL]
        else:
            skills = [category_id]
        if language.code != "und":
            skills.append(f"lang:{language.code}")
        text, pii_kinds = redacted
        return ClassifiedContact.model_validate(
            {
                "contact": text,
                "language": {"code": language.code, "confidence": language.confidence},
                "category": category,
                "sentiment": {
                    "label": feeling.label,
                    "score": feeling.score,
                    "anger": feeling.anger,
                    "abusive": feeling.abusive,
                },
                "urgency": urgency,
                "pii_kinds": pii_kinds,
                "spam": verdict.spam,
                "priority": {"level": decision.level, "score": decision.score},
                "sla": sla,
                "required_skills": skills,
                "classifier_version": self.version,
                "classified_at": now or utcnow(),
                "reasons": reasons[:64],
            }
        )

    def _redact(self, contact: InboundContact) -> tuple[InboundContact, list[str]]:
        kinds: list[str] = []

        def run(value: str) -> str:
            result = self.redactor(value)
            kinds.extend(k for k in result.kinds if k not in kinds)
            return result.text

        update: dict[str, object] = {"text": run(contact.text)}
        if contact.subject:
            update["subject"] = run(contact.subject)
        if contact.transcript:
            update["transcript"] = [
                turn.model_copy(update={"text": run(turn.text)}) for turn in contact.transcript
            ]
        return contact.model_copy(update=update), kinds

    def _categorise(
        self, head: str, tokens: Tokens, language: str, reasons: list[ReasonFields]
    ) -> dict[str, str | float | None]:
        """The fields of the CategoryResult."""
        hits = self.taxonomy.rule_hits(tokens, language)
        total_hits = sum(hits.values())
        scores: dict[str, float] = {}
        if self.model is not None and head.strip():
            probabilities = self.model.predict_proba(head, tokens)
            scores = dict(zip(self.model.labels, probabilities, strict=True))
            votes = {label: count for label, count in hits.items() if label in scores}
            if votes:
                total = sum(votes.values())
                scores = {
                    label: (1 - _RULE_WEIGHT_WITH_MODEL) * p
                    + _RULE_WEIGHT_WITH_MODEL * votes.get(label, 0) / total
                    for label, p in scores.items()
                }
        elif total_hits:
            # Rules alone: the share of keyword votes, discounted when there are few of them.
            certainty = 1 - math.exp(-0.8 * total_hits)
            scores = {label: certainty * count / total_hits for label, count in hits.items()}
        if hits:
            top = sorted(hits.items(), key=lambda item: -item[1])[:3]
            reasons.append(
                {
                    "signal": "keywords",
                    "detail": ", ".join(f"{label}x{count}" for label, count in top),
                    "weight": float(total_hits),
                }
            )
        if not scores:
            return {"category": UNKNOWN, "confidence": 0.0}
        best = max(scores, key=scores.__getitem__)
        confidence = float(min(1.0, max(0.0, scores[best])))
        if confidence < self.threshold:
            reasons.append(
                {"signal": "category", "detail": f"abstained (best {best})", "weight": confidence}
            )
            return {"category": UNKNOWN, "confidence": round(confidence, 4)}
        category = self.taxonomy.categories.get(best)
        sub = category.subcategory(tokens, language) if category else None
        reasons.append({"signal": "category", "detail": best, "weight": round(confidence, 4)})
        return {"category": best, "subcategory": sub, "confidence": round(confidence, 4)}


def _customer_text(contact: InboundContact) -> str:
    parts = [contact.subject or "", contact.text]
    parts.extend(turn.text for turn in contact.transcript if _from_customer(turn))
    return "\n".join(part for part in parts if part)


def _from_customer(turn: TranscriptTurn) -> bool:
    return turn.speaker == "customer"


def _optional(directory: Path | None, name: str) -> Path | None:
    if directory is None:
        return None
    path = directory / name
    return path if path.is_file() else None


def _load_model(model_dir: Path | None, taxonomy: Taxonomy) -> CategoryModel | None:
    """The configured model directory, else the default model trained from shipped examples."""
    if model_dir is not None:
        return load_model(model_dir)
    return load_default_model(taxonomy)
