"""Training and evaluation as library functions; the CLI is a thin layer over these."""

from __future__ import annotations

import csv
import json
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from omniroute.classifier.model import OUT_OF_SCOPE_LABELS, TextModel
from omniroute.classifier.taxonomy import UNKNOWN


class DatasetError(ValueError):
    """A training or evaluation file that cannot be read."""


@dataclass(frozen=True)
class Dataset:
    texts: list[str]
    labels: list[str]

    def __len__(self) -> int:
        return len(self.texts)


def load_dataset(
    path: Path,
    *,
    text_col: str = "text",
    label_col: str = "category",
    split: str | None = None,
) -> Dataset:
    """Read CSV, JSONL, or a JSON object of splits ({"train": [[text, label], ...], ...}).

    Without `split`, a JSON of splits gives train (+ oos_train) if it has them, else every split.
    """
    if not path.is_file():
        raise DatasetError(f"{path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _csv_rows(path)
    elif suffix in (".jsonl", ".ndjson"):
        rows = [json.loads(line) for line in path.read_text("utf-8").splitlines() if line.strip()]
    elif suffix == ".json":
        return _json_splits(path, split)
    else:
        raise DatasetError(f"{path}: use .csv, .jsonl or .json")
    texts, labels = [], []
    for number, row in enumerate(rows, start=1):
        if text_col not in row or label_col not in row:
            raise DatasetError(f"{path} row {number} lacks column {text_col!r} or {label_col!r}")
        texts.append(str(row[text_col] or ""))
        labels.append(str(row[label_col]).strip())
    if not texts:
        raise DatasetError(f"{path} has no rows")
    return Dataset(texts, labels)


def _csv_rows(path: Path) -> list[dict[str, Any]]:
    with path.open(newline="", encoding="utf-8-sig") as handle:
        return list(csv.DictReader(handle))


def _json_splits(path: Path, split: str | None) -> Dataset:
    data = json.loads(path.read_text("utf-8"))
    if not isinstance(data, dict):
        raise DatasetError(f"{path}: expected an object of splits")
    if split:
        names = [split]
    elif "train" in data:
        names = [name for name in ("train", "oos_train") if name in data]
    else:
        # An evaluation file (e.g. {"test": [...], "oos_test": [...]}): all of it.
        names = list(data)
    texts, labels = [], []
    for name in names:
        for name_part in name.split("+"):
            if name_part not in data:
                raise DatasetError(f"{path} has no split {name_part!r}; has {sorted(data)}")
            for text, label in data[name_part]:
                texts.append(str(text))
                labels.append(str(label))
    if not texts:
        raise DatasetError(f"{path} has no rows in {'+'.join(names) or 'any split'}")
    return Dataset(texts, labels)


@dataclass
class ClassScore:
    precision: float
    recall: float
    f1: float
    support: int


@dataclass
class Evaluation:
    accuracy: float
    macro_f1: float
    per_class: dict[str, ClassScore]
    rows: int
    threshold: float
    in_scope_accuracy: float | None = None
    out_of_scope_recall: float | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        return {
            "accuracy": self.accuracy,
            "macro_f1": self.macro_f1,
            "rows": self.rows,
            "threshold": self.threshold,
            "in_scope_accuracy": self.in_scope_accuracy,
            "out_of_scope_recall": self.out_of_scope_recall,
            "per_class": {
                label: {
                    "precision": s.precision,
                    "recall": s.recall,
                    "f1": s.f1,
                    "support": s.support,
                }
                for label, s in self.per_class.items()
            },
            **self.extra,
        }


def normalise_label(label: str) -> str:
    return UNKNOWN if label in OUT_OF_SCOPE_LABELS else label


def evaluate(model: TextModel, dataset: Dataset, *, threshold: float) -> Evaluation:
    """Accuracy, macro-F1 and per-class scores; abstaining on an `unknown` row is correct."""
    gold = [normalise_label(label) for label in dataset.labels]
    predicted = [model.predict(text, threshold)[0] for text in dataset.texts]
    return score(gold, predicted, threshold=threshold)


def score(gold: Sequence[str], predicted: Sequence[str], *, threshold: float) -> Evaluation:
    if not gold:
        raise DatasetError("nothing to evaluate")
    correct = sum(g == p for g, p in zip(gold, predicted, strict=True))
    true_pos: Counter[str] = Counter()
    pred_count: Counter[str] = Counter(predicted)
    support: Counter[str] = Counter(gold)
    for g, p in zip(gold, predicted, strict=True):
        if g == p:
            true_pos[g] += 1
    per_class: dict[str, ClassScore] = {}
    for label in sorted(support):
        tp = true_pos[label]
        precision = tp / pred_count[label] if pred_count[label] else 0.0
        recall = tp / support[label]
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        per_class[label] = ClassScore(
            round(precision, 4), round(recall, 4), round(f1, 4), support[label]
        )
    macro_f1 = sum(s.f1 for s in per_class.values()) / len(per_class)
    in_scope = [(g, p) for g, p in zip(gold, predicted, strict=True) if g != UNKNOWN]
    oos = [p for g, p in zip(gold, predicted, strict=True) if g == UNKNOWN]
    return Evaluation(
        accuracy=round(correct / len(gold), 4),
        macro_f1=round(macro_f1, 4),
        per_class=per_class,
        rows=len(gold),
        threshold=threshold,
        in_scope_accuracy=(
            round(sum(g == p for g, p in in_scope) / len(in_scope), 4) if in_scope else None
        ),
        out_of_scope_recall=(round(sum(p == UNKNOWN for p in oos) / len(oos), 4) if oos else None),
    )
