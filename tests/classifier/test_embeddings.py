from __future__ import annotations

import numpy as np
import pytest

from omniroute.classifier.embeddings import DIMENSIONS, word_vectors
from omniroute.classifier.model import train_model
from omniroute.classifier.text import Tokens

from .test_model import toy_rows


class TestWordVectors:
    def test_a_word_is_the_sum_of_its_tokens(self) -> None:
        vectors = word_vectors()
        rows = vectors.of(["card", "declined", "card"])
        assert rows.shape == (3, DIMENSIONS + 1)
        assert np.array_equal(rows[0], rows[2])
        # "declined" is more than one token: its row sums them, and counts them.
        assert rows[1, DIMENSIONS] >= 2
        assert rows[0, DIMENSIONS] == 1
        assert np.linalg.norm(rows[1, :DIMENSIONS]) > 0

    def test_related_words_lie_closer_than_unrelated_ones(self) -> None:
        words = ["parcel", "package", "money", "refund", "weather", "rain"]
        vectors = word_vectors().of(words)[:, :DIMENSIONS]
        units = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
        unit = dict(zip(words, units, strict=True))
        assert unit["parcel"] @ unit["package"] > unit["parcel"] @ unit["money"] + 0.2
        assert unit["refund"] @ unit["money"] > unit["refund"] @ unit["weather"] + 0.2
        assert unit["weather"] @ unit["rain"] > unit["weather"] @ unit["package"] + 0.2

    def test_digits_pool_as_zeros(self) -> None:
        first, second, shorter = word_vectors().of(["48213", "70056", "4821"])
        assert np.array_equal(first, second)
        assert not np.array_equal(first, shorter)

    def test_no_words(self) -> None:
        assert word_vectors().of([]).shape == (0, DIMENSIONS + 1)

    def test_one_word_alone_or_in_a_batch_alike(self) -> None:
        vectors = word_vectors()
        # A word of many tokens (a pasted reference), alone and among others.
        long = "qx" * 150
        for word in ["card", long]:
            alone = vectors.of([word])[0]
            among = vectors.of(["refund", word])[1]
            assert alone[DIMENSIONS] == among[DIMENSIONS] > 0
            assert np.allclose(alone, among, atol=1e-12)


class TestEmbeddingBlock:
    # Words that no training row holds: only knowledge from outside the data relates them to
    # a category.
    SYNONYMS = {
        "shipment": "delivery",
        "postman": "delivery",
        "tracking": "delivery",
        "reimbursement": "billing",
        "payment": "billing",
        "cost": "billing",
        "username": "account",
        "credentials": "account",
    }

    def test_unseen_synonyms_find_their_category(self) -> None:
        texts, labels = toy_rows()
        known = {word for text in texts for word in Tokens.of(text).words}
        assert not known & set(self.SYNONYMS)
        with_vectors = train_model(texts, labels)
        ngrams_only = train_model(texts, labels, embedding_scale=0)
        assert with_vectors.vocabulary.embedding_size == DIMENSIONS
        assert ngrams_only.vocabulary.embedding_size == 0
        for word, label in self.SYNONYMS.items():
            assert with_vectors.predict(word)[0] == label, word
        # The n-gram model alone gets most of them wrong: the vectors did the work.
        right = sum(ngrams_only.predict(word)[0] == label for word, label in self.SYNONYMS.items())
        assert right <= len(self.SYNONYMS) // 2

    def test_the_block_changes_the_scores(self) -> None:
        texts, labels = toy_rows()
        model = train_model(texts, labels)
        embedding = model.weights[-DIMENSIONS:]
        assert np.abs(embedding).max() > 0
        # Without the block's weights the same text scores otherwise.
        text = "the shipment is late"
        blind = train_model(texts, labels)
        blind.weights[-DIMENSIONS:] = 0
        blind.__post_init__()
        assert not np.allclose(model.decision(text), blind.decision(text))

    @pytest.mark.parametrize("scale", [0.0, 0.5, 2.0])
    def test_cached_scores_match_the_training_rows_at_any_scale(self, scale: float) -> None:
        model = train_model(*toy_rows(), embedding_scale=scale)
        for text in ["the shipment qx19 never came", "zebra 4412", "cost cost cost of it", ""]:
            tokens = Tokens.of(text)
            row = model.vocabulary.transform([tokens.words])
            expected = np.asarray(row @ model.weights.astype(np.float64)).ravel() + model.bias
            for _ in range(2):
                assert np.allclose(model.decision(text), expected, atol=1e-9)
