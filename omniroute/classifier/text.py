"""Text normalisation shared by every signal, so rules and the model see the same tokens."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence

WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Every ASCII character that cannot be part of a word becomes a space, so `str.split` (a C loop,
# about twice as fast as `WORD_RE.findall`) yields the same words as the regex...
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789'")
_SPACE_OUT = str.maketrans({chr(code): " " for code in range(128) if chr(code) not in _WORD_CHARS})
# ...unless an apostrophe is not inside a word ("'quoted'", "90's'", "rock'n'roll", "o'k2"),
# where the regex decides what belongs to the word.
_ODD_APOSTROPHE = re.compile(r"'(?:(?<![a-z0-9]')|(?![a-z])|[a-z]+[0-9'])")


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
    """The words of a folded text (`fold` output is ASCII), as `WORD_RE.findall` finds them."""
    spaced = folded.translate(_SPACE_OUT)
    if "'" in spaced and _ODD_APOSTROPHE.search(spaced) is not None:
        return WORD_RE.findall(folded)
    return spaced.split()


class Tokens:
    """A text's folded words, counted once and shared by every signal of one contact."""

    __slots__ = ("words", "counts", "_positions")

    def __init__(self, tokens: Sequence[str]) -> None:
        self.words: Sequence[str] = tokens
        self.counts: Counter[str] = Counter(tokens)
        self._positions: dict[str, list[int]] | None = None

    @classmethod
    def of(cls, text: str) -> Tokens:
        return cls(words(fold(text)))

    def __len__(self) -> int:
        return len(self.words)

    def positions(self) -> dict[str, list[int]]:
        if self._positions is None:
            positions: dict[str, list[int]] = {token: [] for token in self.counts}
            for index, token in enumerate(self.words):
                positions[token].append(index)
            self._positions = positions
        return self._positions


def as_tokens(tokens: Tokens | Sequence[str]) -> Tokens:
    return tokens if isinstance(tokens, Tokens) else Tokens(tokens)


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

    def counts(self, tokens: Tokens | Sequence[str]) -> dict[str, int]:
        view = as_tokens(tokens)
        found: dict[str, int] = {}
        cache = self._cache
        # Without prefix phrases only the words in the vocabulary matter: a C-level set join.
        candidates = (
            view.counts.keys() & self._vocabulary if not self._single_prefix else view.counts
        )
        positional = []
        for token in candidates:
            info = cache.get(token)
            if info is None:
                if len(cache) >= _CACHE_LIMIT:
                    cache.clear()
                info = cache[token] = self._resolve(token)
            if info is _NOTHING:
                continue
            if info[1] or info[2]:
                positional.append((token, info))
                continue
            seen = view.counts[token]
            for label in info[0]:
                found[label] = found.get(label, 0) + seen
        if positional:
            self._count_phrases(view, positional, found)
        return found

    @staticmethod
    def _count_phrases(
        view: Tokens, positional: list[tuple[str, _Info]], found: dict[str, int]
    ) -> None:
        tokens = view.words
        size = len(tokens)
        positions = view.positions()
        for token, (singles, by_second, loose) in positional:
            for index in positions[token]:
                candidates = loose
                if by_second and index + 1 < size:
                    candidates = by_second.get(tokens[index + 1], ()) + loose
                matched = False
                for rest, prefix, label in candidates:
                    if _follows(tokens, index + 1, size, rest, prefix):
                        found[label] = found.get(label, 0) + 1
                        matched = True
                        break
                if not matched:
                    for label in singles:
                        found[label] = found.get(label, 0) + 1


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
