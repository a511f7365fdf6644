"""Canonical forms of customer identities, so every stage recognises one person the same way.

Phone numbers go to E.164 with `phonenumbers` (libphonenumber's rules, not a regex of ours).
"""

from __future__ import annotations

import phonenumbers

DEFAULT_REGION = "ES"


def normalise_email(value: str | None) -> str | None:
    if not value:
        return None
    cleaned = value.strip().strip("<>").strip()
    if "@" not in cleaned:
        return None
    return cleaned.lower()


def normalise_phone(value: str | None, region: str | None = DEFAULT_REGION) -> str | None:
    """E.164 ("+34600111222"), or None when it is not a possible number.

    WhatsApp ids and Twilio "whatsapp:+..." addresses carry the number without or with a prefix.
    """
    if not value:
        return None
    raw = value.strip().removeprefix("whatsapp:").removeprefix("tel:").strip()
    digits = "".join(ch for ch in raw if ch.isdigit())
    if not digits:
        return None
    candidates = [raw] if raw.startswith("+") else [raw, "+" + digits]
    for candidate in candidates:
        try:
            number = phonenumbers.parse(candidate, None if candidate.startswith("+") else region)
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_possible_number(number):
            return phonenumbers.format_number(number, phonenumbers.PhoneNumberFormat.E164)
    return None


def normalise_handle(value: str | None) -> str | None:
    """Social handles compare without the leading @ and case-insensitively."""
    if not value:
        return None
    cleaned = value.strip().lstrip("@").strip()
    return cleaned.lower() or None
