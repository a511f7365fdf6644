"""Sentiment and anger in Spanish and English from lexicons, negation, and typography.

A lexicon is transparent (an agent can be told which words counted) and fast; anger leans on
what a model trained on polite text misses: insults, threats, shouting in capitals, "!!!", 😡.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from omniroute.classifier.text import phrase_pattern
from omniroute.shared.events import Sentiment

# Folded (lowercase, no accents) forms; prefixes end in "*".
_POSITIVE = """
gracias agradezco agradecido agradecida genial perfecto perfecta excelente encantado encantada
contento contenta feliz satisfecho satisfecha maravilloso maravillosa estupendo estupenda
fantastico fantastica rapido rapida amable amables bien buen buena buenisimo resuelto solucionado
recomiendo encanta encanto me_gusta increible
thanks thank thankful great perfect excellent happy pleased satisfied wonderful amazing awesome
fantastic fast quick helpful kind love loved good nice resolved solved recommend appreciate
appreciated brilliant superb glad
"""
_NEGATIVE = """
mal malo mala pesimo pesima horrible terrible fatal desastre decepcionado decepcionada
decepcion enfadado enfadada enfadadisimo cabreado cabreada harto harta molesto molesta
indignado indignada inaceptable vergonzoso vergonzosa verguenza lamentable queja reclamacion
problema problemas roto rota estropeado defectuoso defectuosa nunca tarde retraso sigo todavia
cobrado cobro error fallo falla timo estafa estafado engano abusivo abusivos triste
bad worse worst awful terrible horrible disappointed disappointing angry annoyed upset furious
frustrated frustrating unacceptable ridiculous disgrace disgraceful shameful complaint problem
problems broken damaged defective faulty never late delay delayed still overcharged error
scam scammed rip ripped useless poor pathetic sad wrong fail failed failure
"""
_INSULTS = """
idiota idiotas imbecil imbeciles estupido estupida estupidos inutil inutiles incompetente
incompetentes ladron ladrones ladrones estafador estafadores sinverguenza sinverguenzas
basura mierda joder jodido jodida puta puto putos cabron cabrones gilipollas capullo
payaso payasos chorizos tontos subnormal
idiot idiots moron morons stupid incompetent thief thieves crook crooks scammer scammers
garbage trash crap shit shitty fuck fucking fucked bullshit bastard bastards asshole assholes
clowns pathetic dumb jerk jerks damn
"""
_THREATS = (
    "os voy a denunciar",
    "les voy a denunciar",
    "voy a denunciar",
    "te vas a enterar",
    "os vais a enterar",
    "me las vais a pagar",
    "lo vais a pagar",
    "voy a ir a la tienda",
    "voy a destrozar",
    "os voy a destrozar",
    "you will pay",
    "you'll pay for this",
    "you will regret",
    "you'll regret",
    "i will destroy",
    "i'll destroy",
    "i will sue",
    "i'll sue",
    "see you in court",
    "im going to sue",
    "i'm going to sue",
)
_NEGATORS = frozenset(
    [
        "no",
        "nunca",
        "tampoco",
        "ni",
        "nada",
        "nadie",
        "sin",
        "jamas",
        "not",
        "never",
        "no",
        "nor",
        "without",
        "isn't",
        "wasn't",
        "don't",
        "doesn't",
        "didn't",
        "can't",
        "cannot",
        "won't",
        "hardly",
        "nothing",
        "nobody",
    ]
)
_INTENSIFIERS = frozenset(
    [
        "muy",
        "super",
        "tan",
        "totalmente",
        "absolutamente",
        "very",
        "so",
        "really",
        "extremely",
        "totally",
    ]
)

_POS_WORDS = frozenset(w.replace("_", " ") for w in _POSITIVE.split())
_NEG_WORDS = frozenset(_NEGATIVE.split())
_INSULT_WORDS = frozenset(_INSULTS.split())
_NEGATIVE_PHRASES = (
    "no ha llegado",
    "no me ha llegado",
    "no llega",
    "no funciona",
    "no me gusta",
    "sigo esperando",
    "todavia no",
    "aun no",
    "nadie me",
    "ni caso",
    "hasn't arrived",
    "has not arrived",
    "never arrived",
    "didn't arrive",
    "not arrived",
    "doesn't work",
    "does not work",
    "not working",
    "still waiting",
    "still haven't",
    "nobody",
    "no one",
    "not happy",
    "not good enough",
    "waste of",
)

_ANGRY_EMOJI = frozenset("😡🤬😠👎💩😤🖕")
_SAD_EMOJI = frozenset("😢😭😞😔☹🙁😩😫")
_HAPPY_EMOJI = frozenset("😀😃😄😁😊🙂😍🥰👍🙏❤💯👏😉🎉")
_REPEATED_PUNCT = re.compile(r"[!?¡¿]{2,}")
_CAPS_WORD = re.compile(r"\b[A-ZÁÉÍÓÚÑ]{3,}\b")
# Long texts are scored on their opening: where customers put what they feel.
_SCAN_CHARS = 4000


@dataclass(frozen=True, slots=True)
class SentimentAnalysis:
    label: Sentiment
    score: float
    anger: float
    abusive: bool
    cues: list[str] = field(default_factory=list)


def analyse(text: str, tokens: Sequence[str]) -> SentimentAnalysis:
    """Score sentiment (-1..1) and anger (0..1) from the raw text and its folded tokens."""
    cues: list[str] = []
    pos = neg = 0.0
    insults = 0
    negate_until = -1
    boost = 1.0
    for index, token in enumerate(tokens):
        if token in _NEGATORS:
            negate_until = index + 3
            continue
        if token in _INTENSIFIERS:
            boost = 1.5
            continue
        weight = boost
        boost = 1.0
        if token in _INSULT_WORDS:
            insults += 1
            neg += 1.5
            continue
        polarity = 1 if token in _POS_WORDS else -1 if token in _NEG_WORDS else 0
        if polarity == 0:
            continue
        if index <= negate_until:
            # "no estoy contento" is negative; "no es un problema" is merely not negative.
            if polarity < 0:
                continue
            polarity = -polarity
        if polarity > 0:
            pos += weight
        else:
            neg += weight

    raw = text[:_SCAN_CHARS]
    joined = " ".join(tokens)
    threat = phrase_pattern(_THREATS).search(joined) is not None
    neg += 0.8 * len(phrase_pattern(_NEGATIVE_PHRASES).findall(joined))
    angry_emoji = sum(1 for ch in raw if ch in _ANGRY_EMOJI)
    sad_emoji = sum(1 for ch in raw if ch in _SAD_EMOJI)
    happy_emoji = sum(1 for ch in raw if ch in _HAPPY_EMOJI)
    neg += angry_emoji + 0.7 * sad_emoji
    pos += 0.8 * happy_emoji
    punct = len(_REPEATED_PUNCT.findall(raw))
    caps = _shouting(raw)

    total = pos + neg
    score = 0.0 if total == 0 else (pos - neg) / (total + 1.0)
    score = max(-1.0, min(1.0, score))
    anger_raw = (
        1.2 * insults
        + 1.5 * threat
        + 0.8 * angry_emoji
        + 0.35 * min(punct, 3)
        + 0.9 * caps
        + 0.25 * max(0.0, neg - pos)
    )
    anger = 1.0 - math.exp(-anger_raw / 1.5) if anger_raw > 0 else 0.0
    if insults:
        cues.append("insult")
    if threat:
        cues.append("threat")
    if caps:
        cues.append("all_caps")
    if punct:
        cues.append("repeated_punctuation")
    if angry_emoji:
        cues.append("angry_emoji")
    if score <= -0.2 or (anger >= 0.5 and score < 0.2):
        label = Sentiment.NEGATIVE
        score = min(score, -0.2)
    elif score >= 0.2:
        label = Sentiment.POSITIVE
    else:
        label = Sentiment.NEUTRAL
    return SentimentAnalysis(
        label=label,
        score=round(score, 3),
        anger=round(anger, 3),
        abusive=insults > 0 or threat,
        cues=cues,
    )


def _shouting(raw: str) -> float:
    """1.0 for a message in capitals, partial for several shouted words."""
    letters = [ch for ch in raw[:1000] if ch.isalpha()]
    if len(letters) >= 12:
        upper = sum(1 for ch in letters if ch.isupper())
        if upper / len(letters) >= 0.7:
            return 1.0
    shouted = len(_CAPS_WORD.findall(raw[:1000]))
    return 0.5 if shouted >= 3 else 0.0
