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
_EMAIL_LOCAL = re.compile(r"[\w.+-]+$")
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
_DNI = re.compile(r"(\d(?<![A-Za-z0-9]\d)\d{7})[ -]?([A-Za-z])(?![A-Za-z0-9])")
_NIE = re.compile(r"([XYZxyz])(?<![A-Za-z0-9][XYZxyz])[ -]?(\d{7})[ -]?([A-Za-z])(?![A-Za-z0-9])")
_PHONE = re.compile(r"([+(\d](?<![\w+][+(\d])[\d ().-]{6,18}\d)(?!\w)")
_DIGIT = re.compile(r"\d")
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
    digits = re.sub(r"\D", "", candidate)
    if not 9 <= len(digits) <= 15:
        return False
    if candidate.startswith("+") or candidate.startswith("00"):
        return True
    # National formats we can tell from other numbers: Spanish 6/7/8/9 + 8 digits, NANP 10.
    if len(digits) == 9 and digits[0] in "6789":
        return True
    return len(digits) in (10, 11) and bool(re.search(r"[ ().-]", candidate))


@dataclass(frozen=True, slots=True)
class PiiResult:
    text: str
    kinds: list[str]


class PiiRedactor:
    """Finds personal data; masks the kinds in `redact` (cards and CVVs always)."""

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
        if _DIGIT.search(text) is None:
            return PiiResult(text, kinds)
        # IBANs before cards: an IBAN's digits can look like a Luhn-valid card by chance.
        text = _IBAN.sub(
            lambda m: found(IBAN, m.group(0)) if iban_valid(m.group(0)) else m.group(0), text
        )
        text = _CARD.sub(self._card(found), text)
        lowered = text.lower()
        if any(word in lowered for word in _CVV_WORDS):
            text = _CVV_LABELLED.sub(
                lambda m: f"{m.group(1)}{m.group(2)}{found(CVV, m.group(3))}", text
            )
        text = _PHONE.sub(
            lambda m: found(PHONE, m.group(0)) if _phone_like(m.group(1)) else m.group(0), text
        )
        text = _bare_cvvs(text, lowered, found)
        # Both need seven digits in a row: most messages have none, and "x", "y" and "z" (which
        # open a NIE) are common letters.
        if _SEVEN_DIGITS.search(text) is not None:
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
            digits = re.sub(r"[ -]", "", match.group(0))
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                return found(CARD, match.group(0))
            return match.group(0)

        return card


def _emails(text: str, found: Callable[[str, str], str]) -> str:
    """Mask addresses found around each "@", rather than scanning every word for one."""
    out: list[str] = []
    last = 0
    at = text.find("@")
    while at != -1:
        local = _EMAIL_LOCAL.search(text, max(last, at - 64), at)
        domain = _EMAIL_DOMAIN.match(text, at)
        if local is not None and domain is not None:
            out.append(text[last : local.start()])
            out.append(found(EMAIL, text[local.start() : domain.end()]))
            last = domain.end()
            at = text.find("@", last)
        else:
            at = text.find("@", at + 1)
    out.append(text[last:])
    return "".join(out)


def _bare_cvvs(text: str, lowered: str, found: Callable[[str, str], str]) -> str:
    anchors: list[int] = []
    at = text.find(CARD_MASK)
    while at != -1:
        anchors.append(at + len(CARD_MASK))
        at = text.find(CARD_MASK, at + 1)
    if any(word in lowered for word in ("cad", "exp", "valid")):
        anchors.extend(match.end() for match in _EXPIRY.finditer(text))
    spans = sorted(
        {m.span(1) for a in anchors if (m := _CODE_AFTER.match(text, a)) is not None},
        reverse=True,
    )
    for start, end in spans:
        text = text[:start] + found(CVV, text[start:end]) + text[end:]
    return text
