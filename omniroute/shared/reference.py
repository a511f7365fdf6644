"""Reference numbers customers quote ("ABCD-1234"): derived from the conversation's id.

Every stage computes the same reference from the id, so the gateway can recognise one in an
e-mail subject (`[#ABCD-1234]`) without asking the router.
"""

from __future__ import annotations

import base64
import re
import uuid

# Base32 without the padding; 8 characters carry the first 40 bits of the id.
_REFERENCE = re.compile(r"\[#\s*([A-Z2-7]{4})-?([A-Z2-7]{4})\s*\]", re.IGNORECASE)
_BARE = re.compile(r"^\s*\[?#?\s*([A-Z2-7]{4})-?([A-Z2-7]{4})\s*\]?\s*$", re.IGNORECASE)


def reference_for(conversation_id: uuid.UUID) -> str:
    """The conversation's reference: the first 8 base32 characters of its id, as XXXX-XXXX."""
    code = base64.b32encode(conversation_id.bytes).decode("ascii")[:8]
    return f"{code[:4]}-{code[4:]}"


def find_reference(text: str) -> str | None:
    """The first `[#XXXX-XXXX]` in a text (an e-mail subject), canonical, or None."""
    match = _REFERENCE.search(text or "")
    return f"{match.group(1)}-{match.group(2)}".upper() if match else None


def normalise_reference(value: str | None) -> str | None:
    """A reference as given ("abcd1234", "[#ABCD-1234]", "ABCD-1234"), canonical, or None."""
    if not value:
        return None
    match = _BARE.match(value)
    return f"{match.group(1)}-{match.group(2)}".upper() if match else None
