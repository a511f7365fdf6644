"""Hashed word and character n-gram TF-IDF features, computed with numpy in one pass per text.

Hashing (instead of a vocabulary of strings) keeps the model a few numpy arrays we control.
Character n-grams are hashed with vectorised arithmetic when training; when classifying, each
word's vocabulary columns are cached, so a message costs a lookup per word rather than a Python
loop over thousands of n-grams.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import numpy.typing as npt

from omniroute.classifier.text import Tokens, fold, words

U64 = npt.NDArray[np.uint64]
F32 = npt.NDArray[np.float32]

CHAR_NGRAMS = (1, 2, 3, 4, 5)
_BASE = np.uint64(1_000_003)
# The opening of a text that is classified; long e-mails say what they are about early.
MAX_CHARS = 2000
# Per-n salts keep n-grams of different lengths (and words) apart in one hash space.
_SALT = {n: np.uint64(0x9E3779B97F4A7C15 * (n + 1) % 2**64) for n in (*CHAR_NGRAMS, 10, 11, 12)}
_WORD_CACHE_LIMIT = 100_000
WORD_BLOCK = 0
CHAR_BLOCK = 1


def _char_hashes(normalised: str) -> U64:
    """Character n-grams inside words (padded by one space each side), like char_wb."""
    data = np.frombuffer(f" {normalised} ".encode(), dtype=np.uint8).astype(np.uint64)
    space = np.concatenate(([0], np.cumsum(data == 32)))
    out = [data[data != 32] ^ _SALT[1]]
    rolling = data
    # Horner's rule over shrinking windows: the n-gram hashes for every n in a few array ops.
    for n in range(2, CHAR_NGRAMS[-1] + 1):
        if data.size < n:
            break
        rolling = rolling[:-1] * _BASE + data[n - 1 :]
        start = np.arange(rolling.size)
        # Keep n-grams with no space strictly inside them: they stay within one word.
        inside = space[start + n - 1] - space[start + 1]
        out.append(rolling[inside == 0] ^ _SALT[n])
    return np.concatenate(out)


def _word_hashes(tokens: Sequence[str]) -> U64:
    if not tokens:
        return np.empty(0, dtype=np.uint64)
    unigrams = np.fromiter(
        (zlib.crc32(t.encode()) for t in tokens), dtype=np.uint64, count=len(tokens)
    )
    return _ngrams(unigrams)


def _ngrams(unigrams: U64) -> U64:
    """Word unigram, bigram and trigram hashes from the words' CRC32s."""
    bigrams = unigrams[:-1] * _BASE + unigrams[1:]
    trigrams = bigrams[:-1] * _BASE + unigrams[2:]
    return np.concatenate((unigrams ^ _SALT[10], bigrams ^ _SALT[11], trigrams ^ _SALT[12]))


@dataclass(frozen=True, slots=True)
class Grams:
    """The hashed n-grams of one text, per block."""

    words: U64
    chars: U64


def extract(text: str) -> Grams:
    folded = fold(text[:MAX_CHARS])
    tokens = words(folded)
    return Grams(words=_word_hashes(tokens), chars=_char_hashes(" ".join(tokens)))


class Vectoriser:
    """Maps hashed n-grams to column indices of a fixed vocabulary, with sublinear TF-IDF."""

    def __init__(self, keys: U64, idf: F32, block: npt.NDArray[np.int8]) -> None:
        order = np.argsort(keys)
        self.keys = keys[order]
        self.idf = idf[order].astype(np.float32)
        self.block = block[order]
        self._word_cache: dict[str, tuple[int, npt.NDArray[np.intp]]] = {}

    @property
    def size(self) -> int:
        return int(self.keys.size)

    def _columns(self, hashes: U64) -> tuple[npt.NDArray[np.intp], F32]:
        if hashes.size == 0 or self.keys.size == 0:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float32)
        return self._counted(self._known(hashes), None)

    def _counted(
        self, columns: npt.NDArray[np.intp], weights: npt.NDArray[np.intp] | None
    ) -> tuple[npt.NDArray[np.intp], F32]:
        """Distinct columns with their (weighted) counts, TF-IDF weighted and normalised.

        A bincount over the vocabulary beats sorting for a long message and a small vocabulary,
        but not for a short text against a large one (training, big models).
        """
        if columns.size == 0:
            return columns, np.empty(0, dtype=np.float32)
        if columns.size * 8 >= self.keys.size:
            dense = np.bincount(columns, weights=weights, minlength=self.keys.size)
            distinct = (dense != 0).nonzero()[0]
            return distinct, self._weigh(distinct, dense[distinct])
        if weights is None:
            weights = np.ones(columns.size, dtype=np.intp)
        distinct, counts = _sum_by_column(columns, weights)
        return distinct, self._weigh(distinct, counts)

    def transform_text(
        self, text: str, tokens: Tokens | None = None
    ) -> tuple[npt.NDArray[np.intp], F32]:
        """Same row as `transform_one(extract(text))`, reusing each word's character n-grams.

        A word's n-grams do not depend on its neighbours, so their vocabulary columns are
        cached per word: a message costs a dictionary lookup per word instead of hashing and
        searching thousands of n-grams.
        """
        view = tokens if tokens is not None else Tokens.of(text[:MAX_CHARS])
        if not view.words:
            return np.empty(0, dtype=np.intp), np.empty(0, dtype=np.float32)
        cache = self._word_cache
        frequency = view.counts
        parts, repeats = [], []
        for token, seen in frequency.items():
            entry = cache.get(token)
            if entry is None:
                if len(cache) >= _WORD_CACHE_LIMIT:
                    cache.clear()
                entry = cache[token] = (
                    zlib.crc32(token.encode()),
                    self._known(_char_hashes(token)),
                )
            parts.append(entry[1])
            repeats.append(seen)
        crcs = np.array([cache[token][0] for token in view.words], dtype=np.uint64)
        word_cols, word_vals = self._columns(_ngrams(crcs))
        lengths = np.fromiter((part.size for part in parts), dtype=np.intp, count=len(parts))
        occurrences = np.repeat(np.asarray(repeats, dtype=np.intp), lengths)
        char_cols, char_vals = self._counted(np.concatenate(parts), occurrences)
        return np.concatenate((word_cols, char_cols)), np.concatenate((word_vals, char_vals))

    def _known(self, hashes: U64) -> npt.NDArray[np.intp]:
        """Vocabulary columns of the hashes that are in the vocabulary, duplicates kept."""
        if hashes.size == 0 or self.keys.size == 0:
            return np.empty(0, dtype=np.intp)
        position = np.searchsorted(self.keys, hashes)
        position[position >= self.keys.size] = 0
        return position[self.keys[position] == hashes]

    def _weigh(self, columns: npt.NDArray[np.intp], counts: npt.NDArray[Any]) -> F32:
        values = (1.0 + np.log(counts)).astype(np.float32) * self.idf[columns]
        norm = float(np.sqrt(np.dot(values, values)))
        if norm > 0:
            values /= norm
        return values

    def transform_one(self, grams: Grams) -> tuple[npt.NDArray[np.intp], F32]:
        """Sparse row as (columns, values); each block is L2-normalised on its own."""
        word_cols, word_vals = self._columns(grams.words)
        char_cols, char_vals = self._columns(grams.chars)
        return np.concatenate((word_cols, char_cols)), np.concatenate((word_vals, char_vals))

    @classmethod
    def fit(cls, docs: Sequence[Grams], min_df: int = 1) -> Vectoriser:
        keys_list, idf_list, block_list = [], [], []
        n_docs = len(docs)
        for block, pick in ((WORD_BLOCK, _words_of), (CHAR_BLOCK, _chars_of)):
            per_doc = [np.unique(pick(d)) for d in docs]
            allkeys = np.concatenate(per_doc) if per_doc else np.empty(0, dtype=np.uint64)
            keys, df = np.unique(allkeys, return_counts=True)
            keep = df >= min_df
            keys, df = keys[keep], df[keep]
            keys_list.append(keys)
            idf_list.append((np.log((1 + n_docs) / (1 + df)) + 1).astype(np.float32))
            block_list.append(np.full(keys.size, block, dtype=np.int8))
        return cls(np.concatenate(keys_list), np.concatenate(idf_list), np.concatenate(block_list))

    def transform(
        self, docs: Iterable[Grams]
    ) -> tuple[F32, npt.NDArray[np.intp], npt.NDArray[np.intp]]:
        """CSR parts (data, indices, indptr) for a batch, for training."""
        data, indices, indptr = [], [], [0]
        for grams in docs:
            cols, vals = self.transform_one(grams)
            data.append(vals)
            indices.append(cols)
            indptr.append(indptr[-1] + cols.size)
        return (
            np.concatenate(data) if data else np.empty(0, dtype=np.float32),
            np.concatenate(indices) if indices else np.empty(0, dtype=np.intp),
            np.asarray(indptr, dtype=np.intp),
        )


def _words_of(grams: Grams) -> U64:
    return grams.words


def _chars_of(grams: Grams) -> U64:
    return grams.chars


class Scorer:
    """Linear scores of a text, equal to `transform_text` followed by a dot product.

    Built once per model: the vocabulary is split into its word and character blocks, the weight
    rows reordered to match, and each word's character-n-gram columns cached. Scoring a message
    then costs a dictionary lookup per distinct word and a fixed dozen numpy calls, whatever
    its length: one aggregation of every column, one gather of weight rows, one product.
    """

    def __init__(self, vectoriser: Vectoriser, weights: F32, bias: F32) -> None:
        word_rows = np.flatnonzero(vectoriser.block == WORD_BLOCK)
        char_rows = np.flatnonzero(vectoriser.block == CHAR_BLOCK)
        order = np.concatenate((word_rows, char_rows))
        # Keys stay sorted within each block, as the vectoriser keeps them.
        self._word_keys = vectoriser.keys[word_rows]
        self._char_keys = vectoriser.keys[char_rows]
        self._split = int(word_rows.size)
        self._size = int(order.size)
        self._idf = vectoriser.idf[order].astype(np.float64)
        self._weights = np.ascontiguousarray(weights[order])
        self._bias = bias.astype(np.float64)
        self._cache: dict[str, tuple[int, npt.NDArray[np.intp], int]] = {}
        self._empty = np.empty(0, dtype=np.intp)

    def _word(self, token: str) -> tuple[int, npt.NDArray[np.intp], int]:
        cache = self._cache
        if len(cache) >= _WORD_CACHE_LIMIT:
            cache.clear()
        keys = self._char_keys
        columns = self._empty
        if keys.size:
            hashes = _char_hashes(token)
            position = np.searchsorted(keys, hashes)
            position[position >= keys.size] = 0
            columns = (position[keys[position] == hashes] + self._split).astype(np.intp)
        entry = cache[token] = (zlib.crc32(token.encode()), columns, int(columns.size))
        return entry

    def decision(self, tokens: Tokens) -> npt.NDArray[np.float64]:
        if not tokens.words:
            return self._bias.copy()
        cache = self._cache
        parts, repeats, lengths = [], [], []
        for token, seen in tokens.counts.items():
            entry = cache.get(token) or self._word(token)
            parts.append(entry[1])
            repeats.append(seen)
            lengths.append(entry[2])
        crcs = np.array([cache[token][0] for token in tokens.words], dtype=np.uint64)
        hashes = _ngrams(crcs)
        keys = self._word_keys
        if keys.size:
            position = np.searchsorted(keys, hashes)
            position[position >= keys.size] = 0
            word_columns = position[np.take(keys, position) == hashes]
        else:
            word_columns = self._empty
        columns = np.concatenate((word_columns, *parts))
        if columns.size == 0:
            return self._bias.copy()
        occurrences = np.concatenate(
            (np.ones(word_columns.size), np.repeat(np.array(repeats, dtype=np.float64), lengths))
        )
        # Counting over the whole vocabulary beats sorting unless the vocabulary is huge.
        # (`(dense != 0).nonzero()` is several times faster than `flatnonzero` on floats.)
        if columns.size * 64 >= self._size:
            dense = np.bincount(columns, weights=occurrences, minlength=self._size)
            distinct = (dense != 0).nonzero()[0]
            counts = np.take(dense, distinct)
        else:
            distinct, counts = _sum_by_column(columns, occurrences)
        values = _sublinear(counts) * np.take(self._idf, distinct)
        split = int(np.searchsorted(distinct, self._split))
        # Each block is L2-normalised on its own, as in training.
        word_norm = float(np.sqrt(values[:split] @ values[:split]))
        char_norm = float(np.sqrt(values[split:] @ values[split:]))
        if word_norm > 0:
            values[:split] /= word_norm
        if char_norm > 0:
            values[split:] /= char_norm
        # `np.take` gathers rows several times faster than fancy indexing.
        rows = np.take(self._weights, distinct, axis=0)
        return np.asarray(values.astype(np.float32) @ rows + self._bias)


# 1 + log(count) for the counts a message has, looked up rather than computed.
_SUBLINEAR = 1.0 + np.log(np.arange(1, 1025, dtype=np.float64))
_SUBLINEAR = np.concatenate(([0.0], _SUBLINEAR))


def _sublinear(counts: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """1 + log(count), elementwise, for positive whole counts (occurrences of n-grams)."""
    if counts.size and float(counts.max()) < _SUBLINEAR.size - 1:
        return np.take(_SUBLINEAR, counts.astype(np.intp))
    return np.asarray(1.0 + np.log(counts))


def _sum_by_column(
    columns: npt.NDArray[np.intp], weights: npt.NDArray[Any]
) -> tuple[npt.NDArray[np.intp], npt.NDArray[Any]]:
    """Distinct columns (sorted) and the summed weights of each; sorts instead of `np.unique`,
    whose overhead dominates for a few thousand entries."""
    order = np.argsort(columns, kind="stable")
    ordered = columns[order]
    starts = np.empty(ordered.size, dtype=bool)
    starts[:1] = True
    np.not_equal(ordered[1:], ordered[:-1], out=starts[1:])
    first = starts.nonzero()[0]
    return ordered[first], np.add.reduceat(weights[order], first)
