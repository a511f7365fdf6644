"""Personal-data detection and redaction on top of the shared card/CVV contract.

Card numbers and CVVs are always masked; the other kinds are masked unless the caller keeps
them (an agent may need the phone number the customer asked to be called on).
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from omniroute.shared.pii import CARD_MASK, CVV_MASK, luhn_valid

CARD = "card_number"
CVV = "cvv"
IBAN = "iban"
DNI = "dni"
NIE = "nie"
EMAIL = "email"
PHONE = "phone"

ALL_KINDS = (CARD, CVV, IBAN, DNI, NIE, EMAIL, PHONE)
ALWAYS_REDACTED = frozenset({CARD, CVV})

MASKS = {
    CARD: CARD_MASK,
    CVV: CVV_MASK,
    IBAN: "[IBAN]",
    DNI: "[DNI]",
    NIE: "[NIE]",
    EMAIL: "[EMAIL]",
    PHONE: "[PHONE]",
}

# Patterns open with a character class and check what precedes it with a lookbehind placed
# after that first character, so the regex engine can skip ahead to candidate characters
# instead of trying every position of a long e-mail.
_EMAIL_DOMAIN = re.compile(r"@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}")
# Upper case in groups of four, as IBANs are printed; the checksum decides.
_IBAN = re.compile(
    r"[A-Z](?<![A-Za-z0-9][A-Z])[A-Z]\d{2}(?:[ -]?[A-Z0-9]{4}){2,7}(?:[ -]?[A-Z0-9]{1,4})?"
    r"(?![A-Za-z0-9])"
)
_CARD = re.compile(r"\d(?<![\d-]\d)(?:[ -]?\d){12,18}(?![\d-])")
# Cheap substring checks that gate the slower labelled-CVV pattern.
_CVV_WORDS: tuple[str, ...] = ("cvv", "cvc", "csc", "cid ", "cid:", "digo de", "security code")
_CVV_WORDS += ("verification code", "digits", "gitos", "de atr")
_CVV_LABELLED = re.compile(
    r"(?i)\b(cvv2?|cvc2?|csc|cid|c[oó]digo\s+de\s+seguridad|security\s+code|"
    r"c[oó]digo\s+de\s+verificaci[oó]n|verification\s+code|n[uú]mero\s+de\s+atr[aá]s|"
    r"(?:3|three|tres)\s+(?:digits?|d[ií]gitos))\b([^\d\n]{0,20}?)(\d{3,4})\b"
)
# A lone code shortly after a masked card number or its expiry date ("caduca 04/27 ... 123").
# Each word opens with its letter and checks the word start with a lookbehind after it, so the
# engine skips to c/e/v instead of testing a word boundary at every position.
_EXPIRY = re.compile(
    r"(?i)(?:c(?<!\w.)(?:aduca\w*|aducidad)|e(?<!\w.)(?:xpir\w*|xp)|v(?<!\w.)alid\w*)"
    r"\b[^\n\d]{0,12}\d{2}\s*/\s*\d{2,4}"
)
_CODE_AFTER = re.compile(r"[^\d\n]{1,30}?(?<![\d/.,:-])(\d{3,4})(?![\d/.,:%-])")
# For Latin-1 texts, whose only decimal digits are 0-9: the same patterns with [0-9] for \d,
# which the engine tests inline instead of by a Unicode database lookup per character.
_CARD_LATIN1 = re.compile(_CARD.pattern, re.ASCII)
_CODE_AFTER_LATIN1 = re.compile(_CODE_AFTER.pattern, re.ASCII)
_CODE_REACH = 31
_DIGIT = re.compile(r"\d")
_DIGIT_LATIN1 = re.compile(r"\d", re.ASCII)
_DNI = re.compile(r"(\d(?<![A-Za-z0-9]\d)\d{7})[ -]?([A-Za-z])(?![A-Za-z0-9])")
_NIE = re.compile(r"([XYZxyz])(?<![A-Za-z0-9][XYZxyz])[ -]?(\d{7})[ -]?([A-Za-z])(?![A-Za-z0-9])")
_PHONE = re.compile(r"([+(\d](?<![\w+][+(\d])[\d ().-]{6,18}\d)(?!\w)")
# `\w` stays Unicode (accented letters are word characters): only `\d` becomes 0-9.
_PHONE_LATIN1 = re.compile(r"([+(0-9](?<![\w+][+(0-9])[0-9 ().-]{6,18}[0-9])(?!\w)")
_SEVEN_DIGITS = re.compile(r"\d{7}")
_DNI_LETTERS = "TRWAGMYFPDXBNJZSQVHLCKE"


def iban_valid(candidate: str) -> bool:
    iban = re.sub(r"[ -]", "", candidate).upper()
    if not 15 <= len(iban) <= 34 or not iban[:2].isalpha() or not iban[2:4].isdigit():
        return False
    rearranged = iban[4:] + iban[:4]
    digits = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(digits) % 97 == 1


def dni_valid(number: str, letter: str) -> bool:
    return _DNI_LETTERS[int(number) % 23] == letter.upper()


def nie_valid(prefix: str, number: str, letter: str) -> bool:
    return dni_valid(str("XYZ".index(prefix.upper())) + number, letter)


def _phone_like(candidate: str) -> bool:
    """`candidate` is what _PHONE matched: digits and the separators "+( ).-"."""
    digits = candidate.translate(_PHONE_SEPARATORS_DROPPED)
    if not 9 <= len(digits) <= 15:
        return False
    if candidate.startswith("+") or candidate.startswith("00"):
        return True
    # National formats we can tell from other numbers: Spanish 6/7/8/9 + 8 digits, NANP 10.
    if len(digits) == 9 and digits[0] in "6789":
        return True
    # Separated: past a first "+" (answered above), only " ().-" are not digits.
    return len(digits) in (10, 11) and len(digits) < len(candidate)


_PHONE_SEPARATORS_DROPPED = str.maketrans("", "", "+( ).-")


# Every kind but e-mail needs digits, and cards, phones and codes are made of digits and a few
# separators: one scan finds these runs, and each detector then reads only the runs that can
# hold what it looks for, instead of scanning the whole text once per kind.
_NUMBER_RUN = re.compile(r"\d[\d ().+/-]*")
_RUN_CHARS = frozenset(" ().+/-")
# The same runs in a Latin-1 copy with every digit as "0", every separator as "s" and the
# rest as "x": a bytes pattern opening on a literal, which the engine finds with a fast scan.
_RUN_MARKS = bytes(
    48 if 48 <= byte <= 57 else 115 if chr(byte) in _RUN_CHARS else 120 for byte in range(256)
)
# The marked runs: a digit, then digits and separators (`_number_runs` finds them by hand).
_MARKED_RUN = re.compile(rb"0[0s]*")
_ASCII_LOWER = bytes.maketrans(b"ABCDEFGHIJKLMNOPQRSTUVWXYZ", b"abcdefghijklmnopqrstuvwxyz")
_UPPER_ASCII = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZ")
_CARD_CHARS = _CARD_DIGITS = 13
_RUN_SEPARATORS_DROPPED = str.maketrans("", "", " ().+/-")
_PHONE_CHARS = 8
# The last word of every _CVV_LABELLED label: a labelled code needs one within this many
# characters before its run (a 20-character gap plus the longest tail, "verificaci").
_CVV_LABEL_TAILS: tuple[str, ...] = ("cvv", "cvc", "csc", "cid", "seguridad", "code")
_CVV_LABEL_TAILS += ("verificaci", "atr", "digit", "gitos")
_CVV_LABEL_TAIL = re.compile("(?i)" + "|".join(_CVV_LABEL_TAILS))
_CVV_LABEL_TAIL_ASCII = re.compile("|".join(_CVV_LABEL_TAILS).encode("ascii"))
_CVV_LABEL_REACH = 40
_EMAIL_LOCAL_REVERSED = re.compile(r"[\w.+-]+")
_EMAIL_LOCAL_REACH = 64
Span = tuple[int, int]


@dataclass(frozen=True, slots=True)
class PiiResult:
    text: str
    kinds: list[str]


class PiiRedactor:
    """Finds personal data; masks the kinds in `redact` (cards and CVVs always).

    The kinds are looked for one after another on the text as masked so far (IBANs before
    cards, cards before phones...), each only where its pattern can match.
    """

    def __init__(self, redact: Iterable[str] = ALL_KINDS) -> None:
        self.redact = frozenset(redact) | ALWAYS_REDACTED

    def __call__(self, text: str) -> PiiResult:
        kinds: list[str] = []
        if not text:
            return PiiResult(text, kinds)

        def found(kind: str, original: str) -> str:
            if kind not in kinds:
                kinds.append(kind)
            return MASKS[kind] if kind in self.redact else original

        if "@" in text:
            text = _emails(text, found)
        # Masks are ASCII: a Latin-1 text stays Latin-1 as it is masked.
        latin1 = _is_latin1(text)
        runs = _number_runs(text, latin1)
        if not runs:
            return PiiResult(text, kinds)
        # IBANs before cards: an IBAN's digits can look like a Luhn-valid card by chance.
        if any(start >= 2 and _iban_country_before(text, start) for start, _ in runs):
            text = _IBAN.sub(
                lambda m: found(IBAN, m.group(0)) if iban_valid(m.group(0)) else m.group(0), text
            )
            latin1 = _is_latin1(text)
            runs = _number_runs(text, latin1)
        card = self._card(found)
        # A card's 13 digits lie inside one run: runs with fewer are not tried.
        card_windows = [
            (start, end)
            for start, end in runs
            if end - start >= _CARD_CHARS
            and len(text[start:end].translate(_RUN_SEPARATORS_DROPPED)) >= _CARD_DIGITS
        ]
        changed = _substitute(text, _CARD_LATIN1 if latin1 else _CARD, card, card_windows)
        if changed is not None:
            text, runs = changed, _number_runs(changed, latin1)
        if _may_hold_labelled_cvv(text, runs, latin1):
            lowered = text.lower()
            if any(word in lowered for word in _CVV_WORDS):
                text = _CVV_LABELLED.sub(
                    lambda m: f"{m.group(1)}{m.group(2)}{found(CVV, m.group(3))}", text
                )
                runs = _number_runs(text, latin1)

        def phone(match: re.Match[str]) -> str:
            return found(PHONE, match.group(0)) if _phone_like(match.group(1)) else match.group(0)

        phone_runs = [
            r for r in _with_leading_separators(text, runs) if r[1] - r[0] >= _PHONE_CHARS
        ]
        changed = _substitute(text, _PHONE_LATIN1 if latin1 else _PHONE, phone, phone_runs)
        if changed is not None:
            text = changed
        text = _bare_cvvs(text, found, latin1)
        # Both need seven digits in a row: most messages have none, and "x", "y" and "z" (which
        # open a NIE) are common letters.
        if _has_seven_digits(text, latin1):
            text = _NIE.sub(
                lambda m: found(NIE, m.group(0)) if nie_valid(*m.groups()) else m.group(0), text
            )
            text = _DNI.sub(
                lambda m: found(DNI, m.group(0)) if dni_valid(*m.groups()) else m.group(0), text
            )
        return PiiResult(text, kinds)

    @staticmethod
    def _card(found: Callable[[str, str], str]) -> Callable[[re.Match[str]], str]:
        def card(match: re.Match[str]) -> str:
            digits = match.group(0).replace(" ", "").replace("-", "")
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                return found(CARD, match.group(0))
            return match.group(0)

        return card


def _number_runs(text: str, latin1: bool) -> list[Span]:
    """Spans that open with a digit and go on over digits and the separators numbers use.

    `latin1`: the text is Latin-1, whose only digits are 0-9: the runs are found in a marked
    byte copy (see _RUN_MARKS) instead of by a Unicode digit test per character.
    """
    if not latin1:
        # Other scripts have digits of their own, which `\\d` matches.
        return [match.span() for match in _NUMBER_RUN.finditer(text)]
    marked = text.encode("latin-1").translate(_RUN_MARKS)
    # The runs of `_MARKED_RUN` (b"0[0s]*": from a digit to the next "x"), found with two C
    # searches each instead of a regex match object per run.
    runs: list[Span] = []
    start = marked.find(b"0")
    while start != -1:
        end = marked.find(b"x", start)
        if end == -1:
            runs.append((start, len(marked)))
            break
        runs.append((start, end))
        start = marked.find(b"0", end)
    return runs


def _has_seven_digits(text: str, latin1: bool) -> bool:
    if latin1:
        return text.encode("latin-1").translate(_RUN_MARKS).find(b"0000000") != -1
    return _SEVEN_DIGITS.search(text) is not None


def _is_latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True


def _iban_country_before(text: str, start: int) -> bool:
    """An IBAN's check digits open a run right after two capital letters (its country)."""
    return text[start - 1] in _UPPER_ASCII and text[start - 2] in _UPPER_ASCII


def _with_leading_separators(text: str, runs: list[Span]) -> list[Span]:
    """Runs widened back over the separators before them: a phone may open with "+" or "("."""
    widened = []
    for start, end in runs:
        while start > 0 and text[start - 1] in _RUN_CHARS:
            start -= 1
        widened.append((start, end))
    return widened


def _substitute(
    text: str,
    pattern: re.Pattern[str],
    replace: Callable[[re.Match[str]], str],
    windows: list[Span],
) -> str | None:
    """`pattern.sub(replace, text)` where every match lies inside one of `windows`.

    A window is a run of the characters the pattern matches, so no match crosses its end; the
    scan stops one character past it so that a closing lookahead sees that character, and
    lookbehinds see the text before it (`pos` does not hide it). None when nothing changed.
    """
    if not windows:
        return None
    size = len(text)
    pieces: list[str] = []
    last = 0
    for start, end in windows:
        for match in pattern.finditer(text, start, min(size, end + 1)):
            replacement = replace(match)
            if replacement != match.group(0):
                pieces.append(text[last : match.start()])
                pieces.append(replacement)
                last = match.end()
    if not pieces:
        return None
    pieces.append(text[last:])
    return "".join(pieces)


def _may_hold_labelled_cvv(text: str, runs: list[Span], latin1: bool) -> bool:
    """A labelled code is a run of digits whose label ends at most 20 characters before it."""
    if latin1:
        # No Latin-1 character but A-Z matches an ASCII letter of a tail under IGNORECASE, so
        # an ASCII-lowered byte copy of the window tells, for accented windows too.
        for start, end in runs:
            encoded = text[max(0, start - _CVV_LABEL_REACH) : end].encode("latin-1")
            if _CVV_LABEL_TAIL_ASCII.search(encoded.translate(_ASCII_LOWER)) is not None:
                return True
        return False
    for start, end in runs:
        window = text[max(0, start - _CVV_LABEL_REACH) : end]
        if window.isascii():
            # ASCII letters match the (?i) pattern exactly when their lower case does.
            lowered = window.lower()
            if any(tail in lowered for tail in _CVV_LABEL_TAILS):
                return True
        elif _CVV_LABEL_TAIL.search(window) is not None:
            return True
    return False


def _emails(text: str, found: Callable[[str, str], str]) -> str:
    """Mask addresses found around each "@", rather than scanning every word for one."""
    out: list[str] = []
    last = 0
    at = text.find("@")
    while at != -1:
        local_start = _email_local_start(text, max(last, at - _EMAIL_LOCAL_REACH), at)
        domain = _EMAIL_DOMAIN.match(text, at)
        if local_start is not None and domain is not None:
            out.append(text[last:local_start])
            out.append(found(EMAIL, text[local_start : domain.end()]))
            last = domain.end()
            at = text.find("@", last)
        else:
            at = text.find("@", at + 1)
    out.append(text[last:])
    return "".join(out)


def _email_local_start(text: str, lowest: int, at: int) -> int | None:
    """Where the address before "@" starts: the longest run of address characters ending at the
    "@" (or at a newline just before it), read backwards from the "@" rather than by trying
    every position of the window with `[\\w.+-]+$` (whose "$" also matches before a newline)."""
    end = at - 1 if at > lowest and text[at - 1] == "\n" else at
    run = _EMAIL_LOCAL_REVERSED.match(text[lowest:end][::-1])
    return None if run is None else end - run.end()


def _bare_cvvs(text: str, found: Callable[[str, str], str], latin1: bool) -> str:
    anchors: list[int] = []
    at = text.find(CARD_MASK)
    while at != -1:
        anchors.append(at + len(CARD_MASK))
        at = text.find(CARD_MASK, at + 1)
    # An expiry date is written with a "/": most texts have none, so the word checks and the
    # expiry scan are skipped.
    if "/" in text:
        lowered = text.lower()
        if any(word in lowered for word in ("cad", "exp", "valid")):
            anchors.extend(match.end() for match in _EXPIRY.finditer(text))
    if not anchors:
        return text
    code_after, digit = (_CODE_AFTER_LATIN1, _DIGIT_LATIN1) if latin1 else (_CODE_AFTER, _DIGIT)
    # The code's first digit is the first digit after the anchor, at most _CODE_REACH - 1
    # characters on: without one there, the lazy scan of _CODE_AFTER is skipped.
    spans = sorted(
        {
            m.span(1)
            for a in anchors
            if digit.search(text, a, a + _CODE_REACH) is not None
            and (m := code_after.match(text, a)) is not None
        },
        reverse=True,
    )
    for start, end in spans:
        text = text[:start] + found(CVV, text[start:end]) + text[end:]
    return text
