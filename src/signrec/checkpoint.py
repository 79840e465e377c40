"""Self-describing checkpoint files: PyTorch `model.pt`, Keras `model.keras` and ONNX `model.onnx`.

A checkpoint carries its card: labels, keypoint layout version, preprocessing (with the parts the model reads),
model name and config, framework and a training summary. Loading runs no code from the file: PyTorch
checkpoints load with `weights_only=True`, Keras `.keras` files in safe mode (their card is a JSON entry inside
the zip), ONNX files hold only a graph (their card is in the model's metadata). `signrec.predict` turns any of
them into a `Predictor`.
"""

from __future__ import annotations

import json
import os
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from . import layout

FORMAT = "signrec-checkpoint-v1"
CARD_NAME = "signrec.json"  # inside a .keras zip
TORCH_NAME, KERAS_NAME, ONNX_NAME = "model.pt", "model.keras", "model.onnx"
SUFFIXES = (".pt", ".keras", ".onnx")


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
    export: dict = field(default_factory=dict)  # how an exported copy differs (ONNX: a fixed length, if any)
    calibration: dict = field(default_factory=dict)  # temperature and "unknown" threshold fitted on validation

    @property
    def base(self) -> tuple[str, dict]:
        """The architecture and its config (an ensemble's members')."""
        if self.model == "ensemble":
            return self.model_config["member"], self.model_config["member_config"]
        return self.model, self.model_config

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
    """A checkpoint file from a run folder or a file path (checked before anything heavy is imported)."""
    p = Path(path)
    if p.is_dir():
        for name in (TORCH_NAME, KERAS_NAME, ONNX_NAME):
            if (p / name).exists():
                return p / name
        raise CheckpointError(f"{p}: no {TORCH_NAME}, {KERAS_NAME} or {ONNX_NAME} in this folder (not a finished run)")
    if not p.exists():
        raise CheckpointError(f"{p}: no such run folder or checkpoint file")
    if p.suffix not in SUFFIXES:
        raise CheckpointError(f"{p}: not a checkpoint (expected a run folder or a {', '.join(SUFFIXES)} file)")
    return p


def run_folder(path: str | os.PathLike) -> Path:
    """The run folder of a run folder or of a checkpoint file inside one."""
    p = Path(path)
    return p if p.is_dir() else p.parent


def save_onnx_card(path: str | os.PathLike, card: Card) -> None:
    """Write the card into an ONNX file's metadata (in place)."""
    import onnx

    model = onnx.load(str(path))
    entry = model.metadata_props.add()
    entry.key, entry.value = CARD_NAME, json.dumps(asdict(card))
    onnx.save(model, str(path))


def load_onnx(path: str | os.PathLike) -> tuple[Any, Card]:
    """An onnxruntime session and the card in the file's metadata."""
    import onnxruntime as ort

    try:
        session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    except Exception as e:
        raise CheckpointError(f"{path}: cannot be read as an ONNX model ({e})") from e
    meta = session.get_modelmeta().custom_metadata_map
    if CARD_NAME not in meta:
        raise CheckpointError(f"{path}: an ONNX model without a signrec card (export it with `signrec export`)")
    return session, Card.from_dict(json.loads(meta[CARD_NAME]), path)


def load_any(path: str | os.PathLike) -> tuple[Any, Card, str]:
    """(model, card, backend) for a run folder or a .pt/.keras/.onnx file; backend is torch, keras or onnx."""
    p = resolve(path)
    if p.suffix == ".keras":
        return (*load_keras(p), "keras")
    if p.suffix == ".onnx":
        return (*load_onnx(p), "onnx")
    return (*load_torch(p), "torch")
