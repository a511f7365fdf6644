from __future__ import annotations

from pathlib import Path

import pytest

from omniroute.classifier.taxonomy import Taxonomy, TaxonomyError
from omniroute.classifier.text import fold, words

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
