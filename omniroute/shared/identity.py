"""Canonical forms of customer identities, so every stage recognises one person the same way.

Phone numbers go to E.164 with `phonenumbers` (libphonenumber's rules, not a regex of ours),
national ones in the deployment's default region (OMNIROUTE_DEFAULT_PHONE_REGION).
"""

from __future__ import annotations

import functools

import phonenumbers

# Numbers longer than this without a "+" are taken as international numbers that lost it
# (WhatsApp ids, some providers' caller ids): no national number plan is longer.
LONGEST_NATIONAL_DIGITS = 10


@functools.cache
def default_region() -> str | None:
    """Where a number without a country code is read (OMNIROUTE_DEFAULT_PHONE_REGION)."""
    from omniroute.shared.settings import AppSettings

    return AppSettings().default_phone_region


def normalise_email(value: str | None) -> str | None:
    if not value:
        return None
    cleaned = value.strip().strip("<>").strip()
    if "@" not in cleaned:
        return None
    return cleaned.lower()


def normalise_phone(value: str | None, *, international: bool = False) -> str | None:
    """E.164 ("+34600111222"), or None when it is not a possible number: the one phone policy
    of every channel, the contacts API and customer lookups, so one person's number is one
    identity wherever it came from.

    "+..." is international (a possible number: plans change faster than libraries). A number
    without a country code is read in the default region (`default_region()`) when it is a
    valid number there; with no region, or not valid there, a string of more than
    LONGEST_NATIONAL_DIGITS digits is taken as an international number without its "+", and
    anything shorter is refused rather than guessed (a wrong guess would merge two people).
    `international=True` is for provider ids known to be international (WhatsApp's wa_id).
    WhatsApp and tel: prefixes are dropped.
    """
    if not value:
        return None
    raw = value.strip().removeprefix("whatsapp:").removeprefix("tel:").strip()
    digits = "".join(ch for ch in raw if ch.isdigit())
    if not digits:
        return None
    if raw.startswith("+") or international:
        return _possible("+" + digits, None)
    region = default_region()
    if region:
        # A guessed country must be right, not merely the right length: a valid number there.
        national = _possible(raw, region, valid=True)
        if national is not None:
            return national
    if len(digits) > LONGEST_NATIONAL_DIGITS:
        return _possible("+" + digits, None)
    return None


def _possible(candidate: str, region: str | None, *, valid: bool = False) -> str | None:
    try:
        number = phonenumbers.parse(candidate, region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_possible_number(number):
        return None
    if valid and not phonenumbers.is_valid_number(number):
        return None
    return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)


def normalise_handle(value: str | None) -> str | None:
    """Social handles compare without the leading @ and case-insensitively."""
    if not value:
        return None
    cleaned = value.strip().lstrip("@").strip()
    return cleaned.lower() or None
