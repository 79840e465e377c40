"""Self-describing checkpoints for both frameworks, and a `Predictor` that needs nothing else.

A checkpoint carries labels, keypoint layout version, preprocessing, model name and config, framework and a
training summary. Loading runs no code from the file: PyTorch checkpoints load with `weights_only=True`, Keras
`.keras` files load in safe mode (their signrec card is a JSON entry inside the zip).
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import layout
from .transforms import Preprocess

FORMAT = "signrec-checkpoint-v1"
CARD_NAME = "signrec.json"  # inside a .keras zip
TORCH_NAME, KERAS_NAME = "model.pt", "model.keras"


class CheckpointError(ValueError):
    """A checkpoint that cannot be used; the message names the file and the problem."""


@dataclass
class Card:
    """What a model is: everything prediction needs besides the weights."""

    framework: str  # "torch" or "keras"
    model: str  # registry name, e.g. "lstm"
    model_config: dict
    labels: list[str]
    preprocess: dict
    layout: str = layout.LAYOUT_VERSION
    format: str = FORMAT
    training: dict = field(default_factory=dict)

    @classmethod
    def from_dict(cls, d: dict, source: object) -> Card:
        if d.get("format") != FORMAT:
            raise CheckpointError(f"{source}: not a signrec checkpoint (format {d.get('format')!r})")
        if d.get("layout") != layout.LAYOUT_VERSION:
            raise CheckpointError(f"{source}: keypoint layout {d.get('layout')!r}, expected {layout.LAYOUT_VERSION!r}")
        return cls(**{k: d[k] for k in cls.__dataclass_fields__ if k in d})


def save_torch(path: str | os.PathLike, model: Any, card: Card) -> None:
    import torch

    path = Path(path)
    tmp = path.with_name(path.name + ".partial")
    state = {k: v.detach().cpu() for k, v in model.state_dict().items()}
    torch.save({**asdict(card), "state_dict": state}, tmp)
    os.replace(tmp, path)


def load_torch(path: str | os.PathLike) -> tuple[Any, Card]:
    import torch

    from .models import build_model, make_config

    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read as a signrec PyTorch checkpoint ({e})") from e
    if not isinstance(obj, dict) or "state_dict" not in obj:
        raise CheckpointError(f"{path}: not a signrec checkpoint (no state_dict)")
    card = Card.from_dict(obj, path)
    model = build_model(card.model, make_config(card.model, **card.model_config))
    model.load_state_dict(obj["state_dict"])
    model.eval()
    return model, card


def save_keras(path: str | os.PathLike, model: Any, card: Card) -> None:
    path = Path(path)
    tmp = path.with_name(path.stem + ".partial.keras")
    model.save(tmp)
    with zipfile.ZipFile(tmp, "a") as z:
        z.writestr(CARD_NAME, json.dumps(asdict(card)))
    os.replace(tmp, path)


def load_keras(path: str | os.PathLike) -> tuple[Any, Card]:
    from .models.keras_lstm import import_keras

    try:
        with zipfile.ZipFile(path) as z:
            card = Card.from_dict(json.loads(z.read(CARD_NAME)), path)
    except (zipfile.BadZipFile, KeyError, json.JSONDecodeError) as e:
        raise CheckpointError(f"{path}: not a signrec Keras checkpoint ({e})") from e
    keras = import_keras()
    model = keras.saving.load_model(path, safe_mode=True, compile=False)
    return model, card


def resolve(path: str | os.PathLike) -> Path:
    """A checkpoint file from a run folder or a file path."""
    p = Path(path)
    if p.is_dir():
        for name in (TORCH_NAME, KERAS_NAME):
            if (p / name).exists():
                return p / name
        raise CheckpointError(f"{p}: no {TORCH_NAME} or {KERAS_NAME} in this folder")
    if not p.exists():
        raise CheckpointError(f"{p}: no such checkpoint")
    return p


class Predictor:
    """Class probabilities for raw `(T, 1662)` keypoint sequences, from a checkpoint alone."""

    def __init__(self, model: Any, card: Card):
        self.model, self.card = model, card
        self.preprocess = Preprocess.from_dict(card.preprocess)
        self.labels: list[str] = list(card.labels)

    @property
    def framework(self) -> str:
        return self.card.framework

    def predict_proba(self, sequences: list[np.ndarray], batch_size: int = 64) -> np.ndarray:
        """(n, classes) probabilities."""
        xs = [self.preprocess(s) for s in sequences]
        out = [self._batch(xs[i : i + batch_size]) for i in range(0, len(xs), batch_size)]
        return np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)

    def _batch(self, xs: list[np.ndarray]) -> np.ndarray:
        if self.framework == "keras":
            from .models.keras_lstm import pad

            x = pad(xs, self.preprocess.max_frames, self.preprocess.padding)
            return np.asarray(self.model(x, training=False), dtype=np.float32)
        import torch

        from .models.lstm import pad_batch

        with torch.inference_mode():
            fixed = self.preprocess.max_frames if self.card.model_config.get("read") == "final" else None
            x, lengths = pad_batch([torch.from_numpy(a) for a in xs], self.preprocess.padding, fixed)
            device = next(self.model.parameters()).device
            logits = self.model(x.to(device), lengths)
            return torch.softmax(logits, -1).cpu().numpy()


def load_predictor(path: str | os.PathLike) -> Predictor:
    """A Predictor from a run folder, a `model.pt` or a `model.keras`."""
    p = resolve(path)
    model, card = load_keras(p) if p.suffix == ".keras" else load_torch(p)
    return Predictor(model, card)
