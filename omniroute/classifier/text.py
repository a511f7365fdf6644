"""Text normalisation shared by every signal, so rules and the model see the same tokens."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable, Mapping, Sequence

WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")


def fold(text: str) -> str:
    """Lowercase without accents: customers type "devolucion" as often as "devolución"."""
    lowered = text.lower()
    if lowered.isascii():
        return lowered
    # NFKD splits letters from their accents; dropping non-ASCII then drops the accents
    # (and symbols such as emojis, which the signals read from the raw text instead).
    return (
        unicodedata.normalize("NFKD", lowered.replace("ß", "ss")).encode("ascii", "ignore").decode()
    )


def words(folded: str) -> list[str]:
    return WORD_RE.findall(folded)


_Entry = tuple[tuple[str, ...], bool, str]
# Per token: labels of one-word phrases, longer phrases by their second word, and longer
# phrases whose second word is a prefix.
_Info = tuple[tuple[str, ...], dict[str, tuple[_Entry, ...]], tuple[_Entry, ...]]
_NOTHING: _Info = ((), {}, ())
_CACHE_LIMIT = 50_000


class PhraseMatcher:
    """Counts phrase hits per label in one pass over a token list.

    A phrase is a sequence of folded words; a trailing "*" on its last word matches any ending
    ("cobr*" matches "cobrado"). Looking tokens up in a dictionary is much faster than a regex
    alternation over hundreds of phrases, which the regex engine tries at every character.
    """

    def __init__(self, phrases: Mapping[str, Iterable[str]]) -> None:
        self._single: dict[str, list[str]] = {}
        self._single_prefix: dict[int, dict[str, list[str]]] = {}
        self._multi: dict[str, list[_Entry]] = {}
        self.labels = tuple(phrases)
        for label, items in phrases.items():
            for phrase in items:
                prefix = phrase.endswith("*")
                tokens = tuple(words(fold(phrase.rstrip("*"))))
                if not tokens:
                    raise ValueError(f"phrase {phrase!r} has no words")
                if len(tokens) > 1:
                    self._multi.setdefault(tokens[0], []).append((tokens[1:], prefix, label))
                elif prefix:
                    table = self._single_prefix.setdefault(len(tokens[0]), {})
                    table.setdefault(tokens[0], []).append(label)
                else:
                    self._single.setdefault(tokens[0], []).append(label)
        for entries in self._multi.values():
            entries.sort(key=lambda e: -len(e[0]))
        self._vocabulary = frozenset(self._single) | frozenset(self._multi)
        # Per-token answers are cached: customers' vocabulary is large but repetitive.
        self._cache: dict[str, _Info] = {}

    def _resolve(self, token: str) -> _Info:
        labels = list(self._single.get(token, ()))
        for length, table in self._single_prefix.items():
            if len(token) >= length:
                labels.extend(table.get(token[:length], ()))
        multi = self._multi.get(token, [])
        if not labels and not multi:
            return _NOTHING
        by_second: dict[str, list[_Entry]] = {}
        loose: list[_Entry] = []
        for entry in multi:
            rest, prefix, _ = entry
            if prefix and len(rest) == 1:
                loose.append(entry)
            else:
                by_second.setdefault(rest[0], []).append(entry)
        return (
            tuple(dict.fromkeys(labels)),
            {second: tuple(entries) for second, entries in by_second.items()},
            tuple(loose),
        )

    def _relevant(self, tokens: Sequence[str]) -> set[str]:
        """The distinct tokens that can start a match: set algebra runs in C."""
        distinct = set(tokens)
        relevant = distinct & self._vocabulary
        for length, table in self._single_prefix.items():
            relevant.update(t for t in distinct if t[:length] in table and len(t) >= length)
        return relevant

    def counts(self, tokens: Sequence[str]) -> dict[str, int]:
        found: dict[str, int] = {}
        relevant = self._relevant(tokens)
        if not relevant:
            return found
        cache = self._cache
        size = len(tokens)
        for index, token in enumerate(tokens):
            if token not in relevant:
                continue
            info = cache.get(token)
            if info is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                info = cache[token] = self._resolve(token)
            if info is _NOTHING:
                continue
            singles, by_second, loose = info
            matched = False
            candidates = loose
            if by_second and index + 1 < size:
                candidates = by_second.get(tokens[index + 1], ()) + loose
            for rest, prefix, label in candidates:
                if _follows(tokens, index + 1, size, rest, prefix):
                    found[label] = found.get(label, 0) + 1
                    matched = True
                    break
            if not matched:
                for label in singles:
                    found[label] = found.get(label, 0) + 1
        return found

    def any(self, tokens: Sequence[str]) -> bool:
        return bool(self.counts(tokens))


def _follows(
    tokens: Sequence[str], start: int, size: int, rest: tuple[str, ...], prefix: bool
) -> bool:
    if not rest:
        return True
    end = start + len(rest)
    if end > size:
        return False
    if prefix:
        return tuple(tokens[start : end - 1]) == rest[:-1] and tokens[end - 1].startswith(rest[-1])
    return tuple(tokens[start:end]) == rest


def matcher(*phrases: str, label: str = "hit") -> PhraseMatcher:
    return PhraseMatcher({label: phrases})
