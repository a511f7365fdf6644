from __future__ import annotations

import json
from pathlib import Path

import pytest

from omniroute.classifier.training import DatasetError, load_dataset, score


class TestLoadDataset:
    def test_csv_with_custom_columns(self, tmp_path: Path) -> None:
        path = tmp_path / "d.csv"
        path.write_text('utterance,intent\n"hola, ¿qué tal?",greet\nbye,leave\n')
        data = load_dataset(path, text_col="utterance", label_col="intent")
        assert data.texts == ["hola, ¿qué tal?", "bye"]
        assert data.labels == ["greet", "leave"]

    def test_jsonl(self, tmp_path: Path) -> None:
        path = tmp_path / "d.jsonl"
        path.write_text('{"text": "a", "category": "x"}\n\n{"text": "b", "category": "y"}\n')
        assert load_dataset(path).labels == ["x", "y"]

    def test_json_of_splits(self, tmp_path: Path) -> None:
        path = tmp_path / "d.json"
        path.write_text(json.dumps({"train": [["a", "x"]], "val": [["b", "y"]], "oos_val": []}))
        assert load_dataset(path).labels == ["x"]
        assert load_dataset(path, split="val+oos_val").texts == ["b"]

    def test_json_without_a_train_split_is_read_whole(self, tmp_path: Path) -> None:
        path = tmp_path / "test.json"
        path.write_text(json.dumps({"test": [["a", "x"]], "oos_test": [["b", "oos"]]}))
        assert load_dataset(path).labels == ["x", "oos"]

    def test_empty_split_is_an_error(self, tmp_path: Path) -> None:
        path = tmp_path / "d.json"
        path.write_text(json.dumps({"val": []}))
        with pytest.raises(DatasetError, match="no rows"):
            load_dataset(path)

    def test_missing_column_is_reported(self, tmp_path: Path) -> None:
        path = tmp_path / "d.csv"
        path.write_text("text,label\na,b\n")
        with pytest.raises(DatasetError, match="category"):
            load_dataset(path)

    def test_unknown_format(self, tmp_path: Path) -> None:
        path = tmp_path / "d.txt"
        path.write_text("a")
        with pytest.raises(DatasetError, match="csv"):
            load_dataset(path)


class TestScore:
    def test_abstaining_on_unknown_rows_counts_as_correct(self) -> None:
        result = score(["a", "b", "unknown", "unknown"], ["a", "a", "unknown", "b"], threshold=0.3)
        assert result.accuracy == 0.5
        assert result.in_scope_accuracy == 0.5
        assert result.out_of_scope_recall == 0.5
        assert result.per_class["a"].precision == 0.5
        assert result.per_class["a"].recall == 1.0
        assert result.per_class["b"].f1 == 0.0
