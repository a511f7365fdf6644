"""Language identification: function words for long texts, lingua for short or mixed ones.

Counting function words is a dictionary lookup per word and settles most e-mails; lingua (a
well-kept n-gram detector) decides the short and ambiguous texts where the counts cannot.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from lingua import Language, LanguageDetector, LanguageDetectorBuilder

from omniroute.classifier.text import LEXICON, Tokens, as_tokens

SUPPORTED = ("es", "en", "pt", "fr", "de", "it")
UNDETERMINED = "und"

_LINGUA = {
    "es": Language.SPANISH,
    "en": Language.ENGLISH,
    "pt": Language.PORTUGUESE,
    "fr": Language.FRENCH,
    "de": Language.GERMAN,
    "it": Language.ITALIAN,
}
_CODES = {language: code for code, language in _LINGUA.items()}

# Frequent words that are (nearly) exclusive to one of the supported languages, accents folded.
_FUNCTION_WORDS = {
    "es": "el los las del por para con una que es esta estoy pero muy mi mis porque cuando "
    "hola gracias tengo hace ya sin sobre puedo quiero pedido nada todavia desde hasta "
    "ayer dinero como cuenta tambien donde usted ustedes os vuestro",
    "en": "the and of to is are was my your you it this that with for have not can "
    "will would please thanks hello hi what when why how order account been from but "
    "there they we our an any still yet",
    "pt": "o os as do da dos das um uma nao voce meu minha obrigado ola estou tenho "
    "pelo pela mas muito ainda quando onde conta pedido seu sua isso",
    "fr": "le les des du un une est et je vous mon ma mes pas ne pour avec sur bonjour "
    "merci suis ai commande compte mais tres encore quand ou c'est j'ai",
    "de": "der die das und ist ich nicht ein eine mit fur auf sie mein meine bitte "
    "danke hallo habe noch wann wo bestellung konto aber sehr ihr ihre wir",
    "it": "il lo gli della di che e non un una per con sono mio mia ho ciao grazie "
    "ancora quando dove ordine conto ma molto questo mi",
}
_WORD_LANGS: dict[str, tuple[str, ...]] = {}
for _code, _words in _FUNCTION_WORDS.items():
    for _word in _words.split():
        _WORD_LANGS[_word] = (*_WORD_LANGS.get(_word, ()), _code)
# The same by the word's id in the shared lexicon (empty for its other words).
_LANGS_BY_ID = LEXICON.column(_WORD_LANGS, ())

# Enough function words with a clear winner and lingua is not needed.
_MIN_HITS = 6
_MIN_SHARE = 0.7
_LINGUA_CHARS = 240
# Within this confidence of the best, the customer's known language wins.
_TIE_MARGIN = 0.15


@dataclass(frozen=True, slots=True)
class LanguageGuess:
    code: str
    confidence: float
    method: str


class LanguageIdentifier:
    def __init__(self, languages: Sequence[str] = SUPPORTED) -> None:
        self.languages = tuple(code for code in languages if code in _LINGUA)
        # Preloaded now so the first contact does not pay for loading the n-gram models.
        self._detector: LanguageDetector = (
            LanguageDetectorBuilder.from_languages(*(_LINGUA[c] for c in self.languages))
            .with_preloaded_language_models()
            .build()
        )
        self._detector.compute_language_confidence_values("warm up")

    def identify(
        self, text: str, tokens: Tokens | Sequence[str], known: str | None = None
    ) -> LanguageGuess:
        known = (known or "").lower()[:2] or None
        counts = dict.fromkeys(self.languages, 0.0)
        hits = 0
        # The function words among the words (by their ids in the shared lexicon), counted in
        # the order they first come: the votes below are summed in that order.
        _, ids = as_tokens(tokens).lexicon()
        by_id = _LANGS_BY_ID.values
        # Counts by id in a list (no dictionary work per word), and the ids in order.
        frequency = [0] * len(by_id)
        order: list[int] = []
        for word_id in ids:
            if by_id[word_id]:
                if not frequency[word_id]:
                    order.append(word_id)
                frequency[word_id] += 1
        for word_id in order:
            seen = frequency[word_id]
            langs = by_id[word_id]
            hits += seen
            for code in langs:
                if code in counts:
                    counts[code] += seen / len(langs)
        if hits >= _MIN_HITS:
            ranked = sorted(counts, key=counts.__getitem__, reverse=True)
            best, second = ranked[0], counts[ranked[1]] if len(ranked) > 1 else 0.0
            # Shared words ("una", "que") split their vote, so compare with the runner-up.
            # Nothing when every function word seen belongs to languages not configured.
            share = counts[best] / (counts[best] + second) if counts[best] else 0.0
            if share >= _MIN_SHARE:
                if known in counts and known != best and counts[known] >= counts[best] * 0.9:
                    best = known
                return LanguageGuess(best, round(min(0.99, share), 3), "function_words")
        return self._lingua(text, known)

    def _lingua(self, text: str, known: str | None) -> LanguageGuess:
        sample = text[:_LINGUA_CHARS]
        if not any(ch.isalpha() for ch in sample):
            if known in self.languages:
                return LanguageGuess(known, 0.5, "customer")
            return LanguageGuess(UNDETERMINED, 0.0, "none")
        values = self._detector.compute_language_confidence_values(sample)
        if not values:
            return LanguageGuess(known or UNDETERMINED, 0.5 if known else 0.0, "customer")
        best = values[0]
        code, confidence = _CODES[best.language], best.value
        if known in self.languages and known != code:
            for value in values:
                if _CODES[value.language] == known and confidence - value.value <= _TIE_MARGIN:
                    return LanguageGuess(known, round(value.value, 3), "customer_tiebreak")
        return LanguageGuess(code, round(confidence, 3), "lingua")
