from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest

from omniroute.classifier.features import Scorer, Vocabulary, char_ngrams
from omniroute.classifier.model import ModelError, load_default_model, load_model, train_model
from omniroute.classifier.taxonomy import Taxonomy
from omniroute.classifier.text import Tokens
from omniroute.classifier.training import evaluate, load_dataset

TOY = {
    "billing": ["I was charged twice", "wrong amount on my invoice", "refund the extra fee"],
    "delivery": ["my parcel is late", "the courier never came", "where is my package"],
    "account": ["cannot log in", "reset my password", "my account is locked"],
}


def toy_rows(copies: int = 6) -> tuple[list[str], list[str]]:
    texts, labels = [], []
    for label, examples in TOY.items():
        for n in range(copies):
            for text in examples:
                texts.append(f"{text} {'please' * (n % 2)}".strip())
                labels.append(label)
    return texts, labels


class TestTraining:
    def test_learns_and_predicts_with_a_probability(self) -> None:
        model = train_model(*toy_rows())
        label, confidence = model.predict("the courier is late with my parcel")
        assert label == "delivery"
        assert 0.0 < confidence <= 1.0
        assert sum(model.predict_proba("hello")) == pytest.approx(1.0)

    def test_abstains_below_the_threshold(self) -> None:
        model = train_model(*toy_rows())
        label, confidence = model.predict("zebra quantum violin", threshold=0.99)
        assert label == "unknown"
        assert confidence < 0.99

    def test_out_of_scope_rows_are_never_a_class(self) -> None:
        texts, labels = toy_rows()
        model = train_model([*texts, "what's the weather"], [*labels, "oos"])
        assert "oos" not in model.labels
        assert model.meta["out_of_scope_rows"] == 1

    def test_out_of_scope_rows_recommend_a_threshold(self, tmp_path: Path) -> None:
        texts, labels = toy_rows(copies=8)
        chatter = ["what's the weather", "tell me a joke", "who won the match", "play music"]
        texts += [f"{text} {n}" for text in chatter for n in range(3)]
        labels += ["oos"] * (3 * len(chatter))
        model = train_model(texts, labels)
        assert model.threshold is not None
        assert 0.0 < model.threshold < 1.0
        model.save(tmp_path)
        assert load_model(tmp_path).threshold == model.threshold

    def test_in_scope_rows_only_recommend_a_cautious_threshold(self) -> None:
        threshold = train_model(*toy_rows(copies=8)).threshold
        assert threshold is not None
        assert 0.0 <= threshold < 1.0
        assert train_model(*toy_rows(copies=8), recommend_threshold=False).threshold is None

    def test_the_default_model_leaves_the_threshold_to_settings(self) -> None:
        model = load_default_model(Taxonomy.load(None))
        assert model is not None
        assert model.threshold is None

    def test_needs_two_categories(self) -> None:
        with pytest.raises(ValueError, match="two categories"):
            train_model(["a", "b"], ["x", "x"])


class TestPersistence:
    def test_round_trip_gives_identical_scores(self, tmp_path: Path) -> None:
        model = train_model(*toy_rows())
        model.save(tmp_path)
        loaded = load_model(tmp_path)
        assert loaded.labels == model.labels
        assert loaded.model_id == model.model_id
        text = "my account is locked and I cannot log in"
        assert np.allclose(loaded.predict_proba(text), model.predict_proba(text))
        # Plain arrays and JSON: nothing that needs unpickling.
        assert json.loads((tmp_path / "model.json").read_text())["format"] == "omniroute-textmodel"
        with np.load(tmp_path / "model.npz", allow_pickle=False) as arrays:
            assert arrays["weights"].dtype == np.float32

    def test_round_trip_scores_every_text_exactly_alike(self, tmp_path: Path) -> None:
        model = train_model(*toy_rows())
        assert model.vocabulary.embedding_scale > 0
        model.save(tmp_path)
        loaded = load_model(tmp_path)
        assert np.array_equal(loaded.vocabulary.embedding_mean, model.vocabulary.embedding_mean)
        # Known words, unseen synonyms (the embedding block alone knows them), references.
        for text in ["my parcel is late", "the shipment went missing", "ref 88123 zq9", ""]:
            assert np.array_equal(loaded.decision(text), model.decision(text)), text

    def test_missing_model_is_a_clear_error(self, tmp_path: Path) -> None:
        with pytest.raises(ModelError, match="train one first"):
            load_model(tmp_path)

    def test_an_older_format_is_a_clear_error(self, tmp_path: Path) -> None:
        train_model(*toy_rows()).save(tmp_path)
        meta = json.loads((tmp_path / "model.json").read_text())
        (tmp_path / "model.json").write_text(json.dumps({**meta, "format_version": 2}))
        with pytest.raises(ModelError, match="unsupported model format; train it again"):
            load_model(tmp_path)

    def test_other_word_vectors_are_a_clear_error(self, tmp_path: Path) -> None:
        train_model(*toy_rows()).save(tmp_path)
        with np.load(tmp_path / "model.npz", allow_pickle=False) as stored:
            arrays = dict(stored)
        arrays["embedding_source"] = np.frombuffer(b"wordllama/other 000000000000", np.uint8)
        np.savez_compressed(tmp_path / "model.npz", **arrays)
        with pytest.raises(ModelError, match="word vectors .*train it again"):
            load_model(tmp_path)


class TestFeatures:
    @pytest.mark.parametrize(
        "text",
        [
            "Where is my package? The courier said it was delivered, it was NOT delivered!",
            # Repeated words and n-grams, and words training never saw.
            "my package my package my package, parcel zq81x never came zq81x",
            "zebra",
            # References: digits are 0 to the char n-grams, and unseen shapes share a row.
            "parcel 48213 late, ref 99120 and 4821x and 12",
            "",
        ],
    )
    def test_cached_scores_match_the_training_rows(self, text: str) -> None:
        model = train_model(*toy_rows())
        tokens = Tokens.of(text)
        row = model.vocabulary.transform([tokens.words])
        expected = np.asarray(row @ model.weights.astype(np.float64)).ravel() + model.bias
        # Twice: the second time from the per-word cache.
        for _ in range(2):
            assert np.allclose(model.decision(text), expected, atol=1e-9)

    def test_a_full_cache_of_unseen_words_starts_again(self) -> None:
        model = train_model(*toy_rows())
        scorer = Scorer(model.vocabulary, model.weights, model.bias, novel_words=4)
        weights = model.weights.astype(np.float64)
        texts = [f"parcel qx{n} late zz{n} courier wq{n}" for n in range(6)]
        # More unseen words in one text than the cache holds.
        texts.append(" ".join(f"zq{letter}x" for letter in "abcdefghi"))
        for text in texts:
            tokens = Tokens.of(text)
            row = model.vocabulary.transform([tokens.words])
            expected = np.asarray(row @ weights).ravel() + model.bias
            assert np.allclose(scorer.decision(tokens), expected, atol=1e-9)

    def test_words_learnt_before_the_cache_fills_are_learnt_again(self) -> None:
        # The second text meets the full cache holding one of its own words: starting again
        # must not leave that word without a row.
        model = train_model(*toy_rows())
        scorer = Scorer(model.vocabulary, model.weights, model.bias, novel_words=4)
        weights = model.weights.astype(np.float64)
        for text in ("parcel qxa zzb", "late qxa courier wqc wqdd wqeee"):
            tokens = Tokens.of(text)
            row = model.vocabulary.transform([tokens.words])
            expected = np.asarray(row @ weights).ravel() + model.bias
            assert np.allclose(scorer.decision(tokens), expected, atol=1e-9)

    def test_unseen_numbers_of_one_shape_score_alike(self) -> None:
        texts, labels = toy_rows()
        texts += ["invoice 20231 is wrong", "parcel 881 is late"] * 3
        labels += ["billing", "delivery"] * 3
        model = train_model(texts, labels)
        assert np.allclose(model.decision("parcel 48213"), model.decision("parcel 70056"))
        assert not np.allclose(model.decision("parcel 48213"), model.decision("parcel 4821"))

    def test_char_ngrams_stay_inside_the_word(self) -> None:
        grams = char_ngrams("card")
        assert {"c", " c", " ca", "card ", " card"} <= set(grams)
        assert " " not in grams
        assert all(gram.strip() and " " not in gram.strip() for gram in grams)
        assert len(grams) == 4 + 5 + 4 + 3 + 2

    def test_vocabulary_round_trips_through_plain_arrays(self) -> None:
        vocabulary = Vocabulary.fit([["where", "is", "my", "card"], ["my", "card", "is", "late"]])
        again = Vocabulary.from_arrays(vocabulary.arrays())
        assert again.words == vocabulary.words
        assert again.chars == vocabulary.chars
        assert np.array_equal(again.ngram_keys, vocabulary.ngram_keys)
        assert all(array.dtype != object for array in vocabulary.arrays().values())


class TestDefaultModel:
    def test_trained_from_shipped_examples_for_every_category(self) -> None:
        taxonomy = Taxonomy.load()
        model = load_default_model(taxonomy)
        assert model is not None
        assert set(model.labels) == set(taxonomy.ids)


class TestRealData:
    def test_banking77_subset(self, shared_data: Path, tmp_path: Path) -> None:
        """A slice of BANKING77 (20 intents): trains in seconds and must clearly learn."""
        source = shared_data / "datasets" / "banking77" / "train.csv"
        with source.open(newline="") as handle:
            rows = list(csv.DictReader(handle))
        intents = sorted({row["category"] for row in rows})[:20]
        chosen = [row for row in rows if row["category"] in intents]
        train, test = chosen[::5] + chosen[1::5] + chosen[2::5] + chosen[3::5], chosen[4::5]
        path = tmp_path / "test.csv"
        with path.open("w", newline="") as handle:
            writer = csv.DictWriter(handle, fieldnames=["text", "category"])
            writer.writeheader()
            writer.writerows(test)
        model = train_model([r["text"] for r in train], [r["category"] for r in train])
        result = evaluate(model, load_dataset(path), threshold=0.0)
        assert result.accuracy >= 0.85
        assert set(result.per_class) == set(intents)

    def test_clinc150_out_of_scope_is_rejected(self, shared_data: Path) -> None:
        source = shared_data / "datasets" / "clinc150" / "clinc150_dev.json"
        data = json.loads(source.read_text())
        domains = sorted({label for _, label in data["train"]})[:30]
        train = [row for row in data["train"] if row[1] in domains]
        model = train_model([t for t, _ in train], [label for _, label in train])
        oos = [text for text, _ in data["oos_val"]]
        rejected = sum(model.predict(text, threshold=0.35)[0] == "unknown" for text in oos)
        in_scope = [row for row in data["val"] if row[1] in domains]
        right = sum(model.predict(text, threshold=0.35)[0] == label for text, label in in_scope)
        assert rejected / len(oos) >= 0.5
        assert right / len(in_scope) >= 0.8


class TestScorerAgainstTheReference:
    """The scorer's cached fast path equals the training rows (`Vocabulary.transform`) times the
    weights, to float rounding, on texts with words training never saw."""

    @staticmethod
    def texts() -> list[str]:
        import random

        rng = random.Random(5)
        known = [text for examples in TOY.values() for text in examples]
        words = " ".join(known).split()
        texts = []
        for n in range(120):
            size = rng.choice([1, 2, 3, 7, 40, 300])
            pieces = []
            for _ in range(size):
                draw = rng.random()
                if draw < 0.5:
                    pieces.append(rng.choice(words))
                elif draw < 0.65:
                    pieces.append(str(rng.randint(0, 10 ** rng.randint(1, 9))))
                elif draw < 0.8:
                    word = rng.choice(words)
                    cut = rng.randrange(len(word))
                    pieces.append(word[:cut] + rng.choice("xqzk'") + word[cut + 1 :])
                else:
                    pieces.append("".join(rng.choice("abcdefghijkl0123") for _ in range(n % 9 + 1)))
            texts.append(" ".join(pieces))
        return [*texts, "", "parcel", "parcel parcel", "zzq 4412", "my package " * 400]

    @pytest.mark.parametrize("novel_words", [3, 50_000])
    @pytest.mark.parametrize("scale", [0.0, 1.0])
    def test_fast_path_equals_transform_times_weights(self, novel_words: int, scale: float) -> None:
        model = train_model(*toy_rows(), embedding_scale=scale)
        scorer = Scorer(model.vocabulary, model.weights, model.bias, novel_words=novel_words)
        weights = model.weights.astype(np.float64)
        for _ in range(2):  # the second time from the rows learnt the first
            for text in self.texts():
                tokens = Tokens.of(text[:2000])
                row = model.vocabulary.transform([tokens.words])
                expected = np.asarray(row @ weights).ravel() + model.bias
                got = scorer.decision(tokens)
                assert np.allclose(got, expected, rtol=1e-9, atol=1e-12), text[:60]

    def test_probabilities_are_the_softmax_of_the_scores(self) -> None:
        model = train_model(*toy_rows())
        for text in self.texts()[:20]:
            scores = model.decision(text) * model.scale
            expected = np.exp(scores - scores.max())
            expected /= expected.sum()
            assert np.allclose(model.predict_proba(text), expected, rtol=1e-12, atol=1e-15)
            label, confidence = model.predict(text)
            assert label == model.labels[int(np.argmax(expected))]
            assert confidence == pytest.approx(float(expected.max()), rel=1e-12)
