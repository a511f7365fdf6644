"""Sentiment and anger in Spanish and English from lexicons, negation, and typography.

A lexicon is transparent (an agent can be told which words counted) and fast; anger leans on
what a model trained on polite text misses: insults, threats, shouting in capitals, "!!!", 😡.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

from omniroute.classifier.pii import MASKS
from omniroute.classifier.text import LEXICON, PhraseMatcher, Tokens, as_tokens
from omniroute.shared.events import Sentiment

# Folded (lowercase, no accents) forms; prefixes end in "*".
_POSITIVE = """
agradezco agradecido agradecida genial perfecto perfecta excelente encantado encantada
contento contenta feliz satisfecho satisfecha maravilloso maravillosa estupendo estupenda
fantastico fantastica rapido rapida amable amables bien buen buena buenisimo resuelto solucionado
recomiendo encanta encanto facil
thankful great perfect excellent happy pleased satisfied wonderful amazing awesome
fantastic fast quick helpful kind love loved good nice resolved solved sorted recommend appreciate
appreciated brilliant superb glad easy easier
"""
# Courtesy closes requests as often as it praises ("¿me mandáis la factura? Gracias"), so on its
# own it is weak; "muchas gracias", "thanks so much" count as praise (see _PRAISE).
_COURTESY = frozenset(["gracias", "thanks", "thank", "thx", "cheers", "saludos", "regards"])
_COURTESY_WEIGHT = 0.3
_NEGATIVE = """
mal malo mala pesimo pesima horrible terrible fatal desastre decepcionado decepcionada
decepcion enfadado enfadada enfadadisimo cabreado cabreada harto harta molesto molesta
indignado indignada inaceptable vergonzoso vergonzosa verguenza lamentable queja reclamacion
problema problemas roto rota estropeado defectuoso defectuosa nunca tarde retraso sigo todavia
cobrado cobro error fallo falla timo estafa estafado engano abusivo abusivos triste
bad worse worst awful terrible horrible disappointed disappointing angry annoyed upset furious
frustrated frustrating unacceptable ridiculous disgrace disgraceful shameful complaint problem
problems broken damaged defective faulty never late delay delayed still overcharged error
scam scammed rip ripped useless poor pathetic sad wrong fail failed failure broke complain
complaining quejarme reclamar
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
# From 1, so that a word's kind is truthy and None (not in the lexicon) is not.
_POSITIVE_WORD, _NEGATIVE_WORD, _INSULT, _COURTESY_KIND, _INTENSIFIER, _NEGATOR = range(1, 7)
# One lookup per token; later kinds win, so a negator is never read as a negative word.
_LEXICON: dict[str, int] = {}
for _kind, _words in (
    (_POSITIVE_WORD, _POS_WORDS),
    (_NEGATIVE_WORD, _NEG_WORDS),
    (_INSULT, _INSULT_WORDS),
    (_INTENSIFIER, _INTENSIFIERS),
    (_NEGATOR, _NEGATORS),
    (_COURTESY_KIND, _COURTESY),
):
    _LEXICON.update(dict.fromkeys(_words, _kind))
# The same by the word's id in the shared lexicon (0 for its other words).
_KIND_BY_ID = LEXICON.column(_LEXICON, 0)

_PRAISE = (
    "muchas gracias",
    "mil gracias",
    "muchisimas gracias",
    "gracias de verdad",
    "thank you so much",
    "thanks so much",
    "thanks a lot",
    "many thanks",
    "thank you very much",
    "un 10",
    "10/10",
    "de 10",
)
_NEGATIVE_PHRASES = (
    "no puedo",
    "no consigo",
    "no me deja",
    "no aparece",
    "no veo",
    "no conecta",
    "no carga",
    "sigue sin",
    "sin respuesta",
    "sin mi permiso",
    "nadie contesta",
    "nadie responde",
    "can't",
    "cannot",
    "won't",
    "couldn't",
    "doesn't work",
    "no refund",
    "not received",
    "no reply",
    "no answer",
    "without my permission",
    "nobody replies",
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
    "dos cobros",
    "dos cargos",
    "cobrado dos veces",
    "cobros duplicados",
    "two charges",
    "identical charges",
    "charged twice",
    "double charged",
    "doesn't appear",
    "se rompio",
    "se ha roto",
    "se cierra",
    "cierra sola",
    "closes by itself",
    "keeps crashing",
    "si no me solucionais",
    "si no lo arreglais",
    "si no me lo arreglais",
    "if you don't fix",
    "if this isn't fixed",
    "if this is not fixed",
    "nadie conteste",
    "nadie me conteste",
)

# Exasperation: not insults, but a customer past the point of patience ("third time I call").
_EXASPERATION = (
    "harto",
    "harta",
    "hasta las narices",
    "hasta el gorro",
    "cabreado",
    "cabreada",
    "furioso",
    "furiosa",
    "indignado",
    "indignada",
    "indignante",
    "verguenza",
    "vergonzoso",
    "porqueria",
    "timado",
    "timo",
    "estafa",
    "estafado",
    "inaceptable",
    "es una broma",
    "gracias por nada",
    "otra vez sin",
    "otra vez me",
    "de nuevo sin",
    "tercera vez",
    "cuarta vez",
    "quinta vez",
    "nunca mas",
    "furious",
    "outraged",
    "outrageous",
    "disgusted",
    "disgusting",
    "ridiculous",
    "unacceptable",
    "this is a joke",
    "what a joke",
    "thanks for nothing",
    "fed up",
    "sick of",
    "sick and tired",
    "third time",
    "fourth time",
    "fifth time",
    "yet again",
    "never again",
    "worst",
)
PHRASES = PhraseMatcher(
    {
        "threat": _THREATS,
        "negative": _NEGATIVE_PHRASES,
        "praise": _PRAISE,
        "exasperation": _EXASPERATION,
    }
)
_ANGRY_EMOJI = "😡🤬😠👎💩😤🖕"
_SAD_EMOJI = "😢😭😞😔☹🙁😩😫"
_HAPPY_EMOJI = "😀😃😄😁😊🙂😍🥰👍🙏❤💯👏😉🎉"
_EMOJI = re.compile(f"[{_ANGRY_EMOJI}{_SAD_EMOJI}{_HAPPY_EMOJI}]")
_UPPER_LETTERS = "ABCDEFGHIJKLMNOPQRSTUVWXYZÁÉÍÓÚÜÑÇ"
_UPPER = re.compile(f"[{_UPPER_LETTERS}]")
_PUNCTUATION = "!?¡¿"
_REPEATED_PUNCT = re.compile(f"[{_PUNCTUATION}]{{2,}}")
# Opens with the character class (a lookbehind then checks the word start), so the engine can
# skip to capitals instead of testing a word boundary at every position: 3x faster.
_CAPS_WORD = re.compile(r"[A-ZÁÉÍÓÚÑ](?<!\w[A-ZÁÉÍÓÚÑ])[A-ZÁÉÍÓÚÑ]{2,}\b")
_CAPS = "ABCDEFGHIJKLMNOPQRSTUVWXYZÁÉÍÓÚÑ"  # what _CAPS_WORD takes


def _mark(char: str) -> str:
    if char in _CAPS:
        return "A"
    if char in _UPPER_LETTERS:
        return "B"  # a capital that _CAPS_WORD does not take (Ü, Ç)
    if char in _PUNCTUATION:
        return "!"
    # What else `\w` matches; the rest is a space.
    return "w" if char.isalnum() or char == "_" else " "


# Per Latin-1 character, its mark: C-level searches of the marked copy then stand in for the
# regex scans of the text, whose character classes cost a lookup per character.
_MARK_TABLE = "".join(_mark(chr(byte)) for byte in range(256)).encode("ascii")
# In the marked copy: _REPEATED_PUNCT's matches, and _CAPS_WORD's (three or more capitals
# taken by it, with no word character on either side). Both open on a literal, which the
# engine finds with a fast scan.
_REPEATED_MARKS = re.compile(rb"!!+")
_CAPS_WORD_MARKS = re.compile(rb"AAA(?<![ABw]AAA)A*(?![ABw])")
# Long texts are scored on their opening: where customers put what they feel.
_SCAN_CHARS = 4000
# The redactor's masks ("[CARD]", "[PHONE]"...) are capitals the customer never typed: they
# must not make a redacted message shout.
# Every mask is a bracketed name; the literal "[" lets the engine skip to candidates.
_MASK = re.compile(
    r"\[(?:" + "|".join(sorted({mask.strip("[]") for mask in MASKS.values()})) + r")\]"
)


@dataclass(frozen=True, slots=True)
class SentimentAnalysis:
    label: Sentiment
    score: float
    anger: float
    abusive: bool
    cues: list[str] = field(default_factory=list)


def analyse(text: str, tokens: Tokens | Sequence[str]) -> SentimentAnalysis:
    """Score sentiment (-1..1) and anger (0..1) from the raw text and its folded tokens."""
    cues: list[str] = []
    view = as_tokens(tokens)
    pos = neg = 0.0
    insults = 0
    # The lexicon's words among the words (one shared lookup per word), and their kinds here.
    positions, ids = view.lexicon()
    by_id = _KIND_BY_ID.values
    strongest = 0
    for word_id in ids:
        strongest = max(strongest, by_id[word_id])
    if strongest < _INTENSIFIER:
        # No negation or intensifier: every hit counts as it is, no need to walk positions.
        # Counted per word in the order words first come (the sums below follow it).
        counts: dict[int, int] = {}
        for word_id in ids:
            if by_id[word_id]:
                counts[word_id] = counts.get(word_id, 0) + 1
        for word_id, seen in counts.items():
            kind = by_id[word_id]
            if kind == _POSITIVE_WORD:
                pos += seen
            elif kind == _COURTESY_KIND:
                pos += _COURTESY_WEIGHT * seen
            elif kind == _NEGATIVE_WORD:
                neg += seen
            else:
                insults += seen
                neg += 1.5 * seen
    else:
        # Walked only where a word has a kind.
        negate_until = boosted = -1
        for index, word_id in zip(positions, ids, strict=True):
            kind = by_id[word_id]
            if not kind:
                continue
            if kind == _NEGATOR:
                negate_until = index + 3
                continue
            if kind == _INTENSIFIER:
                boosted = index + 1
                continue
            if kind == _INSULT:
                insults += 1
                neg += 1.5
                continue
            weight = 1.5 if index == boosted else 1.0
            if kind == _COURTESY_KIND:
                pos += _COURTESY_WEIGHT
                continue
            positive = kind == _POSITIVE_WORD
            if index <= negate_until:
                # "no estoy contento" is negative; "no es un problema" is merely not negative.
                if not positive:
                    continue
                positive = False
            if positive:
                pos += weight
            else:
                neg += weight

    raw = text[:_SCAN_CHARS]
    masked_letters = 0
    if "[" in raw:
        # Each mask becomes one space: its brackets already kept it apart from its neighbours.
        unmasked, masks = _MASK.subn(" ", raw)
        if masks:
            masked_letters = len(raw) - len(unmasked) - masks
            raw = unmasked
    phrases = PHRASES.counts(view)
    threat = "threat" in phrases
    exasperation = phrases.get("exasperation", 0)
    neg += 0.8 * phrases.get("negative", 0) + exasperation
    pos += phrases.get("praise", 0)
    marks = _marks(raw)
    if marks is not None:
        # Latin-1 has no emojis, and the marked copy answers the rest.
        angry_emoji = sad_emoji = happy_emoji = 0
        punct = len(_REPEATED_MARKS.findall(marks)) if b"!!" in marks else 0
        upper = marks.count(b"A") + marks.count(b"B")
    else:
        emojis = _EMOJI.findall(raw)
        angry_emoji = sum(ch in _ANGRY_EMOJI for ch in emojis)
        sad_emoji = sum(ch in _SAD_EMOJI for ch in emojis)
        happy_emoji = len(emojis) - angry_emoji - sad_emoji
        punct = len(_REPEATED_PUNCT.findall(raw))
        upper = len(_UPPER.findall(raw))
    neg += angry_emoji + 0.7 * sad_emoji
    pos += 0.8 * happy_emoji
    caps = _shouting(raw, view, upper, marks, masked_letters)

    total = pos + neg
    score = 0.0 if total == 0 else (pos - neg) / (total + 1.0)
    score = max(-1.0, min(1.0, score))
    anger_raw = (
        1.2 * insults
        + 1.5 * threat
        + 0.8 * angry_emoji
        + 0.35 * min(punct, 3)
        + 0.9 * caps
        + 0.6 * min(exasperation, 3)
        # Negativity alone is not anger: it adds a little, however long the message.
        + 0.25 * min(max(0.0, neg - pos), 3.0)
    )
    anger = 1.0 - math.exp(-anger_raw / 1.5) if anger_raw > 0 else 0.0
    if insults:
        cues.append("insult")
    if exasperation:
        cues.append("exasperation")
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
    elif score >= 0.25:
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


def _marks(raw: str) -> bytes | None:
    """A Latin-1 text with its capitals as "A" (or "B" for Ü, Ç), "!?¡¿" as "!", other word
    characters as "w" and the rest as spaces; None for other texts."""
    try:
        return raw.encode("latin-1").translate(_MARK_TABLE)
    except UnicodeEncodeError:
        return None


def _shouting(
    raw: str, tokens: Tokens, upper: int, marks: bytes | None, masked_letters: int
) -> float:
    """1.0 for a message in capitals, partial for several shouted words.

    `raw` is the text without the redactor's masks, whose words are among the tokens: their
    `masked_letters` do not count as the customer's letters.
    """
    if upper < 9:
        return 0.0
    # The letters of the words: their spaced form less its spaces (one per word, and one).
    letters = len(tokens.spaced()) - len(tokens) - 1 - masked_letters if len(tokens) else 0
    if letters >= 12 and upper / letters >= 0.7:
        return 1.0
    if marks is None:
        shouted = len(_CAPS_WORD.findall(raw))
    elif b"AAA" in marks:
        shouted = len(_CAPS_WORD_MARKS.findall(marks))
    else:
        return 0.0
    return 0.5 if shouted >= 3 else 0.0
