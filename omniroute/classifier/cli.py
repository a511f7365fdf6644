"""`omniroute classifier train|eval`: train a category model on CSV/JSONL and measure it."""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path
from typing import Annotated

import structlog
import typer

from omniroute.classifier.model import (
    EMBEDDING_SCALE,
    ModelError,
    abstention_threshold,
    load_model,
    train_model,
    training_steps,
)
from omniroute.classifier.training import DatasetError, Evaluation, evaluate, load_dataset
from omniroute.shared.settings import ClassifierSettings

app = typer.Typer(help="Train and evaluate the category model.", no_args_is_help=True)


def _logs_to_stderr() -> None:
    """Keep stdout for results, so `eval --json` prints exactly one JSON object.

    The process's own stderr, not a stream a test runner may swap in and close. Called by each
    command because the project CLI mounts the commands without this app's callback.
    """
    if not structlog.is_configured():
        structlog.configure(logger_factory=structlog.PrintLoggerFactory(file=sys.__stderr__))


DataOpt = Annotated[
    Path, typer.Option("--data", help="CSV, JSONL, or JSON of splits", exists=True, dir_okay=False)
]
TextColOpt = Annotated[str, typer.Option("--text-col", help="column holding the text")]
LabelColOpt = Annotated[str, typer.Option("--label-col", help="column holding the category")]
SplitOpt = Annotated[
    str | None, typer.Option("--split", help="for a JSON of splits, e.g. train or val+oos_val")
]


@app.command()
def train(
    data: DataOpt,
    out: Annotated[Path, typer.Option("--out", help="directory to write the model to")],
    text_col: TextColOpt = "text",
    label_col: LabelColOpt = "category",
    split: SplitOpt = None,
    c: Annotated[float, typer.Option("--c", help="SVM regularisation (higher fits closer)")] = 2.0,
    min_df: Annotated[int, typer.Option("--min-df", help="drop n-grams rarer than this")] = 1,
    balanced: Annotated[
        bool, typer.Option("--balanced/--no-balanced", help="weight classes by their rarity")
    ] = True,
    embedding_scale: Annotated[
        float,
        typer.Option(
            "--embedding-scale",
            help="weight of the pretrained sentence embedding (WordLlama); 0: n-grams only",
        ),
    ] = EMBEDDING_SCALE,
) -> None:
    """Train a model on labelled rows; rows labelled `unknown` or `oos` are never predicted."""
    _logs_to_stderr()
    try:
        dataset = load_dataset(data, text_col=text_col, label_col=label_col, split=split)
    except DatasetError as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from exc
    from tqdm import tqdm

    started = time.perf_counter()
    with tqdm(total=training_steps(len(dataset)), unit="row", leave=False) as bar:
        model = train_model(
            dataset.texts,
            dataset.labels,
            c=c,
            min_df=min_df,
            balanced=balanced,
            progress=bar,
            embedding_scale=embedding_scale,
        )
    model.save(out)
    typer.echo(
        f"trained {model.model_id} on {model.meta['train_rows']} rows, "
        f"{len(model.labels)} categories, {model.vocabulary.size} features "
        f"in {time.perf_counter() - started:.1f}s -> {out}"
    )


@app.command("eval")
def evaluate_command(
    data: DataOpt,
    model: Annotated[Path, typer.Option("--model", help="a directory written by train")],
    text_col: TextColOpt = "text",
    label_col: LabelColOpt = "category",
    split: SplitOpt = None,
    threshold: Annotated[
        float | None,
        typer.Option(
            "--threshold",
            help="abstain below this confidence (default: the model's recommended one, "
            "else settings)",
        ),
    ] = None,
    as_json: Annotated[bool, typer.Option("--json", help="print one JSON object")] = False,
) -> None:
    """Accuracy, macro-F1 and a per-class table; abstaining on `unknown` rows counts as right."""
    _logs_to_stderr()
    try:
        dataset = load_dataset(data, text_col=text_col, label_col=label_col, split=split)
    except DatasetError as exc:
        raise typer.BadParameter(str(exc), param_hint="--data") from exc
    try:
        loaded = load_model(model)
    except ModelError as exc:
        raise typer.BadParameter(str(exc), param_hint="--model") from exc
    cutoff = threshold
    if cutoff is None:
        cutoff = abstention_threshold(ClassifierSettings(), loaded)
    result = evaluate(loaded, dataset, threshold=cutoff)
    if as_json:
        typer.echo(json.dumps(result.as_dict()))
    else:
        typer.echo(_table(result))


def _table(result: Evaluation) -> str:
    width = max([len("class"), *(len(label) for label in result.per_class)])
    lines = [
        f"rows {result.rows}  threshold {result.threshold:.2f}",
        f"accuracy {result.accuracy:.4f}  macro-F1 {result.macro_f1:.4f}",
    ]
    if result.in_scope_accuracy is not None and result.out_of_scope_recall is not None:
        lines.append(
            f"in-scope accuracy {result.in_scope_accuracy:.4f}  "
            f"out-of-scope recall {result.out_of_scope_recall:.4f}"
        )
    lines.append(f"{'class':<{width}}  precision  recall      f1  support")
    for label, s in result.per_class.items():
        lines.append(
            f"{label:<{width}}  {s.precision:9.4f}  {s.recall:6.4f}  {s.f1:6.4f}  {s.support:7d}"
        )
    return "\n".join(lines)
