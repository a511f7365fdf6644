from __future__ import annotations

import random
import re
from pathlib import Path

import pytest

from omniroute.classifier.taxonomy import (
    Taxonomy,
    TaxonomyError,
    _opening_strings,
    _Patterns,
    _without_overlaps,
)
from omniroute.classifier.text import PhraseIndex, Tokens, fold, words

EXPECTED = {
    "billing",
    "orders",
    "delivery",
    "returns_refunds",
    "account",
    "technical",
    "cancellation",
    "complaint",
    "feedback",
    "general",
}


def joined(text: str) -> list[str]:
    """The folded words the rules see."""
    return words(fold(text))


class TestDefaultTaxonomy:
    def test_has_the_issue_categories_each_with_subcategories(self) -> None:
        taxonomy = Taxonomy.load()
        assert set(taxonomy.ids) == EXPECTED
        assert all(len(c.subcategories) >= 3 for c in taxonomy.categories.values())

    @pytest.mark.parametrize(
        ("text", "language", "category", "subcategory"),
        [
            ("Me habéis cobrado dos veces", "es", "billing", "double_charge"),
            ("I was charged twice", "en", "billing", "double_charge"),
            ("El paquete llegó roto", "es", "delivery", "damaged"),
            ("Where is my parcel? tracking says nothing", "en", "delivery", "tracking"),
            ("No puedo iniciar sesión, contraseña incorrecta", "es", "account", "login"),
        ],
    )
    def test_keyword_rules_per_language(
        self, text: str, language: str, category: str, subcategory: str
    ) -> None:
        taxonomy = Taxonomy.load()
        hits = taxonomy.rule_hits(joined(text), language)
        best = max(hits, key=hits.__getitem__)
        assert best == category
        assert taxonomy.categories[best].subcategory(joined(text), language) == subcategory

    def test_keywords_match_without_accents_and_by_prefix(self) -> None:
        taxonomy = Taxonomy.load()
        assert "billing" in taxonomy.rule_hits(joined("FACTURACIÓN"), "es")
        assert "billing" in taxonomy.rule_hits(joined("invoices"), "en")


class TestCustomTaxonomy:
    def test_loads_from_a_yaml_file(self, tmp_path: Path) -> None:
        path = tmp_path / "taxonomy.yaml"
        path.write_text(
            "id: shop\ncategories:\n  claims:\n    keywords:\n      en: [claim*]\n"
            "    subcategories:\n      car: {en: [car]}\n      home: {en: [house, home]}\n"
            "  sales:\n    keywords: {en: [buy, quote]}\n"
        )
        taxonomy = Taxonomy.load(path)
        assert taxonomy.id == "shop"
        assert taxonomy.rule_hits(joined("I want to claim for my home"), "en") == {"claims": 1}
        claims = taxonomy.categories["claims"]
        assert claims.subcategory(joined("claim for my home"), "en") == "home"

    def test_regex_patterns_vote_per_language(self) -> None:
        taxonomy = Taxonomy.from_mapping(
            {
                "categories": {
                    "orders": {"patterns": {"es": [r"\bpedido \d{5,}\b"]}},
                    "other": {"keywords": {"es": ["hola"]}},
                }
            }
        )
        assert taxonomy.rule_hits(joined("Hola, el pedido 123456 no llega"), "es") == {
            "orders": 1,
            "other": 1,
        }

    def test_a_bad_pattern_is_reported(self) -> None:
        with pytest.raises(TaxonomyError, match="bad pattern"):
            Taxonomy.from_mapping({"categories": {"x": {"patterns": {"en": ["(unclosed"]}}}})

    def test_unknown_is_reserved(self) -> None:
        with pytest.raises(TaxonomyError, match="reserved"):
            Taxonomy.from_mapping({"categories": {"unknown": {}}})

    def test_empty_taxonomy_is_refused(self) -> None:
        with pytest.raises(TaxonomyError):
            Taxonomy.from_mapping({"categories": {}})


class TestPatternOpenings:
    """Patterns are tried only where a word opens as one of them can: the same votes."""

    @pytest.mark.parametrize(
        ("pattern", "openings"),
        [
            (r"\bno (?:me )?llega\b", {"no llega", "no me llega"}),
            (r"\b\d+ dias\b", set("0123456789")),
            (r"\b(?:can't|unable to) (?:log|sign)\b", {"can't", "unable t"}),
            (r"\bx?y", {"xy", "y"}),
            (r"\b[a-c]z", {"az", "bz", "cz"}),
        ],
    )
    def test_finite_openings(self, pattern: str, openings: set[str]) -> None:
        assert _opening_strings(re.compile(pattern)) == openings

    @pytest.mark.parametrize(
        "pattern", [r"\b\w+ x", r"\b(?:ab)*c", r"\b[^a]x", r"(?i)\babc", r"\b(?i:ab)c", r"\b.x"]
    )
    def test_unknown_openings(self, pattern: str) -> None:
        assert _opening_strings(re.compile(pattern)) is None

    def test_votes_as_when_tried_at_every_word_start(self) -> None:
        patterns = [
            r"\bno (?:me )?(?:ha )?(?:llegado|llega)\b",
            r"\b\d+ (?:dias|semanas) esperando\b",
            r"\b(?:can't|cannot|unable to) (?:log|sign) ?in\b",
            r"\bx?y+z\b",
            r"\bno\b",
        ]
        taxonomy = Taxonomy.from_mapping(
            {"categories": {f"c{i}": {"patterns": {"es": [p]}} for i, p in enumerate(patterns)}}
        )
        rules = taxonomy._patterns["es"]
        assert rules._at_openings is not None
        vocabulary = "no me ha llegado llega 3 12 dias semanas esperando can't cannot unable to"
        vocabulary += " log sign in login x y yz xyz yyz l'no o'can't ' 9x n nox ٣ no'me"
        pool = vocabulary.split()
        index = PhraseIndex(taxonomy.matchers("es"))
        rng = random.Random(3)
        for _ in range(3000):
            words = [rng.choice(pool) for _ in range(rng.randint(0, 12))]
            expected = _tried_at_every_word_start(rules, Tokens(words))
            # Alone (the guarded regex), and with the phrase index's trigger keys.
            assert rules.groups(Tokens(words)) == expected
            shared = Tokens(words)
            shared.share_phrases(index)
            assert rules.groups(shared) == expected
            assert taxonomy.rule_hits(shared, "es") == taxonomy.rule_hits(Tokens(words), "es")


def _tried_at_every_word_start(rules: _Patterns, tokens: Tokens) -> list[str]:
    """The groups of the matches at every word start, but those inside the previous one."""
    assert rules._at_word_starts is not None
    return _without_overlaps(rules._at_word_starts.finditer(tokens.spaced()))
