"""Jobs made of several stages: `compare` (both reference models on one split, side by side)."""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .data import load_dataset, make_split, save_split
from .evaluate import Evaluation, evaluate_run, write_report
from .io import write_csv_atomic
from .training.config import TrainConfig
from .training.runner import SPLIT_NAME, TrainResult, train


@dataclass
class Comparison:
    results: list[TrainResult]
    evaluations: list[Evaluation]
    table: str
    report: str


COMPARE_FIELDS = ["model", "framework", "parameters", "val_acc", "test_top1", "test_top5", "epochs", "best_epoch",
                  "seconds_per_epoch", "train_seconds"]  # fmt: skip


def compare(
    data: str | os.PathLike,
    out: str | os.PathLike,
    config: TrainConfig | None = None,
    activation: str = "tanh",
    frameworks: tuple[str, ...] = ("torch", "keras"),
) -> Comparison:
    """Train the PyTorch and the Keras reference LSTM on the same split; write comparison.csv and report.md."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    config = config or TrainConfig()
    ds = load_dataset(data)
    split_path = out / SPLIT_NAME
    if not split_path.exists():
        save_split(split_path, *make_split(ds, config.seed))
    results, evaluations = [], []
    for fw in frameworks:
        run = out / fw
        r = train(data, run, fw, model_options={"activation": activation}, config=config, split_file=split_path,
                  dataset=ds)  # fmt: skip
        results.append(r)
        evaluations.append(evaluate_run(run, data, "test"))
    rows = [{
        "model": f"{r.model} ({activation})", "framework": r.framework, "parameters": r.parameters,
        "val_acc": f"{r.val_acc:.3f}", "test_top1": f"{e.metrics.top1:.3f}", "test_top5": f"{e.metrics.top5:.3f}",
        "epochs": r.epochs, "best_epoch": r.best_epoch, "seconds_per_epoch": f"{r.seconds_per_epoch:.3f}",
        "train_seconds": f"{r.seconds:.1f}",
    } for r, e in zip(results, evaluations)]  # fmt: skip
    write_csv_atomic(out / "comparison.csv", rows, COMPARE_FIELDS)
    table = "\n".join(["| " + " | ".join(COMPARE_FIELDS) + " |", "|" + "---|" * len(COMPARE_FIELDS)]
                      + ["| " + " | ".join(str(r[k]) for k in COMPARE_FIELDS) + " |" for r in rows])  # fmt: skip
    write_report(out / "report.md", evaluations, title=f"PyTorch vs Keras reference LSTM on {Path(data).name}",
                 extra="## Training\n\n" + table)  # fmt: skip
    return Comparison(results, evaluations, table, str(out / "report.md"))
