from __future__ import annotations

import csv
import json
from pathlib import Path

from typer.testing import CliRunner

from omniroute.classifier.cli import app
from omniroute.classifier.model import EMBEDDING_SCALE, load_model

runner = CliRunner()

ROWS = [
    ("me habéis cobrado dos veces", "billing"),
    ("la factura está mal", "billing"),
    ("I was charged twice", "billing"),
    ("wrong amount on my invoice", "billing"),
    ("mi pedido no ha llegado", "delivery"),
    ("el repartidor no vino", "delivery"),
    ("my parcel never arrived", "delivery"),
    ("where is my package", "delivery"),
    ("no puedo entrar en mi cuenta", "account"),
    ("he olvidado la contraseña", "account"),
    ("I cannot log in", "account"),
    ("reset my password", "account"),
]


def write_csv(path: Path, rows: list[tuple[str, str]], text: str = "text", label: str = "category"):
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow([text, label])
        writer.writerows(rows)
    return path


class TestTrainAndEval:
    def test_train_then_eval_as_table_and_json(self, tmp_path: Path) -> None:
        data = write_csv(tmp_path / "train.csv", ROWS * 4)
        model_dir = tmp_path / "model"
        trained = runner.invoke(app, ["train", "--data", str(data), "--out", str(model_dir)])
        assert trained.exit_code == 0, trained.output
        assert (model_dir / "model.npz").is_file()
        assert "3 categories" in trained.output

        evaluation = write_csv(
            tmp_path / "eval.csv", [*ROWS, ("qué tiempo hace mañana", "unknown")]
        )
        table = runner.invoke(app, ["eval", "--data", str(evaluation), "--model", str(model_dir)])
        assert table.exit_code == 0, table.output
        assert "accuracy" in table.output
        assert "macro-F1" in table.output
        assert "delivery" in table.output

        as_json = runner.invoke(
            app, ["eval", "--data", str(evaluation), "--model", str(model_dir), "--json"]
        )
        assert as_json.exit_code == 0, as_json.output
        report = json.loads(as_json.stdout)
        assert report["accuracy"] >= 0.9
        assert 0.0 <= report["macro_f1"] <= 1.0
        assert set(report["per_class"]) == {"billing", "delivery", "account", "unknown"}

    def test_the_embedding_block_is_on_by_default_and_can_be_left_out(self, tmp_path: Path) -> None:
        data = write_csv(tmp_path / "train.csv", ROWS * 4)
        for scale, expected in (([], EMBEDDING_SCALE), (["--embedding-scale", "0"], 0.0)):
            model_dir = tmp_path / f"model-{expected}"
            trained = runner.invoke(
                app, ["train", "--data", str(data), "--out", str(model_dir), *scale]
            )
            assert trained.exit_code == 0, trained.output
            assert load_model(model_dir).vocabulary.embedding_scale == expected
            result = runner.invoke(
                app, ["eval", "--data", str(data), "--model", str(model_dir), "--json"]
            )
            assert result.exit_code == 0, result.output
            assert json.loads(result.stdout)["accuracy"] >= 0.9

    def test_custom_columns_and_jsonl(self, tmp_path: Path) -> None:
        data = tmp_path / "train.jsonl"
        data.write_text("\n".join(json.dumps({"msg": t, "intent": c}) for t, c in ROWS * 3))
        model_dir = tmp_path / "m"
        result = runner.invoke(
            app,
            ["train", "--data", str(data), "--out", str(model_dir)]
            + ["--text-col", "msg", "--label-col", "intent"],
        )
        assert result.exit_code == 0, result.output
        result = runner.invoke(
            app,
            ["eval", "--data", str(data), "--model", str(model_dir), "--json"]
            + ["--text-col", "msg", "--label-col", "intent", "--threshold", "0"],
        )
        assert json.loads(result.stdout)["accuracy"] == 1.0

    def test_bad_column_is_a_usage_error(self, tmp_path: Path) -> None:
        data = write_csv(tmp_path / "train.csv", ROWS, label="label")
        result = runner.invoke(app, ["train", "--data", str(data), "--out", str(tmp_path / "m")])
        assert result.exit_code == 2
        assert "category" in result.output

    def test_eval_without_a_model_is_a_usage_error(self, tmp_path: Path) -> None:
        data = write_csv(tmp_path / "eval.csv", ROWS)
        result = runner.invoke(app, ["eval", "--data", str(data), "--model", str(tmp_path)])
        assert result.exit_code == 2
