"""`signrec train` and `signrec compare`: data -> split -> model -> self-describing checkpoint in a run folder."""

from __future__ import annotations

import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from ..checkpoint import KERAS_NAME, TORCH_NAME, Card, save_keras, save_torch
from ..data import Dataset, load_dataset, load_split, make_split, save_split
from ..io import atomic_write_json
from ..models import build_model, make_config
from ..transforms import Augment, Preprocess
from .config import TrainConfig

FRAMEWORKS = ("torch", "keras")
SPLIT_NAME = "split.json"


@dataclass
class TrainResult:
    run: str
    checkpoint: str
    framework: str
    model: str
    parameters: int
    epochs: int
    best_epoch: int
    seconds_per_epoch: float
    seconds: float
    val_acc: float
    split: str


def count_parameters(model: object) -> int:
    if hasattr(model, "count_params"):
        return int(model.count_params())
    return sum(p.numel() for p in model.parameters())  # type: ignore[attr-defined]


def prepare_split(ds: Dataset, out: Path, seed: int, split_file: str | os.PathLike | None) -> tuple[dict, str]:
    """The split to use: an explicit file, the one saved in the run folder, or a new one (then saved)."""
    if split_file is not None:
        split, how = load_split(split_file)
    elif (out / SPLIT_NAME).exists():
        split, how = load_split(out / SPLIT_NAME)
    else:
        split, how = make_split(ds, seed)
    save_split(out / SPLIT_NAME, split, how)
    return split, how


def train(
    data: str | os.PathLike,
    out: str | os.PathLike,
    framework: str = "torch",
    model: str = "lstm",
    model_options: dict | None = None,
    config: TrainConfig | None = None,
    preprocess: Preprocess | None = None,
    split_file: str | os.PathLike | None = None,
    dataset: Dataset | None = None,
    augment: Augment | None = None,
) -> TrainResult:
    """Train one model on a keypoint folder and write a run folder:
    split.json, history.csv, model.pt or model.keras (self-describing), run.json.

    `augment` (PyTorch only) changes the raw training sequences anew every epoch; validation and test data
    are never augmented."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
    if framework == "keras" and model != "lstm":
        raise ValueError(f"the Keras baseline is the reference LSTM only; model {model!r} needs --framework torch")
    if framework == "keras" and augment is not None:
        raise ValueError("augmentation is for the PyTorch path (--framework torch)")
    config = config or TrainConfig()
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = dataset or load_dataset(data)
    labels = ds.glosses
    split, how = prepare_split(ds, out, config.seed, split_file)
    pre = preprocess or Preprocess()
    train_s, val_s = ds.subset(split["train"]), ds.subset(split["val"])
    if pre.max_frames is None and pre.is_reference:  # the reference pads to the longest training sequence
        pre = Preprocess(**{**pre.to_dict(), "max_frames": max(len(s.keypoints) for s in train_s)})
    index = {g: i for i, g in enumerate(labels)}

    def targets(samples: list) -> np.ndarray:
        return np.array([index[s.gloss] for s in samples], dtype=np.int64)

    def xy(samples: list) -> tuple[list[np.ndarray], np.ndarray]:
        return [pre(s.keypoints) for s in samples], targets(samples)

    opts = {"num_classes": len(labels), "input_size": pre.num_features, **(model_options or {})}
    model_config = make_config(model, **opts)
    t0 = time.perf_counter()
    if framework == "torch":
        from .lightning import fit

        fixed = pre.max_frames if getattr(model_config, "read", "") == "final" else None
        if augment is not None:
            raw = ([s.keypoints for s in train_s], targets(train_s))
            net, history, summary = fit(build_model(model, model_config), raw, xy(val_s), config, out, pre.padding,
                                        fixed, transform=lambda x, rng: pre(augment(x, rng)))  # fmt: skip
        else:
            net, history, summary = fit(build_model(model, model_config), xy(train_s), xy(val_s), config, out,
                                        pre.padding, fixed)  # fmt: skip
        ckpt = out / TORCH_NAME
    else:
        from .keras_train import fit as keras_fit

        net, history, summary = keras_fit(model_config, xy(train_s), xy(val_s), config, out, pre.max_frames,
                                          pre.padding)  # fmt: skip
        ckpt = out / KERAS_NAME
    seconds = time.perf_counter() - t0
    best = history.rows[summary["best_epoch"] - 1] if history.rows else {}
    card = Card(
        framework=framework, model=model, model_config=asdict(model_config), labels=labels,
        preprocess=pre.to_dict(),
        training={**config.to_dict(), **summary, "split": how, "data": str(data), "val_acc": best.get("val_acc"),
                  "augment": augment.to_dict() if augment is not None else None},
    )  # fmt: skip
    (save_torch if framework == "torch" else save_keras)(ckpt, net, card)
    result = TrainResult(
        run=str(out), checkpoint=str(ckpt), framework=framework, model=model, parameters=count_parameters(net),
        epochs=summary["epochs"], best_epoch=summary["best_epoch"], seconds_per_epoch=summary["seconds_per_epoch"],
        seconds=seconds, val_acc=float(best.get("val_acc", float("nan"))), split=how,
    )  # fmt: skip
    atomic_write_json(out / "run.json", {**asdict(result), "card": {k: v for k, v in asdict(card).items()}})
    return result
