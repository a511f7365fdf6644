"""Text normalisation shared by every signal, so rules and the model see the same tokens."""

from __future__ import annotations

import re
import unicodedata
from functools import lru_cache

# Accents are dropped because customers type "devolucion" as often as "devolución".
_FOLD = {
    ord(ch): unicodedata.normalize("NFKD", ch).encode("ascii", "ignore").decode() or ch
    for ch in "áàâäãåéèêëíìîïóòôöõúùûüñçýÿÁÀÂÄÃÅÉÈÊËÍÌÎÏÓÒÔÖÕÚÙÛÜÑÇÝß"
}
_FOLD[ord("ß")] = "ss"

WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def fold(text: str) -> str:
    """Lowercase without accents."""
    return text.lower().translate(_FOLD)


def words(folded: str) -> list[str]:
    return WORD_RE.findall(folded)


@lru_cache(maxsize=64)
def phrase_pattern(phrases: tuple[str, ...]) -> re.Pattern[str]:
    """One alternation over folded phrases, matched on word boundaries."""
    body = "|".join(sorted((p for p in phrases if p), key=len, reverse=True))
    return re.compile(rf"(?<![a-z0-9])(?:{body})(?![a-z0-9])")
