"""Jobs made of several stages: `compare` (both reference models on one split, side by side)."""

from __future__ import annotations

import json
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


def _markdown_table(rows: list[dict], fields: list[str]) -> str:
    lines = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    return "\n".join(lines + ["| " + " | ".join(str(r[k]) for k in fields) + " |" for r in rows])


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
    table = _markdown_table(rows, COMPARE_FIELDS)
    write_report(out / "report.md", evaluations, title=f"PyTorch vs Keras reference LSTM on {Path(data).name}",
                 extra="## Training\n\n" + table)  # fmt: skip
    return Comparison(results, evaluations, table, str(out / "report.md"))


# --- the whole job ---------------------------------------------------------------------------------------------

RUN_MODELS = ("reference-torch", "reference-keras", "best")
RUN_FIELDS = ["model", "recipe", "framework", "parameters", "val_acc", "test_top1", "test_top5", "epochs",
              "best_epoch", "train_seconds"]  # fmt: skip


@dataclass
class RunSummary:
    out: str
    report: str
    stages: dict[str, str]  # stage -> "done" or "reused"
    table: str


def _keypoint_folder(keypoints: Path, out: Path, log) -> Path:
    """A folder signrec can train on: `keypoints` itself, or its import into OUT/keypoints when it is in
    another layout (the tutorial's one-file-per-frame tree, 258-value rows)."""
    from .data import load_dataset
    from .importer import import_keypoints

    try:
        load_dataset(keypoints)
        return keypoints
    except (FileNotFoundError, ValueError) as first:
        target = out / "keypoints"
        log(f"{keypoints}: not in signrec's layout ({first}); importing it into {target}")
        import_keypoints(keypoints, target, progress=False)
        return target


def run(
    out: str | os.PathLike,
    videos: str | os.PathLike | None = None,
    keypoints: str | os.PathLike | None = None,
    glosses: list[str] | None = None,
    top: int | None = None,
    metadata: str | os.PathLike | None = None,
    local: str | os.PathLike | None = None,
    models: tuple[str, ...] = RUN_MODELS,
    max_epochs: int | None = None,
    workers: int | None = None,
    seed: int = 0,
    progress: bool = True,
    log=print,
) -> RunSummary:
    """From glosses (WLASL), a folder of clips or a folder of keypoints to one report folder.

    Stages, each reusing what an earlier run of the same command produced: data (WLASL fetch into OUT/videos),
    keypoints (extraction into OUT/keypoints), split (OUT/split.json, shared by every model), one training run
    per model in OUT/runs/<model>, evaluation on the test split, and OUT/report.md with the comparison table,
    per-gloss metrics, confusion matrices and curves. Interrupted, it finishes the job when run again.
    """
    from . import wlasl
    from .data import load_dataset
    from .extract import extract
    from .presets import best, reference

    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if sum(x is not None for x in (videos, keypoints)) + (glosses is not None or top is not None) != 1:
        raise ValueError("give exactly one of: --glosses/--top (WLASL), --videos DIR, --keypoints DIR")
    unknown = [m for m in models if m not in RUN_MODELS]
    if unknown:
        raise ValueError(f"unknown models {unknown}; known: {', '.join(RUN_MODELS)}")
    stages: dict[str, str] = {}

    if glosses is not None or top is not None:
        instances = wlasl.select(wlasl.load_metadata(metadata or wlasl.default_metadata()), glosses, top)
        fetched = wlasl.fetch(instances, out / "videos", local=local, progress=progress)
        log(fetched.report())
        stages["data"] = "reused" if fetched.ok == 0 and fetched.skipped else "done"
        videos = out / "videos"
    if videos is not None:
        summary = extract(videos, out / "keypoints", workers=workers, progress=progress)
        log(summary.report())
        stages["keypoints"] = "reused" if summary.done == 0 else "done"
        data = out / "keypoints"
    else:
        data = _keypoint_folder(Path(keypoints), out, log)  # type: ignore[arg-type]
        stages["keypoints"] = "reused"
    ds = load_dataset(data)
    split_path = out / SPLIT_NAME
    if split_path.exists():
        stages["split"] = "reused"
    else:
        split, how = make_split(ds, seed)
        save_split(split_path, split, how)
        stages["split"] = "done"
        log(f"split: {how} ({', '.join(f'{k} {len(v)}' for k, v in split.items())})")

    recipes = {"reference-torch": (reference("tanh"), "torch"), "reference-keras": (reference("tanh"), "keras"),
               "best": (best(), "torch")}  # fmt: skip
    rows, evaluations = [], []
    for name in models:
        recipe, framework = recipes[name]
        recipe = recipe.with_config(seed=seed, progress=progress,
                                    **({"max_epochs": max_epochs} if max_epochs else {}))  # fmt: skip
        run_dir = out / "runs" / name
        if (run_dir / "run.json").exists():
            stages[f"train {name}"] = "reused"
            result = TrainResult(**{k: v for k, v in json.loads((run_dir / "run.json").read_text()).items()
                                    if k in TrainResult.__dataclass_fields__})  # fmt: skip
        else:
            log(f"training {name} ({recipe.name}, {framework})")
            result = train(data, run_dir, framework, recipe.model, recipe.model_options, recipe.config,
                           recipe.preprocess, split_path, ds, recipe.augment)  # fmt: skip
            stages[f"train {name}"] = "done"
        ev = evaluate_run(run_dir, data, "test")
        stages[f"evaluate {name}"] = "done"
        ev.model = f"{name}: {recipe.name}"  # the report names the recipe, not only the architecture
        evaluations.append(ev)
        rows.append({"model": name, "recipe": recipe.name, "framework": framework, "parameters": result.parameters,
                     "val_acc": f"{result.val_acc:.3f}", "test_top1": f"{ev.metrics.top1:.3f}",
                     "test_top5": f"{ev.metrics.top5:.3f}", "epochs": result.epochs, "best_epoch": result.best_epoch,
                     "train_seconds": f"{result.seconds:.1f}"})  # fmt: skip
    write_csv_atomic(out / "comparison.csv", rows, RUN_FIELDS)
    table = _markdown_table(rows, RUN_FIELDS)
    write_report(out / "report.md", evaluations, title=f"signrec run on {data}",
                 extra="## Models\n\n" + table + "\n\nCheckpoints: `runs/<model>/model.pt` or `model.keras`.")  # fmt: skip
    stages["report"] = "done"
    return RunSummary(str(out), str(out / "report.md"), stages, table)
