"""Payment-card redaction, applied before a contact is published or stored.

It lives in shared because it is a contract: no stage may put a card number on the bus or in
the database. The classifier's fuller personal-data detection builds on it.
"""

from __future__ import annotations

import re

# 13-19 digits, optionally grouped by single spaces or dashes (e.g. 4111 1111-1111 1111). It
# opens with the digit and checks what precedes it with a lookbehind placed after that digit,
# so the regex engine skips ahead to digits instead of trying every position.
_CARD_CANDIDATE = re.compile(r"\d(?<![\d-]\d)(?:[ -]?\d){12,18}(?![\d-])")
# A 3-4 digit code near card words: CVV, CVC, CSC, "código de seguridad"...
_CVV = re.compile(
    r"(?i)\b(cvv2?|cvc2?|csc|cid|c[oó]digo\s+de\s+seguridad|security\s+code)\b"
    r"(\s*(?:is|es|:|=|-)?\s*)(\d{3,4})\b"
)

_HAS_DIGIT = re.compile(r"\d")
# Every label _CVV knows holds one of these once lowered ("c[oó]digo" holds "digo"): substring
# tests in C are far cheaper than trying its case-insensitive alternation at every position.
_CVV_LABEL_WORDS = ("cvv", "cvc", "csc", "cid", "digo", "security")
_ASCII_DIGITS = b"0123456789"
# Letters that IGNORECASE matching equates with an ASCII letter of those words but that
# str.lower() does not turn into it: dotless i, dotted capital I, long s.
_ODD_CASES = {"\u0131": "i", "\u0130": "i", "\u017f": "s"}
_ODD_CASES_TABLE = str.maketrans(_ODD_CASES)

CARD_MASK = "[CARD]"
CVV_MASK = "[CVV]"


# A digit's Luhn value when doubled, as the ASCII digit: "0".."9" -> 0 2 4 6 8 1 3 5 7 9.
_DOUBLED = bytes.maketrans(b"0123456789", b"0246813579")


def luhn_valid(digits: str) -> bool:
    if digits.isascii() and digits.isdigit():
        # Summed in C: the digits in odd places from the right, then the doubled ones.
        raw = digits.encode("ascii")
        doubled = raw[-2::-2].translate(_DOUBLED)
        return (sum(raw[-1::-2]) + sum(doubled) - 48 * len(raw)) % 10 == 0
    total = 0
    for index, char in enumerate(reversed(digits)):
        value = ord(char) - 48
        if index % 2 == 1:
            value *= 2
            if value > 9:
                value -= 9
        total += value
    return total % 10 == 0


def redact_cards(text: str) -> tuple[str, list[str]]:
    """Return the text with Luhn-valid card numbers and CVV codes masked, and the kinds found."""
    may_hold_card, may_hold_cvv = _what_it_may_hold(text)
    return _redact(text, cards=may_hold_card, cvvs=may_hold_cvv)


def _redact(text: str, *, cards: bool, cvvs: bool) -> tuple[str, list[str]]:
    kinds: list[str] = []
    if not (cards or cvvs):
        return text, kinds

    def card(match: re.Match[str]) -> str:
        digits = match.group(0).replace(" ", "").replace("-", "")
        if 13 <= len(digits) <= 19 and luhn_valid(digits):
            if "card_number" not in kinds:
                kinds.append("card_number")
            return CARD_MASK
        return match.group(0)

    def cvv(match: re.Match[str]) -> str:
        if "cvv" not in kinds:
            kinds.append("cvv")
        return f"{match.group(1)}{match.group(2)}{CVV_MASK}"

    if cards:
        text = _CARD_CANDIDATE.sub(card, text)
    if cvvs:
        text = _CVV.sub(cvv, text)
    return text, kinds


def _what_it_may_hold(text: str) -> tuple[bool, bool]:
    """(a card number, a CVV): False only where the regexes cannot match.

    Most texts hold neither, and running the regexes to find that out costs more than the rest
    of the gateway's own work on a contact (the engine tests every character of the text).
    A Latin-1 text holds no decimal digits but 0-9 (what \\d matches), so its digits are
    counted in C over its bytes: a card needs 13, a CVV 3 and a label, found in the text
    lowered as IGNORECASE would find it (the odd cases below are outside Latin-1). Any other
    text takes the general check.
    """
    try:
        raw = text.encode("latin-1")
    except UnicodeEncodeError:
        return True, _may_hold_cvv(text)
    digits = len(raw) - len(raw.translate(None, _ASCII_DIGITS))
    if digits < 3:
        return False, False
    # bytes.lower() lowers ASCII letters only, in C, where str.lower() of a text with accents
    # goes character by character; the labels are ASCII.
    lowered = raw.lower().decode("latin-1")
    return digits >= 13, any(map(lowered.__contains__, _CVV_LABEL_WORDS))


def _may_hold_cvv(text: str) -> bool:
    """False only where _CVV cannot match: no digit, or none of its labels' words."""
    if _HAS_DIGIT.search(text) is None:
        return False
    lowered = text.lower()
    if not text.isascii() and any(map(text.__contains__, _ODD_CASES)):
        lowered = text.translate(_ODD_CASES_TABLE).lower()
    return any(map(lowered.__contains__, _CVV_LABEL_WORDS))
