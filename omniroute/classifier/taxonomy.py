"""The configurable taxonomy (YAML): categories, sub-categories and keyword rules per language."""

from __future__ import annotations

import importlib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from omniroute.classifier.text import PhraseKeys, PhraseMatcher, Tokens, as_tokens

UNKNOWN = "unknown"
DEFAULT_TAXONOMY = "taxonomy.yaml"


class TaxonomyError(ValueError):
    """The taxonomy file is malformed."""


def _rules(groups: Mapping[str, list[str]]) -> PhraseMatcher:
    try:
        return PhraseMatcher(groups)
    except ValueError as exc:
        raise TaxonomyError(str(exc)) from exc


@dataclass(frozen=True)
class Category:
    id: str
    name: str
    priority: int
    subcategories: tuple[str, ...]
    _sub_rules: dict[str, PhraseMatcher] = field(repr=False)

    def subcategory(self, tokens: Tokens | Sequence[str], language: str) -> str | None:
        rules = self._sub_rules.get(language) or self._sub_rules.get("*")
        if rules is None:
            return None
        hits = rules.counts(tokens)
        if not hits:
            return None
        return max(self.subcategories, key=lambda sub: hits.get(sub, 0))


@dataclass(frozen=True)
class Taxonomy:
    id: str
    version: int
    categories: dict[str, Category]
    _rules: dict[str, PhraseMatcher] = field(repr=False)
    # Regular expressions over the folded words joined by single spaces, per language.
    # All of a language's patterns in one alternation (one scan), and each group's category.
    _patterns: dict[str, _Patterns] = field(default_factory=dict, repr=False)

    @property
    def ids(self) -> list[str]:
        return list(self.categories)

    @property
    def languages(self) -> frozenset[str]:
        """Languages with keywords of their own; any other reads those of "*"."""
        named = set(self._rules)
        for category in self.categories.values():
            named.update(category._sub_rules)
        return frozenset(named)

    def matchers(self, language: str) -> list[PhraseKeys]:
        """The phrase keys `rule_hits` and `subcategory` look for in the language: keywords,
        and where the regex patterns can match."""
        found: list[PhraseKeys] = [self._rules.get(language) or self._rules["*"]]
        for category in self.categories.values():
            rules = category._sub_rules.get(language) or category._sub_rules.get("*")
            if rules is not None:
                found.append(rules)
        patterns = self._patterns.get(language) or self._patterns.get("*")
        if patterns is not None and patterns.triggers is not None:
            found.append(patterns.triggers)
        return found

    def rule_hits(self, tokens: Tokens | Sequence[str], language: str) -> dict[str, int]:
        """Keyword and pattern hits per category for the language (all languages if unlisted)."""
        view = as_tokens(tokens)
        rules = self._rules.get(language) or self._rules["*"]
        hits = rules.counts(view)
        patterns = self._patterns.get(language) or self._patterns.get("*")
        if patterns:
            for group in patterns.groups(view):
                category = patterns.owners[int(group[1:])]
                hits[category] = hits.get(category, 0) + 1
        return hits

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> Taxonomy:
        raw = data.get("categories")
        if not isinstance(raw, Mapping) or not raw:
            raise TaxonomyError("taxonomy needs a non-empty 'categories' mapping")
        if UNKNOWN in raw:
            raise TaxonomyError(f"'{UNKNOWN}' is reserved for abstentions")
        by_language: dict[str, dict[str, list[str]]] = {}
        categories: dict[str, Category] = {}
        patterns: dict[str, list[tuple[re.Pattern[str], str]]] = {}
        for cat_id, spec in raw.items():
            spec = spec or {}
            for language, regexes in (spec.get("patterns") or {}).items():
                for regex in regexes or []:
                    if "(?P<" in str(regex):
                        raise TaxonomyError(f"{cat_id}: use (?:...) instead of named groups")
                    try:
                        compiled = re.compile(str(regex))
                    except re.error as exc:
                        raise TaxonomyError(f"{cat_id}: bad pattern {regex!r}: {exc}") from exc
                    patterns.setdefault(language, []).append((compiled, str(cat_id)))
            for language, keywords in (spec.get("keywords") or {}).items():
                by_language.setdefault(language, {})[cat_id] = list(keywords or [])
            subs: dict[str, dict[str, list[str]]] = {}
            for sub_id, sub_keywords in (spec.get("subcategories") or {}).items():
                for language, keywords in (sub_keywords or {}).items():
                    subs.setdefault(language, {})[sub_id] = list(keywords or [])
            sub_ids = tuple((spec.get("subcategories") or {}).keys())
            sub_rules = {language: _rules(groups) for language, groups in subs.items()}
            sub_rules["*"] = _rules(_union(subs))
            categories[str(cat_id)] = Category(
                id=str(cat_id),
                name=str(spec.get("name", cat_id)),
                priority=int(spec.get("priority", 0)),
                subcategories=sub_ids,
                _sub_rules=sub_rules,
            )
        rules = {language: _rules(groups) for language, groups in by_language.items()}
        rules["*"] = _rules(_union(by_language))
        if patterns:
            patterns["*"] = [entry for entries in patterns.values() for entry in entries]
        return cls(
            id=str(data.get("id", "custom")),
            version=int(data.get("version", 1)),
            categories=categories,
            _rules=rules,
            _patterns={language: _Patterns(entries) for language, entries in patterns.items()},
        )

    @classmethod
    def load(cls, path: Path | None = None) -> Taxonomy:
        """Load a taxonomy file, or the default one shipped with the package."""
        if path is None:
            text = resources.files("omniroute.classifier.data").joinpath(DEFAULT_TAXONOMY)
            return cls.from_mapping(yaml.safe_load(text.read_text(encoding="utf-8")))
        return cls.from_mapping(yaml.safe_load(path.read_text(encoding="utf-8")))


def _union(by_language: Mapping[str, Mapping[str, list[str]]]) -> dict[str, list[str]]:
    merged: dict[str, list[str]] = {}
    for groups in by_language.values():
        for label, keywords in groups.items():
            merged.setdefault(label, []).extend(k for k in keywords if k not in merged[label])
    return merged


class _Patterns:
    """One language's patterns as one alternation of named groups, and each group's category.

    Patterns that open on a word boundary (the usual case) are looked for only where a word
    starts: after the space or apostrophe before it, in the words joined by spaces with a space
    at each end. That leading character lets the regex engine skip to the few places a match
    can start instead of trying the alternation at every character (about 40% faster). The
    alternation sits in a lookahead, so that a match ending where the next word starts does not
    hide that word; matches starting inside the previous one are skipped, as `finditer` does.
    """

    def __init__(self, entries: list[tuple[re.Pattern[str], str]]) -> None:
        body = "|".join(
            f"(?P<g{index}>{pattern.pattern})" for index, (pattern, _) in enumerate(entries)
        )
        self.owners = tuple(category for _, category in entries)
        if all(pattern.pattern.startswith(r"\b") for pattern, _ in entries):
            # Every pattern opens at a word boundary: a cheap guard that the next character
            # starts a word spares trying each alternative at the other positions.
            self._anywhere = re.compile(rf"(?<!\w)(?=\w)(?:{body})")
        else:
            self._anywhere = re.compile(body)
        self._at_word_starts: re.Pattern[str] | None = None
        # The same, tried only where the word opens with a string one of the patterns can open
        # with ("no ", a digit...): the alternation and its word-boundary checks (a Unicode
        # lookup per character) are then skipped at most word starts. For ASCII words only,
        # where `\d` is 0-9.
        self._at_openings: re.Pattern[str] | None = None
        # The word starts that open so, as keys of the contact's phrase index ("'no " and
        # " no " for "no ha llegado", " 1" for a digit...): its one pass over the words, which
        # costs the same for a few more keys, then tells the few places to try.
        self.triggers: _Triggers | None = None
        if all(_bounded(pattern) for pattern, _ in entries):
            self._at_word_starts = re.compile(f"[ '](?=(?:{body}))")
            openings = [_opening_strings(pattern) for pattern, _ in entries]
            if all(opening is not None for opening in openings):
                known = sorted({text for opening in openings if opening for text in opening})
                guard = "|".join(re.escape(text) for text in known)
                self._at_openings = re.compile(f"[ '](?=(?:{guard}))(?=(?:{body}))")
                self.triggers = _Triggers(known)

    def groups(self, tokens: Tokens) -> list[str]:
        """The group of each match, in order, as `finditer` over the joined words finds them."""
        if self._at_word_starts is None:
            matches = self._anywhere.finditer(" ".join(tokens.words))
            return [match.lastgroup for match in matches if match.lastgroup is not None]
        spaced = tokens.spaced()
        if not spaced.isascii():
            return _without_overlaps(self._at_word_starts.finditer(spaced))
        hits = tokens.phrase_hits(self.triggers) if self.triggers is not None else None
        if hits is not None:
            # Where a trigger key starts (its space or apostrophe), in order, as finditer
            # would reach them: the pattern consumes that one character, so it visits each.
            starts = sorted({end + 1 - length for end, (length, _, _) in hits})
            at_word_start = self._at_word_starts.match
            return _without_overlaps(at_word_start(spaced, start) for start in starts)
        if self._at_openings is not None:
            return _without_overlaps(self._at_openings.finditer(spaced))
        return _without_overlaps(self._at_word_starts.finditer(spaced))


class _Triggers:
    """Phrase-index keys for the word starts where patterns that open so can match."""

    # The index keeps their hits (where they are is what counts), rather than counting them.
    counted = False

    def __init__(self, openings: Iterable[str]) -> None:
        self.keys: dict[str, tuple[int, None, tuple[str, ...]]] = {}
        for opening in openings:
            # "no " when the opening goes on past its first word, else all of it (a prefix).
            head, space, _ = opening.partition(" ")
            for before in " '":
                key = before + head + space
                self.keys[key] = (len(key), None, ())


def _without_overlaps(matches: Iterable[re.Match[str] | None]) -> list[str]:
    """The group of each match, but those starting inside the previous one, as `finditer`
    over the joined words finds them."""
    found = []
    taken_until = -1
    for match in matches:
        if match is None:
            continue
        group = match.lastgroup
        if group is None:
            continue
        start, end = match.span(group)
        if start >= taken_until:
            found.append(group)
            taken_until = end
    return found


# Patterns that start at a word boundary and cannot tell the joined words from the same with a
# space at each end (no anchors, lookarounds or dots).
_UNSAFE = re.compile(r"\^|\$|\\[AZzG]|\(\?[=!<]|(?:^|[^\\])(?:\\\\)*\.")


def _bounded(pattern: re.Pattern[str]) -> bool:
    # A pattern matching nothing at a word start would, read from one, hide a longer match
    # that `finditer` finds there after the empty one.
    empty = pattern.match("a")
    return (
        pattern.pattern.startswith(r"\b")
        and _UNSAFE.search(pattern.pattern) is None
        and (empty is None or empty.end() > 0)
    )


# The regex parser of the standard library (no public API, no stubs), to read what a pattern's
# matches open with.
_parser: Any = importlib.import_module("re._parser")
_constants: Any = importlib.import_module("re._constants")
# Openings are followed up to this many characters, and given up beyond this many strings.
_OPENING_CHARS = 8
_OPENING_STRINGS = 64
_ZERO_WIDTH = frozenset({_constants.AT, _constants.ASSERT, _constants.ASSERT_NOT})
_REPEATS = frozenset({_constants.MAX_REPEAT, _constants.MIN_REPEAT, _constants.POSSESSIVE_REPEAT})
# Strings every match of a parsed piece opens with, and whether every match is one of them
# (a finite piece); None when unknown.
_Openings = tuple[set[str], bool] | None


def _opening_strings(pattern: re.Pattern[str]) -> frozenset[str] | None:
    """Strings one of which every match of the pattern opens with (matched as written, so for
    ASCII text, where `\\d` is 0-9); None when the pattern gives no such finite set."""
    if pattern.flags & re.IGNORECASE:
        return None
    opening = _sequence_openings(list(_parser.parse(pattern.pattern, pattern.flags)))
    if opening is None or "" in opening[0]:
        return None
    return frozenset(opening[0])


def _sequence_openings(items: list[tuple[Any, Any]]) -> _Openings:
    found = {""}
    for op, value in items:
        if op in _ZERO_WIDTH:
            # Zero width: what follows opens the match (checking less is still safe).
            continue
        part = _item_openings(op, value)
        if part is None:
            return (found, False) if "" not in found else None
        strings, complete = part
        joined = {head + tail for head in found for tail in strings}
        if len(joined) > _OPENING_STRINGS:
            return (found, False) if "" not in found else None
        found = joined
        if not complete or min(map(len, found)) >= _OPENING_CHARS:
            return found, False
    return found, True


def _item_openings(op: Any, value: Any) -> _Openings:
    if op is _constants.LITERAL:
        return {chr(value)}, True
    if op is _constants.IN:
        chars: set[str] = set()
        for kind, item in value:
            if kind is _constants.LITERAL:
                chars.add(chr(item))
            elif kind is _constants.RANGE and item[1] - item[0] < 64:
                chars.update(map(chr, range(item[0], item[1] + 1)))
            elif kind is _constants.CATEGORY and item is _constants.CATEGORY_DIGIT:
                chars.update("0123456789")
            else:
                return None
        return chars, True
    if op is _constants.SUBPATTERN:
        _, add_flags, _, items = value
        return None if add_flags & re.IGNORECASE else _sequence_openings(list(items))
    if op is _constants.BRANCH:
        strings: set[str] = set()
        complete = True
        for branch in value[1]:
            part = _sequence_openings(list(branch))
            if part is None or (not part[1] and "" in part[0]):
                return None
            strings |= part[0]
            complete = complete and part[1]
        return strings, complete
    if op in _REPEATS:
        low, high, items = value
        part = _sequence_openings(list(items))
        if part is None or (not part[1] and "" in part[0]):
            return None
        if low == 0:
            # Optional: what it opens with, or what follows it (nothing known beyond one).
            return (part[0] | {""}, part[1]) if high == 1 else None
        return part[0], part[1] and low == high == 1
    return None
