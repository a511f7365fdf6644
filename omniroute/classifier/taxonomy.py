"""The configurable taxonomy (YAML): categories, sub-categories and keyword rules per language."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Any

import yaml

from omniroute.classifier.text import PhraseMatcher, Tokens, as_tokens

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

    def matchers(self, language: str) -> list[PhraseMatcher]:
        """The keyword matchers `rule_hits` and `subcategory` use for the language."""
        found = [self._rules.get(language) or self._rules["*"]]
        for category in self.categories.values():
            rules = category._sub_rules.get(language) or category._sub_rules.get("*")
            if rules is not None:
                found.append(rules)
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
        if all(_bounded(pattern) for pattern, _ in entries):
            self._at_word_starts = re.compile(f"[ '](?=(?:{body}))")

    def groups(self, tokens: Tokens) -> list[str]:
        """The group of each match, in order, as `finditer` over the joined words finds them."""
        if self._at_word_starts is None:
            matches = self._anywhere.finditer(" ".join(tokens.words))
            return [match.lastgroup for match in matches if match.lastgroup is not None]
        found = []
        taken_until = -1
        for match in self._at_word_starts.finditer(tokens.spaced()):
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
