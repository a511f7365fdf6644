"""Word and character n-gram TF-IDF features over a vocabulary of strings learnt in training,
and a pretrained sentence embedding.

Three blocks, each L2-normalised on its own (TF-IDF weighting and per-block norms are what make
a linear model good at intents):
- words: unigrams with sublinear TF (1 + log count), bigrams and trigrams present or not
  (they rarely repeat in a message, and presence spares counting them), times IDF;
- characters: each word's distinct character n-grams (1-5, the word padded by a space each
  side, as scikit-learn's `char_wb`) weighted by IDF, summed over the text's distinct words,
  each word counted sublinearly. The block is normalised by sqrt(sum over words of
  (a_w * |u_w|)^2), as if different words shared no n-gram, instead of by its exact norm;
- embedding: the average of the text's WordLlama token vectors (`embeddings.py`; each word
  weighted sublinearly as above), minus the training texts' average, L2-normalised and times a
  scale (`embedding_scale`; 0 leaves the block out). Knowledge of words from outside the data:
  on BANKING77 it is what lifts a linear model past 0.90.

That choice makes the character block linear in words, so classifying caches, per distinct
word, its character block's product with the weights: a message costs a dictionary lookup per
word and a fixed dozen numpy calls, whatever its length or the vocabulary's size (a word never
seen costs one pass over its n-grams and one call of the tokenizer, once). On an 80/20 split
of BANKING77's train.csv it is as accurate as the exact norm (0.902 against 0.901 with
LinearSVC).

The embedding block is a sum of per-word rows too: with t_w = s_w - m_w mu for a word of m_w
tokens whose vectors sum to s_w, x/n - mu = (sum of a_w t_w) / n, and the count n cancels in
the normalisation. So each word's t_w @ E (E the block's weights) is cached beside t_w, and a
message's block is the same gather and product as the other blocks' plus a dot product for the
norm.

A vocabulary of strings rather than hashes: exact (no collisions), and a dictionary lookup is
cheaper than hashing in Python. Word bigrams and trigrams are keyed by the words' ids, so they
are looked up with one `searchsorted` per message instead of joining strings.
"""

from __future__ import annotations

import math
import struct
from collections import Counter
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt
from scipy.sparse import csr_matrix, diags, hstack

from omniroute.classifier import embeddings
from omniroute.classifier.embeddings import DIMENSIONS, SOURCE, word_vectors
from omniroute.classifier.text import Tokens

F32: TypeAlias = npt.NDArray[np.float32]
F64: TypeAlias = npt.NDArray[np.float64]
I64: TypeAlias = npt.NDArray[np.int64]

# The opening of a text that is classified; long e-mails say what they are about early.
MAX_CHARS = 2000
CHAR_NGRAMS = (1, 5)
# Word ids must keep trigram keys (below V^3 + V^2) inside int64.
MAX_WORDS = 2_000_000
# Words never seen in training whose scores are cached, beyond the vocabulary's own.
NOVEL_WORD_CACHE = 50_000


def char_shape(word: str) -> str:
    """The word as its char n-grams (and its word vector) see it: every digit a 0.

    Order numbers, amounts and references then share n-grams ("0000"), and the words training
    never saw that differ only in their digits share one cached row when classifying.
    """
    return embeddings.char_shape(word)


def char_ngrams(word: str) -> list[str]:
    """The character n-grams of the word's shape, padded by a space each side; the lone spaces
    left out."""
    word = char_shape(word)
    padded = f" {word} "
    low, high = CHAR_NGRAMS
    grams = list(word) if low == 1 else []
    size = len(padded)
    for n in range(max(2, low), high + 1):
        grams.extend(padded[i : i + n] for i in range(size - n + 1))
    return grams


def _sublinear(count: int) -> float:
    return 1.0 + math.log(count)


# 1 + log(count) for small counts, looked up rather than computed per message.
_SUBLINEAR = np.concatenate(([0.0], 1.0 + np.log(np.arange(1, 1025, dtype=np.float64))))
# The same and its square, for the scorer's weights.
_SUBLINEAR_AND_SQUARE = np.array((_SUBLINEAR, _SUBLINEAR * _SUBLINEAR))
_ONE = np.ones(1)
# Multiplier of the scorer's n-gram key filter (odd; 2^64 over the golden ratio).
_HASH = np.uint64(0x9E3779B97F4A7C15)
# A table row, as the scorer's word dictionaries hold it: the bytes of one intp.
_ROW = struct.Struct("=q" if np.dtype(np.intp).itemsize == 8 else "=i")


def _sublinear_array(counts: npt.NDArray[Any]) -> F64:
    if counts.size and int(counts.max()) < _SUBLINEAR.size:
        return np.take(_SUBLINEAR, counts.astype(np.intp))
    return np.asarray(1.0 + np.log(counts), dtype=np.float64)


def _idf(df: npt.NDArray[Any], docs: int) -> F32:
    """Smoothed IDF, as scikit-learn's TfidfTransformer."""
    return (np.log((1 + docs) / (1 + df)) + 1).astype(np.float32)


@dataclass(frozen=True)
class Vocabulary:
    """The feature columns: word unigrams (one per known word), word n-grams, char n-grams."""

    words: list[str]
    word_idf: F32  # 0 for a word kept only to key n-grams (rarer than min_df)
    ngram_keys: I64  # sorted keys of word bigrams and trigrams, see `_ngram_keys`
    ngram_idf: F32
    chars: list[str]
    char_idf: F32
    # The training texts' average embedding; unused at scale 0.
    embedding_mean: F64
    embedding_scale: float
    # Which vectors the embedding block was trained with: `embeddings.SOURCE` and a digest.
    embedding_source: str

    @property
    def embedding_size(self) -> int:
        return DIMENSIONS if self.embedding_scale else 0

    @property
    def size(self) -> int:
        return len(self.words) + int(self.ngram_keys.size) + len(self.chars) + self.embedding_size

    def arrays(self) -> dict[str, npt.NDArray[Any]]:
        """Plain arrays to save (strings as newline-joined UTF-8: no pickles, compact)."""
        return {
            "words": _pack(self.words),
            "word_idf": self.word_idf,
            "ngram_keys": self.ngram_keys,
            "ngram_idf": self.ngram_idf,
            "chars": _pack(self.chars),
            "char_idf": self.char_idf,
            "embedding_mean": self.embedding_mean,
            "embedding_scale": np.array(self.embedding_scale),
            "embedding_source": np.frombuffer(self.embedding_source.encode(), dtype=np.uint8),
        }

    @classmethod
    def from_arrays(cls, arrays: Any) -> Vocabulary:
        return cls(
            _unpack(arrays["words"]),
            arrays["word_idf"].astype(np.float32),
            arrays["ngram_keys"].astype(np.int64),
            arrays["ngram_idf"].astype(np.float32),
            _unpack(arrays["chars"]),
            arrays["char_idf"].astype(np.float32),
            arrays["embedding_mean"].astype(np.float64),
            float(arrays["embedding_scale"]),
            arrays["embedding_source"].tobytes().decode(),
        )

    @classmethod
    def fit(
        cls, docs: Sequence[Sequence[str]], min_df: int = 1, embedding_scale: float = 0.0
    ) -> Vocabulary:
        """Learn columns and IDFs from tokenised documents; n-grams rarer than min_df are left
        out (every word keeps an id, so the n-grams it starts can still be keyed). With an
        embedding scale, also the documents' average embedding."""
        word_df: Counter[str] = Counter()
        for doc in docs:
            word_df.update(set(doc))
        words = sorted(word_df)
        if len(words) > MAX_WORDS:
            raise ValueError(f"more than {MAX_WORDS} distinct words; raise min_df")
        ids = {word: i for i, word in enumerate(words)}
        df = np.array([word_df[word] for word in words], dtype=np.int64)
        word_idf = np.where(df >= min_df, _idf(df, len(docs)), 0).astype(np.float32)

        ngram_df: Counter[int] = Counter()
        for doc in docs:
            ngram_df.update(set(_ngram_keys(_ids(doc, ids), len(words)).tolist()))
        kept = sorted(key for key, seen in ngram_df.items() if seen >= min_df)
        ngram_keys = np.array(kept, dtype=np.int64)
        ngram_idf = _idf(np.array([ngram_df[key] for key in kept]), len(docs))

        # A char n-gram's document frequency: the documents holding a word that holds it.
        char_docs: dict[str, set[int]] = {}
        word_docs: dict[str, list[int]] = {}
        for number, doc in enumerate(docs):
            for word in set(doc):
                word_docs.setdefault(word, []).append(number)
        for word, numbers in word_docs.items():
            for gram in set(char_ngrams(word)):
                char_docs.setdefault(gram, set()).update(numbers)
        chars = sorted(gram for gram, held in char_docs.items() if len(held) >= min_df)
        char_idf = _idf(np.array([len(char_docs[gram]) for gram in chars]), len(docs))
        mean, source = np.zeros(DIMENSIONS), ""
        if embedding_scale:
            vectors = word_vectors()
            source = f"{SOURCE} {vectors.digest}"
            by_type, types = _weights_by_type(docs)
            pooled = by_type @ vectors.of(types)
            tokens = pooled[:, DIMENSIONS]
            held = tokens > 0
            if held.any():
                mean = (pooled[held, :DIMENSIONS] / tokens[held, None]).mean(axis=0)
        return cls(
            words,
            word_idf,
            ngram_keys,
            ngram_idf,
            chars,
            char_idf,
            mean,
            embedding_scale,
            source,
        )

    def transform(self, docs: Iterable[Sequence[str]]) -> csr_matrix:
        """The feature rows of tokenised documents (for training and held-out scoring)."""
        ids = {word: i for i, word in enumerate(self.words)}
        char_columns = {gram: i for i, gram in enumerate(self.chars)}
        vocabulary_size = len(self.words)
        word_rows, word_cols, word_vals = [], [], []
        char_rows, type_cols, type_vals = [], [], []
        types: dict[str, int] = {}
        documents = 0
        for number, doc in enumerate(docs):
            documents += 1
            counts = Counter(doc)
            for word, seen in counts.items():
                weight = _sublinear(seen)
                known = ids.get(word)
                if known is not None and self.word_idf[known]:
                    word_rows.append(number)
                    word_cols.append(known)
                    word_vals.append(weight * float(self.word_idf[known]))
                char_rows.append(number)
                type_cols.append(types.setdefault(word, len(types)))
                type_vals.append(weight)
            keys = _ngram_keys(_ids(doc, ids), vocabulary_size)
            columns = self._ngram_columns(keys)
            if columns.size:
                distinct = np.unique(columns)
                word_rows.extend([number] * distinct.size)
                word_cols.extend((distinct + vocabulary_size).tolist())
                word_vals.extend(self.ngram_idf[distinct].tolist())
        word_block = csr_matrix(
            (word_vals, (word_rows, word_cols)),
            shape=(documents, vocabulary_size + self.ngram_keys.size),
            dtype=np.float64,
        )
        # Char block: (documents x word types) @ (word types x char n-grams).
        by_type = csr_matrix(
            (type_vals, (char_rows, type_cols)), shape=(documents, len(types)), dtype=np.float64
        )
        per_word = self._char_vectors(list(types), char_columns)
        char_block = (by_type @ per_word).tocsr()
        squared = np.asarray(per_word.multiply(per_word).sum(axis=1)).ravel()
        char_norm = np.sqrt(by_type.multiply(by_type) @ squared)
        word_norm = np.sqrt(np.asarray(word_block.multiply(word_block).sum(axis=1)).ravel())
        blocks = [_scale_rows(word_block, word_norm), _scale_rows(char_block, char_norm)]
        if self.embedding_scale:
            summed = by_type @ self.word_embeddings(list(types))
            norms = np.linalg.norm(summed, axis=1)
            norms[norms == 0] = 1.0
            blocks.append(csr_matrix(summed * (self.embedding_scale / norms)[:, None]))
        return hstack(blocks, format="csr")

    def word_embeddings(self, words: Sequence[str]) -> F64:
        """Per word, t_w = s_w - m_w mu: its summed token vectors s_w less m_w (its token
        count) times the training average. A text's average minus the training average is the
        weighted sum of these over its token count."""
        rows = word_vectors().of(words)
        return np.asarray(rows[:, :DIMENSIONS] - rows[:, DIMENSIONS:] * self.embedding_mean)

    def _ngram_columns(self, keys: I64) -> npt.NDArray[np.intp]:
        if keys.size == 0 or self.ngram_keys.size == 0:
            return np.empty(0, dtype=np.intp)
        position = np.searchsorted(self.ngram_keys, keys)
        position[position >= self.ngram_keys.size] = 0
        return position[self.ngram_keys[position] == keys]

    def _char_vectors(self, words: Sequence[str], columns: dict[str, int]) -> csr_matrix:
        """Per word, the IDFs of its distinct char n-grams (rows of a words x n-grams matrix)."""
        rows: list[int] = []
        cols: list[int] = []
        for number, word in enumerate(words):
            found = _char_columns(word, columns)
            rows.extend([number] * len(found))
            cols.extend(found)
        return csr_matrix(
            (self.char_idf[cols].astype(np.float64), (rows, cols)),
            shape=(len(words), len(self.chars)),
        )


def _weights_by_type(docs: Iterable[Sequence[str]]) -> tuple[csr_matrix, list[str]]:
    """Documents x distinct words, each word weighted sublinearly by its count."""
    rows, cols, vals = [], [], []
    types: dict[str, int] = {}
    documents = 0
    for number, doc in enumerate(docs):
        documents += 1
        for word, seen in Counter(doc).items():
            rows.append(number)
            cols.append(types.setdefault(word, len(types)))
            vals.append(_sublinear(seen))
    matrix = csr_matrix((vals, (rows, cols)), shape=(documents, len(types)), dtype=np.float64)
    return matrix, list(types)


def _char_columns(word: str, columns: dict[str, int]) -> set[int]:
    """The vocabulary columns of a word's distinct char n-grams."""
    found: set[int | None] = set(map(columns.get, char_ngrams(word)))
    found.discard(None)
    return found  # type: ignore[return-value]  # None was just discarded


def _ids(doc: Sequence[str], ids: dict[str, int]) -> I64:
    """Word ids of a document; a word outside the vocabulary gets the sentinel id len(ids)."""
    unknown = len(ids)
    return np.fromiter((ids.get(word, unknown) for word in doc), dtype=np.int64, count=len(doc))


def _ngram_keys(ids: I64, vocabulary_size: int) -> I64:
    """Keys of the word bigrams (a*B + b) and trigrams (B^2 + (a*B + b)*B + c), in base
    B = V + 1: a key holding the sentinel id V of an unknown word is no learnt key, so unknown
    words need no masking."""
    if ids.size < 2:
        return np.empty(0, dtype=np.int64)
    base = np.int64(vocabulary_size + 1)
    bigrams = ids[:-1] * base + ids[1:]
    trigrams = bigrams[:-1] * base + ids[2:]
    trigrams += base * base
    return np.concatenate((bigrams, trigrams))


def _scale_rows(matrix: csr_matrix, norms: F64) -> csr_matrix:
    safe = np.where(norms > 0, norms, 1.0)
    return csr_matrix(diags(1.0 / safe) @ matrix)


def _pack(strings: Sequence[str]) -> npt.NDArray[np.uint8]:
    # Tokens and their n-grams never hold a newline (the tokeniser keeps [a-z0-9']).
    return np.frombuffer("\n".join(strings).encode(), dtype=np.uint8)


def _unpack(packed: npt.NDArray[np.uint8]) -> list[str]:
    text = packed.tobytes().decode()
    return text.split("\n") if text else []


class Scorer:
    """A text's linear scores, equal to `Vocabulary.transform` followed by the product with the
    weights, computed from cached partial scores.

    One table holds a row per word: row 0 unused, then a row per vocabulary word (row = id + 1),
    then rows for words never seen, filled on first sight (grown as needed). Its columns are
    the word's unigram weights times IDF, its char block's product u_w @ W, its embedding row's
    product t_w @ E (see `Vocabulary.word_embeddings`; E the block's weights times its scale),
    the word's two squared norms (IDF squared, |u_w|^2), then t_w itself (for the embedding's
    norm). A second table holds a row per word n-gram (weights times IDF, IDF squared).

    A message costs one dictionary lookup per word (in a compiled loop; the rows are kept as
    bytes, so the message's rows are one `bytes.join` and `np.frombuffer` away; a word never
    seen comes out empty, is learnt, and only those are looked up again), a sort of its
    rows (a word never seen has a row of its own, a copy of its shape's: distinct rows are then
    distinct words, and their counts come from the sort), one gather and one product with the
    words' sublinear weights (every block's scores and the embedding's summed vector at once)
    and one with their squares, and for the word n-grams keys in base V + 2 (trigram keys are
    then above every bigram key with no offset), one `searchsorted`, one gather and a product
    with the found rows (a repeat weighted 0). About 30 numpy calls whatever the text's length.
    """

    def __init__(
        self,
        vocabulary: Vocabulary,
        weights: F32,
        bias: F32,
        novel_words: int = NOVEL_WORD_CACHE,
    ) -> None:
        classes = int(weights.shape[1])
        words, ngrams = len(vocabulary.words), int(vocabulary.ngram_keys.size)
        chars = len(vocabulary.chars)
        dims = vocabulary.embedding_size
        self._classes = classes
        self._vocabulary_size = words
        # Columns: [word scores | char scores | embedding scores | word sq. | char sq. | t_w].
        self._squares = 3 * classes
        width = 3 * classes + 2 + dims
        # Word n-gram keys over table rows (id + 1; any word outside the vocabulary V + 1) in
        # base V + 2: bigram a*B + b, trigram a*B^2 + b*B + c, which with a >= 1 is above every
        # bigram key. Same order as the vocabulary's keys (base V + 1, trigrams offset by B^2).
        old_base, base = words + 1, words + 2
        keys = vocabulary.ngram_keys.astype(np.int64)
        trigram = keys >= old_base * old_base
        rest = np.where(trigram, keys - old_base * old_base, keys)
        first, last = np.divmod(rest, old_base)
        middle = np.where(trigram, first % old_base, 0)
        first = np.where(trigram, first // old_base, first)
        recoded = np.where(
            trigram,
            (first + 1) * base * base + (middle + 1) * base + (last + 1),
            (first + 1) * base + (last + 1),
        )
        order = np.argsort(recoded, kind="stable")
        # A sentinel above every key: searchsorted never points past the end.
        self._ngram_keys = np.append(recoded[order], np.iinfo(np.int64).max)
        self._unknown = np.int64(words + 1)
        self._base = np.int64(base)
        # A filter of the keys (one byte per slot, a multiplicative hash's top bits): about 64
        # slots per key, so a key that is none of them is caught ~98% of the time; 16 MB at most.
        bits = min(24, max(10, int(ngrams * 64).bit_length()))
        self._filter_shift = np.uint64(64 - bits)
        self._filter = np.zeros(1 << bits, dtype=bool)
        hashed = (self._ngram_keys[:-1].view(np.uint64) * _HASH) >> self._filter_shift
        self._filter[hashed.view(np.int64)] = True
        ngram_idf = vocabulary.ngram_idf.astype(np.float64)
        ngram_table = np.zeros((ngrams, classes + 1))
        ngram_table[:, :classes] = weights[words : words + ngrams] * ngram_idf[:, None]
        ngram_table[:, classes] = ngram_idf**2
        self._ngrams = ngram_table[order]

        char_weights = weights[words + ngrams : words + ngrams + chars].astype(np.float64)
        self._char_columns = {gram: i for i, gram in enumerate(vocabulary.chars)}
        char_idf = vocabulary.char_idf.astype(np.float64)
        self._chars = np.hstack((char_weights * char_idf[:, None], (char_idf**2)[:, None]))
        self._bias = bias.astype(np.float64)

        self._novel_start = self._used = words + 1
        self._limit = words + 1 + novel_words
        table = np.zeros((words + 1 + min(novel_words, 1024), width))
        word_idf = vocabulary.word_idf.astype(np.float64)
        table[1 : words + 1, :classes] = weights[:words] * word_idf[:, None]
        per_word = vocabulary._char_vectors(vocabulary.words, self._char_columns)
        table[1 : words + 1, classes : 2 * classes] = per_word @ char_weights
        table[1 : words + 1, 3 * classes] = word_idf**2
        squares = per_word.multiply(per_word).sum(axis=1)
        table[1 : words + 1, 3 * classes + 1] = np.asarray(squares).ravel()
        self._vocabulary = vocabulary
        self._embedding: F64 | None = None
        if dims:
            start = words + ngrams + chars
            self._embedding = weights[start : start + dims].astype(np.float64) * float(
                vocabulary.embedding_scale
            )
            vectors = vocabulary.word_embeddings(vocabulary.words)
            table[1 : words + 1, 3 * classes + 2 :] = vectors
            table[1 : words + 1, 2 * classes : 3 * classes] = vectors @ self._embedding
        self._table = table
        # Row of each word, as the 8 bytes of an intp (a message's rows are then one
        # `bytes.join` and `np.frombuffer` away, instead of a conversion per Python int): its
        # vocabulary id + 1 (which n-gram keys use), or a row past the vocabulary for a word
        # never seen (whose n-grams are unknown: the sentinel V + 1).
        self._known = {word: _ROW.pack(i + 1) for i, word in enumerate(vocabulary.words)}
        self._slots: dict[str, bytes] = dict(self._known)
        # Row of each shape (see `char_shape`) of the words never seen.
        self._shapes: dict[str, int] = {}

    def _learn(self, novel: list[str], message: Iterable[str]) -> None:
        """Fill rows for words training never saw: their char block, which is known for any
        word (no unigram, no n-grams), and their token vectors. One gather and one sum for all
        of a message's char n-grams, one tokenizer call for its words. `novel` are the distinct
        words of `message` that have no row yet, in the order they first come."""
        start = self._novel_start
        if self._used + len(novel) > self._limit:
            # Full: forget the words learnt so far (the vocabulary's rows stay), then learn
            # every word of this message outside the vocabulary, those learnt before included.
            self._slots = dict(self._known)
            self._shapes.clear()
            self._table[start:] = 0.0
            self._used = start
            novel = [word for word in dict.fromkeys(message) if word not in self._slots]
            # One text with more unseen words than the cache holds (a caller's own tokens).
            self._limit = max(self._limit, start + len(novel))
        columns: list[int] = []
        starts, slots = [], []
        fresh: list[str] = []
        fresh_rows: list[int] = []
        copies: list[int] = []
        sources: list[int] = []
        for word in novel:
            slot = self._used
            self._used += 1
            self._slots[word] = _ROW.pack(slot)
            shape = char_shape(word)
            known = self._shapes.get(shape)
            if known is not None:
                # Its row depends on the shape alone: a copy of that shape's row (each word
                # keeps a row of its own, so a message's distinct rows are its distinct words).
                copies.append(slot)
                sources.append(known)
                continue
            self._shapes[shape] = slot
            fresh.append(shape)
            fresh_rows.append(slot)
            found = _char_columns(word, self._char_columns)
            if found:
                starts.append(len(columns))
                slots.append(slot)
                columns.extend(found)
        if self._used > self._table.shape[0]:
            size = min(max(self._used, 2 * self._table.shape[0]), self._limit)
            grown = np.zeros((size, self._table.shape[1]))
            grown[: self._table.shape[0]] = self._table
            self._table = grown
        classes = self._classes
        table = self._table
        # One word (a message's usual case) is written through its row, by slices: numpy's
        # indexing by a list costs a conversion each time. Same values either way.
        if self._embedding is not None and fresh:
            rows = self._vocabulary.word_embeddings(fresh)
            product = rows @ self._embedding
            if len(fresh_rows) == 1:
                row = table[fresh_rows[0]]
                row[3 * classes + 2 :] = rows[0]
                row[2 * classes : 3 * classes] = product[0]
            else:
                table[fresh_rows, 3 * classes + 2 :] = rows
                table[fresh_rows, 2 * classes : 3 * classes] = product
        if columns:
            # Rows of `_chars`: [IDF times char weights | IDF squared], summed per word.
            sums = np.add.reduceat(np.take(self._chars, columns, axis=0), starts, axis=0)
            if len(slots) == 1:
                row = table[slots[0]]
                row[classes : 2 * classes] = sums[0, :classes]
                row[3 * classes + 1] = sums[0, classes]
            else:
                table[slots, classes : 2 * classes] = sums[:, :classes]
                table[slots, 3 * classes + 1] = sums[:, classes]
        if copies:
            table[copies] = table[sources]

    def _rows(self, words: list[str]) -> npt.NDArray[np.intp]:
        """The table rows of `words`, learning those of words never seen: one C lookup per
        word, a join, no conversion."""
        slots = self._slots
        # b"" for a word with no row yet: the joined rows then come out short.
        packed = [slots.get(word, b"") for word in words]
        joined = b"".join(packed)
        if len(joined) != len(words) * _ROW.size:
            novel = dict.fromkeys(word for word, row in zip(words, packed, strict=True) if not row)
            self._learn(list(novel), words)
            if self._slots is slots:
                # Only the words just learnt are looked up again.
                joined = b"".join(
                    [row or slots[word] for word, row in zip(words, packed, strict=True)]
                )
            else:
                # The cache was full and started again: every row may have moved.
                learnt = self._slots
                joined = b"".join([learnt[word] for word in words])
        return np.frombuffer(joined, dtype=np.intp)

    def decision(self, tokens: Tokens) -> F64:
        words = tokens.words
        size = len(words)
        if not size:
            return self._bias.copy()
        # A compiled loop reads a list by index (the tokenizer gives lists).
        ids = self._rows(words if isinstance(words, list) else list(words))
        if size == 1:
            rows, weight, squares = ids, _ONE, _ONE
        else:
            # Each word has a row of its own: the distinct rows and how often each comes, from
            # the sorted rows.
            order = np.sort(ids)
            edge = np.empty(size + 1, dtype=bool)
            edge[0] = edge[size] = True
            np.not_equal(order[1:], order[:-1], out=edge[1:size])
            starts = edge.nonzero()[0]
            rows = order.take(starts[:-1])
            seen = starts[1:] - starts[:-1]
            # Counts never exceed the number of words: the table covers them when it is shorter.
            if size < _SUBLINEAR.size:
                weight, squares = _SUBLINEAR_AND_SQUARE.take(seen, axis=1)
            else:
                weight = 1 + np.log(seen)
                squares = weight * weight
        gathered = self._table.take(rows, axis=0)
        # Every block's scores and the embedding's summed vector, then the squared norms.
        scores = weight @ gathered
        at = self._squares
        word_squared, char_squared = (squares @ gathered[:, at : at + 2]).tolist()
        if size > 1:
            # Rows past the vocabulary are words never seen: the sentinel.
            ids = np.minimum(ids, self._unknown)
            # Bigram keys a*B + b, then trigram keys (a*B + b)*B + c, into one array.
            keys = np.empty(2 * size - 3 if size > 2 else 1, dtype=np.int64)
            bigrams = keys[: size - 1]
            np.multiply(ids[:-1], self._base, out=bigrams)
            bigrams += ids[1:]
            if size > 2:
                trigrams = keys[size - 1 :]
                np.multiply(bigrams[:-1], self._base, out=trigrams)
                trigrams += ids[2:]
            # Only keys whose bit is set in the filter can be learnt ones (most of a message's
            # are not): three cheap calls spare the binary search for the others.
            hashed = keys.view(np.uint64) * _HASH
            hashed >>= self._filter_shift
            keys = keys[self._filter.take(hashed.view(np.int64))]
            position = np.searchsorted(self._ngram_keys, keys)
            found = position[self._ngram_keys.take(position) == keys]
            if found.size:
                # Present or not: each n-gram counts once (weight 0 for its repeats).
                found.sort()
                once = np.empty(found.size)
                once[0] = 1.0
                np.not_equal(found[1:], found[:-1], out=once[1:])
                ngrams = once @ self._ngrams.take(found, axis=0)
                classes = self._classes
                scores[:classes] += ngrams[:classes]
                word_squared += float(ngrams[classes])
        norms = [
            1 / math.sqrt(word_squared) if word_squared > 0 else 0.0,
            1 / math.sqrt(char_squared) if char_squared > 0 else 0.0,
            0.0,
        ]
        if self._embedding is not None:
            vector = scores[at + 2 :]
            squared = float(vector @ vector)
            if squared > 0:
                norms[2] = 1 / math.sqrt(squared)
        # Each block's scores over its norm, plus the bias: one small product.
        result: F64 = np.asarray(norms) @ scores[:at].reshape(3, self._classes) + self._bias
        return result
