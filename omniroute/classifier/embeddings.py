"""Pretrained word vectors: WordLlama's token embeddings, pooled per word.

WordLlama (MIT licence, Lee Miller; the `wordllama` package on PyPI) ships in its wheel the
token embedding table of Llama 2's tokenizer (32,000 tokens, 256 dimensions, float16), trained
so that the average of a text's token vectors is a good sentence embedding. That is knowledge
of words from outside our data: "renew" lands near "extend", "abroad" near "overseas".

Only the two files are read, from the installed package (the package itself is not imported:
its import configures logging and it would fetch a missing file from the network). The table
stays in float16 (16 MB); a token's row is converted to float64 the first time a word holds it
(numpy's float16 casts are slow), into a table whose untouched pages take no memory.

A word's vector is the sum of its tokens' vectors and their count, so that summing them over a
text's words and dividing gives the token-level average WordLlama computes. Digits are pooled
as zeros (as `features.char_shape` does), so unseen numbers of one shape share one vector.
"""

from __future__ import annotations

import hashlib
import json
import struct
from collections.abc import Sequence
from functools import cache
from importlib.util import find_spec
from pathlib import Path
from typing import Any, TypeAlias

import numpy as np
import numpy.typing as npt

F64: TypeAlias = npt.NDArray[np.float64]

SOURCE = "wordllama/l2_supercat_256"
DIMENSIONS = 256
_WEIGHTS = ("weights", "l2_supercat_256.safetensors")
_TOKENIZER = ("tokenizers", "l2_supercat_tokenizer_config.json")


class EmbeddingsUnavailable(RuntimeError):
    """The pretrained vectors cannot be read (the wordllama package is missing or changed)."""


class WordVectors:
    """Per word: the sum of its tokens' vectors (float64) and how many tokens it has."""

    def __init__(self, table: npt.NDArray[np.float16], tokenizer: Any, digest: str) -> None:
        self._table = table
        self._converted = np.zeros(table.shape)
        self._ready = np.zeros(table.shape[0], dtype=bool)
        self._tokenizer = tokenizer
        self.digest = digest

    def _rows(self, ids: list[int]) -> F64:
        ready = self._ready
        missing = [token for token in ids if not ready[token]]
        if missing:
            self._converted[missing] = self._table[missing]
            ready[missing] = True
        return self._converted.take(ids, axis=0)

    def of(self, words: Sequence[str]) -> F64:
        """Rows of [sum of token vectors | token count], one per word; empty words are zeros."""
        out = np.zeros((len(words), DIMENSIONS + 1))
        if len(words) == 1:
            # The classifier's usual case (a word never seen): no batch machinery.
            ids = self._tokenizer.encode(char_shape(words[0]), add_special_tokens=False).ids
            if ids:
                # A product rather than .sum(axis=0): numpy's reductions cost more for few rows.
                ones = _ONES[: len(ids)] if len(ids) <= _ONES.size else np.ones(len(ids))
                out[0, :DIMENSIONS] = ones @ self._rows(ids)
                out[0, DIMENSIONS] = len(ids)
            return out
        if not words:
            return out
        shapes = [char_shape(word) for word in words]
        encoded = self._tokenizer.encode_batch(shapes, add_special_tokens=False)
        lengths = [len(item.ids) for item in encoded]
        ids = [token for item in encoded for token in item.ids]
        if not ids:
            return out
        vectors = self._rows(ids)
        starts = np.cumsum([0, *lengths[:-1]])
        has = np.asarray(lengths) > 0
        out[has, :DIMENSIONS] = np.add.reduceat(vectors, starts[has], axis=0)
        out[:, DIMENSIONS] = lengths
        return out


def char_shape(word: str) -> str:
    """Digits as zeros (`features.char_shape`, which imports this module)."""
    return word.translate(_DIGITS_AS_ZERO)


_DIGITS_AS_ZERO = str.maketrans("123456789", "000000000")
_ONES = np.ones(64)


def _package_dir() -> Path:
    spec = find_spec("wordllama")
    if spec is None or not spec.submodule_search_locations:
        raise EmbeddingsUnavailable(
            "the wordllama package is not installed (pip install wordllama)"
        )
    return Path(next(iter(spec.submodule_search_locations)))


@cache
def word_vectors() -> WordVectors:
    """The process's one copy (memory-mapped table, tokenizer), loaded on first use."""
    from tokenizers import Tokenizer

    base = _package_dir()
    weights, tokenizer = base.joinpath(*_WEIGHTS), base.joinpath(*_TOKENIZER)
    if not weights.is_file() or not tokenizer.is_file():
        raise EmbeddingsUnavailable(f"{base} lacks {'/'.join(_WEIGHTS)} or {'/'.join(_TOKENIZER)}")
    with weights.open("rb") as handle:
        (size,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(size))
    entry = header.get("embedding.weight", {})
    if entry.get("dtype") != "F16" or entry.get("shape", [0, 0])[1] != DIMENSIONS:
        raise EmbeddingsUnavailable(f"{weights}: unexpected tensor {entry}")
    rows = int(entry["shape"][0])
    begin, _ = entry["data_offsets"]
    table = np.fromfile(
        weights, dtype=np.float16, count=rows * DIMENSIONS, offset=8 + size + begin
    ).reshape(rows, DIMENSIONS)
    # Identifies the vectors a model was trained with: header plus a sample of rows.
    digest = hashlib.sha256(json.dumps(header, sort_keys=True).encode())
    digest.update(np.ascontiguousarray(table[:: max(1, rows // 64)]).tobytes())
    return WordVectors(table, Tokenizer.from_file(str(tokenizer)), digest.hexdigest()[:12])
