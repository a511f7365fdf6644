"""Text normalisation shared by every signal, so rules and the model see the same tokens."""

from __future__ import annotations

import re
import unicodedata
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar, cast

import ahocorasick

WORD_RE = re.compile(r"[a-z0-9]+(?:'[a-z]+)?")
# Every ASCII character that cannot be part of a word becomes a space, so `str.split` (a C loop,
# about twice as fast as `WORD_RE.findall`) yields the same words as the regex...
_WORD_CHARS = frozenset("abcdefghijklmnopqrstuvwxyz0123456789'")
_SPACE_OUT = str.maketrans({chr(code): " " for code in range(128) if chr(code) not in _WORD_CHARS})
# ...unless an apostrophe is not inside a word ("'quoted'", "90's'", "rock'n'roll", "o'k2"),
# where the regex decides what belongs to the word.
_ODD_APOSTROPHE = re.compile(r"'(?:(?<![a-z0-9]')|(?![a-z])|[a-z]+[0-9'])")


def _nfkd_ascii(text: str) -> str:
    return unicodedata.normalize("NFKD", text).encode("ascii", "ignore").decode()


# NFKD decomposes each character on its own, and the reordering it does moves only combining
# marks, which the ASCII filter drops: so a Latin-1 text folds character by character. Per
# Latin-1 byte, its folded ASCII byte, or deleted when it folds to nothing...
_LATIN1_FOLDED = [_nfkd_ascii(chr(byte)) for byte in range(256)]
_LATIN1_TABLE = bytes(ord(f) if len(f) == 1 else byte for byte, f in enumerate(_LATIN1_FOLDED))
_LATIN1_DROPPED = bytes(byte for byte, f in enumerate(_LATIN1_FOLDED) if not f)
# ...except the few that fold to several characters ("½" -> "12"), left to NFKD itself.
_LATIN1_SPREAD = tuple(chr(byte) for byte, f in enumerate(_LATIN1_FOLDED) if len(f) > 1)


def fold(text: str) -> str:
    """Lowercase without accents: customers type "devolucion" as often as "devolución"."""
    lowered = text.lower()
    if lowered.isascii():
        return lowered
    # NFKD splits letters from their accents; dropping non-ASCII then drops the accents
    # (and symbols such as emojis, which the signals read from the raw text instead).
    lowered = lowered.replace("ß", "ss")
    try:
        latin1 = lowered.encode("latin-1")
    except UnicodeEncodeError:
        return _nfkd_ascii(lowered)
    if any(spread in lowered for spread in _LATIN1_SPREAD):
        return _nfkd_ascii(lowered)
    # The same in two C passes over bytes: about half the instructions of NFKD on Spanish.
    return latin1.translate(_LATIN1_TABLE, _LATIN1_DROPPED).decode("ascii")


# Per Latin-1 character of a text not yet lowered: its folded character as `words` sees it
# (spaced out unless it can be part of a word), so that one byte translation does lower(),
# fold() and the spacing of words() at once; the characters that fold to nothing are dropped,
# as fold() drops them before words() runs.
_LATIN1_LOWER = [_nfkd_ascii(chr(byte).lower()) for byte in range(256)]
_LATIN1_WORD_TABLE = bytes(
    ord(f.translate(_SPACE_OUT)) if len(f) == 1 else byte for byte, f in enumerate(_LATIN1_LOWER)
)
_LATIN1_WORD_DROPPED = bytes(byte for byte, f in enumerate(_LATIN1_LOWER) if not f)
# "ß" lowers to itself and folds to "ss", and a few fold to several characters: fold() them.
_LATIN1_WORD_ODD = tuple(
    bytes([byte]) for byte, f in enumerate(_LATIN1_LOWER) if len(f) > 1 or chr(byte) == "ß"
)


def fold_words(text: str) -> list[str]:
    """`words(fold(text))`, for a Latin-1 text in one byte translation and a split."""
    try:
        latin1 = text.encode("latin-1")
    except UnicodeEncodeError:
        return words(fold(text))
    if not latin1.isascii() and any(odd in latin1 for odd in _LATIN1_WORD_ODD):
        return words(fold(text))
    spaced = latin1.translate(_LATIN1_WORD_TABLE, _LATIN1_WORD_DROPPED).decode("ascii")
    if "'" in spaced and _ODD_APOSTROPHE.search(spaced) is not None:
        return words(fold(text))
    return spaced.split()


def words(folded: str) -> list[str]:
    """The words of a folded text (`fold` output is ASCII), as `WORD_RE.findall` finds them."""
    spaced = folded.translate(_SPACE_OUT)
    if "'" in spaced and _ODD_APOSTROPHE.search(spaced) is not None:
        return WORD_RE.findall(folded)
    return spaced.split()


_T = TypeVar("_T")


class LexiconColumn(Generic[_T]):
    """What one signal reads of each word of the shared lexicon, by the word's id."""

    def __init__(self, values: list[_T], default: _T) -> None:
        self.values = values
        self.default = default


class SharedLexicon:
    """Ids for the words that signals look up one by one (sentiment's lexicon, the function
    words of languages), so that a contact's words are looked up once for all of them
    (`Tokens.lexicon`): each signal then reads its own column by id.

    A word's string is hashed once whoever looks it up, but each lookup also probes the table
    and compares the strings: one C lookup per word instead of one per signal.
    """

    def __init__(self) -> None:
        self.ids: dict[str, int] = {}
        self._columns: list[LexiconColumn[Any]] = []

    def column(self, values: Mapping[str, _T], default: _T) -> LexiconColumn[_T]:
        """A column holding `values` by word (`default` for the other words of the lexicon);
        their words join the lexicon."""
        for word in values:
            if word not in self.ids:
                self.ids[word] = len(self.ids)
                for held in self._columns:
                    held.values.append(held.default)
        column = LexiconColumn([default] * len(self.ids), default)
        for word, value in values.items():
            column.values[self.ids[word]] = value
        self._columns.append(column)
        return column


# The one lexicon of the process: modules add their columns when imported.
LEXICON = SharedLexicon()


class Tokens:
    """A text's folded words, counted once and shared by every signal of one contact.

    Given a `PhraseIndex` (`share_phrases`), the phrases of every matcher in it are found and
    counted in one pass, the first time one of them is asked for.
    """

    __slots__ = ("words", "_counts", "_lexicon", "_spaced", "_index", "_walk")

    def __init__(self, tokens: Sequence[str]) -> None:
        self.words: Sequence[str] = tokens
        self._counts: Counter[str] | None = None
        self._lexicon: tuple[int, list[int], list[int]] | None = None
        self._spaced: str | None = None
        self._index: PhraseIndex | None = None
        self._walk: _Walk | None = None

    @classmethod
    def of(cls, text: str) -> Tokens:
        return cls(fold_words(text))

    def __len__(self) -> int:
        return len(self.words)

    @property
    def counts(self) -> Counter[str]:
        """How often each word comes, in the order words first come (counted when first asked
        for: the pipeline's signals look their words up one by one instead)."""
        if self._counts is None:
            self._counts = Counter(self.words)
        return self._counts

    def lexicon(self) -> tuple[list[int], list[int]]:
        """Where the words of the shared lexicon are among the words, and their ids (one C
        lookup per word, shared by the signals that read the lexicon)."""
        held = self._lexicon
        ids = LEXICON.ids
        # Computed again if a column joined since (a module imported late).
        if held is None or held[0] != len(ids):
            positions: list[int] = []
            known: list[int] = []
            words = self.words
            # A compiled loop over a list reads it by index and looks each word up directly.
            for position, word in enumerate(words if isinstance(words, list) else list(words)):
                word_id = ids.get(word)
                if word_id is not None:
                    positions.append(position)
                    known.append(word_id)
            held = self._lexicon = (len(ids), positions, known)
        return held[1], held[2]

    def spaced(self) -> str:
        """The words joined by single spaces, with one more at each end, so that " a b " is in
        it wherever the words a, b follow each other."""
        if self._spaced is None:
            self._spaced = " " + " ".join(self.words) + " "
        return self._spaced

    def share_phrases(self, index: PhraseIndex) -> None:
        """Matchers in `index` read their hits from its one pass over these words."""
        self._index = index
        self._walk = None

    def _shared_walk(self, matcher: PhraseKeys) -> tuple[_Walk, int] | None:
        index = self._index
        if index is None:
            return None
        slot = index.slots.get(matcher)
        if slot is None:
            return None
        if self._walk is None:
            self._walk = index.walk(self.spaced())
        return self._walk, slot

    def phrase_hits(self, matcher: PhraseKeys) -> list[_Hit] | None:
        """What the automaton of `matcher`'s keys would find (for key sets that are not
        PhraseMatchers), from the index's shared pass; None when the index does not hold it."""
        shared = self._shared_walk(matcher)
        return None if shared is None else shared[0].hits[shared[1]]

    def phrase_counts(self, matcher: PhraseMatcher) -> dict[str, int] | None:
        """`matcher.counts` of these words, from the index's shared pass (a fresh dict: callers
        add to it); None when the index does not hold it."""
        shared = self._shared_walk(matcher)
        if shared is None:
            return None
        walk, slot = shared
        return dict(walk.counts[slot]) if slot < len(walk.counts) else {}


def as_tokens(tokens: Tokens | Sequence[str]) -> Tokens:
    return tokens if isinstance(tokens, Tokens) else Tokens(tokens)


# What a key of the automaton stands for: its length, then for a phrase of several words its
# rank among the phrases that open with the same word (lower wins), None for a single word, and
# the labels it counts for.
_Found = tuple[int, tuple[bool, int] | None, tuple[str, ...]]
# Where a key ends in the spaced words (its last character), and what it stands for.
_Hit = tuple[int, _Found]


class PhraseKeys(Protocol):
    """What a PhraseIndex reads of a matcher: its keys in the words joined by spaces."""

    @property
    def keys(self) -> Mapping[str, _Found]: ...

    @property
    def counted(self) -> bool:
        """True: a PhraseIndex counts the hits with PhraseMatcher's rules; False: it keeps
        them (`Tokens.phrase_hits`)."""
        ...


class PhraseMatcher:
    """Counts phrase hits per label in one pass over a text's words.

    A phrase is a sequence of folded words; a trailing "*" on its last word matches any ending
    ("cobr*" matches "cobrado"). Where several phrases of more than one word start at the same
    word, only the longest counts (a phrase whose last word is a prefix loses ties); where one
    does, the one-word phrases for that word do not count there.

    Every phrase is a key of an Aho-Corasick automaton (pyahocorasick) over the words joined by
    spaces: " no ha llegado " for a whole phrase, " cobr" for a prefix. One C pass finds them
    all, where a regex alternation would try every phrase at every character and a dictionary
    walk would visit every occurrence of every common first word ("no", "de", "the") in Python.
    """

    def __init__(self, phrases: Mapping[str, Iterable[str]]) -> None:
        self.labels = tuple(phrases)
        singles: dict[str, list[str]] = {}
        by_first: dict[str, list[tuple[tuple[str, ...], bool, str]]] = {}
        for label, items in phrases.items():
            for phrase in items:
                prefix = phrase.endswith("*")
                tokens = tuple(words(fold(phrase.rstrip("*"))))
                if not tokens:
                    raise ValueError(f"phrase {phrase!r} has no words")
                if len(tokens) > 1:
                    by_first.setdefault(tokens[0], []).append((tokens, prefix, label))
                else:
                    key = " " + tokens[0] + ("" if prefix else " ")
                    singles.setdefault(key, []).append(label)
        # Every key of the automaton and what it stands for (a PhraseIndex copies them).
        self.keys: dict[str, _Found] = {}
        for key, labels in singles.items():
            self.keys[key] = (len(key), None, tuple(dict.fromkeys(labels)))
        for entries in by_first.values():
            # Longest first, in the order given within a length.
            entries.sort(key=lambda entry: -len(entry[0]))
            for order, (tokens, prefix, label) in enumerate(entries):
                key = " " + " ".join(tokens) + ("" if prefix else " ")
                rank = (prefix and len(tokens) == 2, order)
                # The same phrase listed again: the first listing counts.
                self.keys.setdefault(key, (len(key), rank, (label,)))
        # Counted alone (words no index of the pipeline shares) through an index of its own:
        # one implementation of the counting rules.
        self._alone: PhraseIndex | None = None

    @property
    def counted(self) -> bool:
        """A PhraseIndex counts its hits (rather than keeping them, see `PhraseKeys`)."""
        return True

    def counts(self, tokens: Tokens | Sequence[str]) -> dict[str, int]:
        view = as_tokens(tokens)
        found = view.phrase_counts(self)
        if found is not None:
            return found
        if self._alone is None:
            self._alone = PhraseIndex([self])
        walk = self._alone.walk(view.spaced())
        return walk.counts[0] if walk.counts else {}


class _Key:
    """What one key of a PhraseIndex's automaton stands for, per matcher holding it (slot)."""

    def __init__(self, length: int) -> None:
        self.length = length
        # Slots that keep their hits, as their own automaton would yield them.
        self.kept: list[tuple[int, _Found]] = []
        # Slots counting it as a phrase of several words: its rank (lower wins) and label.
        self.phrases: list[tuple[int, int, str]] = []
        # Slots counting it as a one-word phrase: its labels.
        self.singles: list[tuple[int, tuple[str, ...]]] = []


class _Walk:
    """One pass of a PhraseIndex over a text: counts per counted slot, hits per kept slot."""

    __slots__ = ("counts", "hits")

    def __init__(self, counts: list[dict[str, int]], hits: list[list[_Hit]]) -> None:
        self.counts = counts
        self.hits = hits


class PhraseIndex:
    """The keys of several PhraseMatchers in one automaton, so that one pass over a contact's
    words finds and counts what each of them looks for.

    A pass costs about as much for 600 keys as for 150 (the C walk per character dominates, not
    the hits), so a contact read by five matchers pays for one walk instead of five. Each
    matcher's hits are counted during the walk, with the rules of `PhraseMatcher` (at a word
    where a phrase of several words starts, its best-ranked one counts and the one-word phrases
    do not), into a dict whose order is the one those rules give (phrases by the first hit at
    their start, then one-word phrases so), since callers break ties by it. Key sets that are
    not counted (the taxonomy's pattern triggers) keep their hits instead, in the order their
    own automaton yields them (by end, and at one end longest first).
    """

    def __init__(self, matchers: Iterable[PhraseKeys]) -> None:
        self.slots: dict[PhraseKeys, int] = {}
        keys: dict[str, _Key] = {}
        for matcher in matchers:
            if matcher in self.slots or not matcher.keys:
                continue
            slot = self.slots[matcher] = len(self.slots)
            for text, found in matcher.keys.items():
                length, rank, labels = found
                key = keys.get(text)
                if key is None:
                    key = keys[text] = _Key(length)
                if not matcher.counted:
                    key.kept.append((slot, found))
                elif rank is None:
                    key.singles.append((slot, labels))
                else:
                    # (two-word prefix phrase, order) as one int that compares the same way.
                    key.phrases.append((slot, (int(rank[0]) << 32) + rank[1], labels[0]))
        self._automaton: Any = _automaton(keys) if keys else None

    def walk(self, spaced: str) -> _Walk:
        """Each matcher's counts (or hits) in `spaced` (words joined by spaces, one more at
        each end)."""
        slots = len(self.slots)
        hits: list[list[_Hit]] = [[] for _ in range(slots)]
        counts: list[dict[str, int]] = []
        if self._automaton is None:
            return _Walk(counts, hits)
        # Keyed by where the phrase starts times the slots, plus the slot: one dict for all.
        best: dict[object, tuple[int, str]] = {}
        singles: dict[object, tuple[str, ...]] = {}
        for hit in self._automaton.iter(spaced):
            end, key = cast(tuple[int, _Key], hit)
            start = (end - key.length) * slots
            for slot, kept in key.kept:
                hits[slot].append((end, kept))
            for slot, rank, label in key.phrases:
                # Boxed once for both lookups (the keys are mostly beyond the small ints).
                at: object = start + slot
                held = best.get(at)
                if held is None or rank < held[0]:
                    best[at] = (rank, label)
            for slot, names in key.singles:
                at = start + slot
                more = singles.get(at)
                singles[at] = names if more is None else more + names
        counts = [{} for _ in range(slots)]
        for place, (_, label) in best.items():
            tally = counts[cast(int, place) % slots]
            tally[label] = tally.get(label, 0) + 1
        for place, labels in singles.items():
            if place in best:
                continue
            tally = counts[cast(int, place) % slots]
            if len(labels) > 1:
                # A word matching several keys (whole and prefix) counts once per label.
                labels = tuple(dict.fromkeys(labels))
            for label in labels:
                tally[label] = tally.get(label, 0) + 1
        return _Walk(counts, hits)


def _automaton(keys: Mapping[str, object]) -> Any:
    automaton = ahocorasick.Automaton()
    for key, value in keys.items():
        automaton.add_word(key, value)
    automaton.make_automaton()
    return automaton
