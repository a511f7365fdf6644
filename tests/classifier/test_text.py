"""Shared token views: a PhraseIndex must count exactly what each matcher counts on its own."""

from __future__ import annotations

import random
import unicodedata

import ahocorasick

from omniroute.classifier.text import (
    LEXICON,
    PhraseIndex,
    PhraseMatcher,
    SharedLexicon,
    Tokens,
    fold,
    fold_words,
    words,
)

_WORDS = ["no", "ha", "llegado", "cobro", "cobrado", "de", "the", "order", "not", "arrived"]


def _random_phrases(rng: random.Random) -> dict[str, list[str]]:
    phrases: dict[str, list[str]] = {}
    for label in ("a", "b", "c"):
        items = []
        for _ in range(rng.randint(1, 6)):
            phrase = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(1, 3)))
            if rng.random() < 0.3:
                phrase = phrase[: max(1, len(phrase) - rng.randint(0, 3))].rstrip() + "*"
            items.append(phrase)
        phrases[label] = items
    return phrases


def _counted_from_hits(matcher: PhraseMatcher, text: str) -> dict[str, int]:
    """The counting rules applied to the hits of an automaton of the matcher's keys alone, as
    PhraseMatcher counted before the index counted during its walk."""
    automaton = ahocorasick.Automaton()
    for key, found in matcher.keys.items():
        automaton.add_word(key, found)
    found: dict[str, int] = {}
    if not matcher.keys:
        return found
    automaton.make_automaton()
    phrase_at: dict[int, tuple[tuple[bool, int], str]] = {}
    single_at: dict[int, tuple[str, ...]] = {}
    for end, (length, rank, labels) in automaton.iter(Tokens.of(text).spaced()):
        start = end - length
        if rank is None:
            single_at[start] = (*single_at.get(start, ()), *labels)
        elif start not in phrase_at or rank < phrase_at[start][0]:
            phrase_at[start] = (rank, labels[0])
    for _, label in phrase_at.values():
        found[label] = found.get(label, 0) + 1
    for start, labels in single_at.items():
        if start not in phrase_at:
            for label in dict.fromkeys(labels):
                found[label] = found.get(label, 0) + 1
    return found


class TestPhraseIndex:
    def test_counts_follow_the_rules_over_each_matchers_own_hits(self) -> None:
        rng = random.Random(5)
        for _ in range(500):
            matchers = [PhraseMatcher(_random_phrases(rng)) for _ in range(3)]
            index = PhraseIndex(matchers)
            text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(0, 40)))
            shared = Tokens.of(text)
            shared.share_phrases(index)
            for matcher in matchers:
                expected = list(_counted_from_hits(matcher, text).items())
                # Same counts, in the same order (callers break ties by it).
                assert list(matcher.counts(shared).items()) == expected
                assert list(matcher.counts(Tokens.of(text)).items()) == expected

    def test_counts_are_fresh_for_each_caller(self) -> None:
        matcher = PhraseMatcher({"x": ["order"]})
        tokens = Tokens.of("my order")
        tokens.share_phrases(PhraseIndex([matcher]))
        matcher.counts(tokens)["x"] += 5
        assert matcher.counts(tokens) == {"x": 1}

    def test_counts_match_each_matcher_alone(self) -> None:
        rng = random.Random(3)
        for _ in range(300):
            matchers = [PhraseMatcher(_random_phrases(rng)) for _ in range(3)]
            index = PhraseIndex(matchers[:2])
            text = " ".join(rng.choice(_WORDS) for _ in range(rng.randint(0, 40)))
            shared = Tokens.of(text)
            shared.share_phrases(index)
            for matcher in matchers:
                alone = matcher.counts(Tokens.of(text))
                # Same counts, and the same order (callers break ties by it).
                assert list(matcher.counts(shared).items()) == list(alone.items())

    def test_a_phrase_of_several_words_outranks_its_first_word(self) -> None:
        matcher = PhraseMatcher({"late": ["no ha llegado"], "negation": ["no"]})
        tokens = Tokens.of("No ha llegado, no.")
        tokens.share_phrases(PhraseIndex([matcher]))
        assert matcher.counts(tokens) == {"late": 1, "negation": 1}

    def test_a_matcher_outside_the_index_counts_on_its_own(self) -> None:
        inside = PhraseMatcher({"x": ["order"]})
        outside = PhraseMatcher({"y": ["not arrived"]})
        tokens = Tokens.of("The order has not arrived")
        tokens.share_phrases(PhraseIndex([inside]))
        assert outside.counts(tokens) == {"y": 1}
        assert inside.counts(tokens) == {"x": 1}


class TestFold:
    @staticmethod
    def nfkd_fold(text: str) -> str:
        lowered = text.lower().replace("ß", "ss")
        return unicodedata.normalize("NFKD", lowered).encode("ascii", "ignore").decode()

    def test_accents_go(self) -> None:
        assert fold("Devolución DEL Pedido, ¿Qué tal?") == "devolucion del pedido, que tal?"

    def test_every_pair_of_latin1_characters_folds_as_nfkd_does(self) -> None:
        for first in range(256):
            for second in range(256):
                text = chr(first) + chr(second)
                assert fold(text) == self.nfkd_fold(text), repr(text)

    def test_texts_beyond_latin1_fold_as_nfkd_does(self) -> None:
        rng = random.Random(8)
        alphabet = [chr(code) for code in range(256)] + list("ſİıK😡ﬁẞ\u0301\u0308")
        for _ in range(5000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 12)))
            assert fold(text) == self.nfkd_fold(text), repr(text)


class TestFoldWords:
    """Tokens of a Latin-1 text come from one byte translation: the same as words(fold(text))."""

    def test_every_pair_of_latin1_characters_splits_as_before(self) -> None:
        for first in range(256):
            for second in range(256):
                text = f"a{chr(first)}{chr(second)}b"
                assert fold_words(text) == words(fold(text)), repr(text)

    def test_random_texts_split_as_before(self) -> None:
        rng = random.Random(9)
        alphabet = [chr(code) for code in range(256)] + list("ab'' ÁÉñ½ßẞİ😡ﬁ\u0301")
        for _ in range(20_000):
            text = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 30)))
            assert fold_words(text) == words(fold(text)), repr(text)

    def test_odd_apostrophes_and_accents(self) -> None:
        assert Tokens.of("¿'Qué' TAL? rock'n'roll, l'Été ½").words == [
            "que",
            "tal",
            "rock'n",
            "roll",
            "l'ete",
            "12",
        ]


class TestSharedLexicon:
    def test_each_column_reads_its_own_values_by_the_shared_ids(self) -> None:
        lexicon = SharedLexicon()
        kinds = lexicon.column({"bad": 2, "good": 1}, 0)
        languages = lexicon.column({"the": ("en",), "bad": ("en",)}, ())
        # A word of the second column is new to the first: it reads the default there.
        assert [kinds.values[lexicon.ids[w]] for w in ("bad", "good", "the")] == [2, 1, 0]
        assert [languages.values[lexicon.ids[w]] for w in ("bad", "good", "the")] == [
            ("en",),
            (),
            ("en",),
        ]

    def test_tokens_find_the_words_of_a_column_added_after_they_were_read(self) -> None:
        # The process's lexicon: words no signal reads, so the other tests see no change.
        first = LEXICON.column({"zzyzx": 7}, 0)
        tokens = Tokens.of("zzyzx quux-quux zzyzx")
        positions, ids = tokens.lexicon()
        assert [tokens.words[p] for p in positions] == ["zzyzx", "zzyzx"]
        second = LEXICON.column({"quux": 3}, 0)
        positions, ids = tokens.lexicon()
        assert [tokens.words[p] for p in positions] == ["zzyzx", "quux", "quux", "zzyzx"]
        assert [first.values[i] for i in ids] == [7, 0, 0, 7]
        assert [second.values[i] for i in ids] == [0, 3, 3, 0]
