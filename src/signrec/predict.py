"""Using a trained model: a `Predictor` from any saved model, predictions for videos and keypoint files, and the
sliding window that live recognition and the web app share.

A `Predictor` needs only the saved model: a run folder, `model.pt` (PyTorch), `model.keras` (Keras) or
`model.onnx` (onnxruntime; PyTorch is then never imported). It applies the card's own preprocessing and
batching, so every backend sees exactly what training saw. Keypoints of videos come from the single
extraction path (`signrec.extract`); keypoint files are read as the store reads them.
"""

from __future__ import annotations

import math
import os
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import layout
from .batching import pad
from .calibration import UNKNOWN, with_temperature
from .checkpoint import Card, load_any
from .io import KeypointFileError, load_npy, read_csv_rows
from .transforms import Preprocess
from .video import VIDEO_SUFFIXES, VideoError

KEYPOINT_SUFFIXES = (".npy", ".pose")
NO_SIGN = "no sign"
DEFAULT_WINDOW = 30
DEFAULT_THRESHOLD = 0.7  # live: minimum probability to show a sign, for models without a calibrated threshold


class TooLongForModel(ValueError):
    """A clip longer than a fixed-length export (ONNX of a relu LSTM) can take."""


class Predictor:
    """Class probabilities for raw `(T, 1662)` keypoint sequences, from a saved model alone."""

    def __init__(self, model: Any, card: Card, backend: str):
        self.model, self.card, self.backend = model, card, backend
        self.preprocess = Preprocess.from_dict(card.preprocess)
        self.labels: list[str] = list(card.labels)

    @property
    def framework(self) -> str:
        """The framework the model was trained with (torch or keras); `backend` is what runs it now."""
        return self.card.framework

    @property
    def parts(self) -> tuple[str, ...]:
        return self.preprocess.parts

    def check_parts(self, available: Iterable[str], source: object) -> None:
        """Refuse data that lacks a part the model reads (a hands-only store for a model that needs the face)."""
        missing = [p for p in self.parts if p not in set(available)]
        if missing:
            raise ValueError(f"{source}: has no {', '.join(missing)} keypoints, which this model reads "
                             f"(it was trained on {layout.parts_label(self.parts)})")  # fmt: skip

    @property
    def temperature(self) -> float:
        return float(self.card.calibration.get("temperature", 1.0))

    @property
    def threshold(self) -> float:
        """Below this (calibrated) probability the answer is "unknown" (0 when the model was not calibrated)."""
        return float(self.card.calibration.get("threshold", 0.0))

    def predict_proba(self, sequences: list[np.ndarray], batch_size: int = 64, calibrated: bool = True) -> np.ndarray:
        """`(n, classes)` probabilities for `(T_i, 1662)` sequences, temperature-scaled as fitted on validation
        (`calibrated=False`: the model's own)."""
        xs = [self.preprocess(s) for s in sequences]
        out = [self._batch(xs[i : i + batch_size]) for i in range(0, len(xs), batch_size)]
        probs = np.concatenate(out) if out else np.zeros((0, len(self.labels)), np.float32)
        return with_temperature(probs, self.temperature) if calibrated else probs

    def _batch(self, xs: list[np.ndarray]) -> np.ndarray:
        pre = self.preprocess
        if self.backend == "keras":  # a fixed input length, padded as the Keras baseline was trained
            x, _ = pad(xs, pre.padding, pre.max_frames)
            return np.asarray(self.model(x, training=False), dtype=np.float32)
        fixed = pre.max_frames if self.card.base[1].get("read") == "final" else None
        if self.backend == "onnx":
            fixed = self.card.export.get("onnx_frames") or fixed
            longest = max(len(a) for a in xs)
            if fixed and longest > fixed:
                raise TooLongForModel(f"{longest} frames is longer than this ONNX model's fixed "
                                 f"{fixed} frames; export with a longer --frames or use the PyTorch checkpoint")  # fmt: skip
            x, mask = pad(xs, pre.padding, fixed)
            return self.model.run(None, {"x": x, "mask": mask})[0]
        import torch

        x, mask = pad(xs, pre.padding, fixed)
        with torch.inference_mode():
            device = next(self.model.parameters()).device
            logits = self.model(torch.from_numpy(x).to(device), torch.from_numpy(mask).to(device))
            return torch.softmax(logits, -1).cpu().numpy()


def load_predictor(path: str | os.PathLike | Predictor) -> Predictor:
    """A Predictor from a run folder, a `model.pt`, a `model.keras` or a `model.onnx`."""
    if isinstance(path, Predictor):
        return path
    model, card, backend = load_any(path)
    return Predictor(model, card, backend)


# ---------------------------------------------------------------------------------------------------------------
# Inputs: videos and keypoint files


def is_video(path: Path) -> bool:
    return path.suffix.lower() in VIDEO_SUFFIXES


def list_inputs(inputs: list[str | os.PathLike]) -> list[Path]:
    """Video and keypoint files from files and folders (searched recursively), in a stable order."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.is_file() and not f.name.startswith(".")
                          and (is_video(f) or f.suffix in KEYPOINT_SUFFIXES))  # fmt: skip
        elif p.exists():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such video, keypoint file or folder")
    return out


def _store_row(path: Path) -> dict | None:
    """The manifest row of a keypoint file that lies in a store (its folder or the one above)."""
    for root in (path.parent, path.parent.parent):
        manifest = root / "manifest.csv"
        if manifest.exists():
            rel = path.resolve().relative_to(root.resolve()).as_posix()
            for row in read_csv_rows(manifest):
                if row.get("path") == rel:
                    return row
    return None


def read_keypoints(path: str | os.PathLike) -> np.ndarray:
    """A keypoint file as `(frames, 1662)` float32: a store's `.npy` (its parts from the manifest), a `.npy` of
    a known width (1662, 258 pose+hands, 126 hands, 132 pose), or a pose-format `.pose` file."""
    path = Path(path)
    if path.suffix == ".pose":
        from .store.posefmt import read_pose

        return layout.expand(read_pose(path).astype(np.float32), layout.PARTS)
    arr = load_npy(path)
    if arr.ndim != 2 or len(arr) == 0 or not np.issubdtype(arr.dtype, np.number):
        raise KeypointFileError(f"{path}: expected keypoints of shape (frames, values), got {arr.shape} {arr.dtype}")
    row = _store_row(path)
    if row and row.get("parts"):
        parts = layout.check_parts(row["parts"])
    elif arr.shape[1] == layout.NUM_FEATURES:
        parts = layout.PARTS
    else:
        subset = layout.subset_for_width(arr.shape[1])
        if subset is None:
            raise KeypointFileError(f"{path}: {arr.shape[1]} values per frame is not a keypoint layout signrec knows "
                                    f"(1662, or 258/126/132 for pose+hands/hands/pose)")  # fmt: skip
        parts = layout.SUBSETS[subset]
    out = layout.expand(arr.astype(np.float32), parts)
    if not np.isfinite(out).all():
        raise KeypointFileError(f"{path}: contains NaN or infinite values")
    return out


@dataclass
class Prediction:
    input: str
    frames: int
    top: list[tuple[str, float]]  # (gloss, probability), most probable first
    probabilities: dict[str, float]
    error: str = ""
    found: dict[str, float] = field(default_factory=dict)  # share of frames with each part found
    answer: str = ""  # the top gloss, or "unknown" when its probability is below the threshold

    def to_dict(self) -> dict:
        return {"input": self.input, "frames": self.frames, "error": self.error, "answer": self.answer,
                "top": [{"gloss": g, "probability": round(p, 6)} for g, p in self.top],
                "probabilities": {g: round(p, 6) for g, p in self.probabilities.items()},
                "found": {k: round(v, 4) for k, v in self.found.items()}}  # fmt: skip


def top_k(probs: np.ndarray, labels: list[str], k: int) -> list[tuple[str, float]]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [(labels[i], float(probs[i])) for i in order]


def predict_keypoints(predictor: Predictor, keypoints: np.ndarray, name: str, k: int = 3,
                      threshold: float | None = None) -> Prediction:  # fmt: skip
    """The prediction for one clip's `(frames, 1662)` keypoints; `threshold` (default: the model's, chosen on
    validation) below which the answer is "unknown"."""
    probs = predictor.predict_proba([keypoints])[0]
    top = top_k(probs, predictor.labels, k)
    limit = predictor.threshold if threshold is None else threshold
    answer = top[0][0] if top and top[0][1] >= limit else UNKNOWN
    return Prediction(name, len(keypoints), top, dict(zip(predictor.labels, map(float, probs), strict=True)),
                      found=layout.presence_summary(keypoints), answer=answer)  # fmt: skip


def predict_files(model: str | os.PathLike | Predictor, inputs: list[str | os.PathLike], k: int = 3,
                  holistic: Any = None, quiet: bool = True, threshold: float | None = None) -> list[Prediction]:  # fmt: skip
    """Top-k glosses for each video or keypoint file. One that cannot be read gets `error` instead."""
    predictor = load_predictor(model)
    files = list_inputs(inputs)
    results = []
    own = None
    try:
        for f in files:
            try:
                if is_video(f):
                    from .extract import Holistic, extract_video

                    if holistic is None:
                        holistic = own = Holistic(quiet=quiet)
                    keypoints = extract_video(f, holistic=holistic).keypoints
                else:
                    keypoints = read_keypoints(f)
                results.append(predict_keypoints(predictor, keypoints, str(f), k, threshold))
            except (VideoError, KeypointFileError, TooLongForModel) as e:
                results.append(Prediction(str(f), 0, [], {}, f"{f}: {e}" if isinstance(e, TooLongForModel) else str(e)))
    finally:
        if own is not None:
            own.close()
    return results


# ---------------------------------------------------------------------------------------------------------------
# Sliding window over a stream of frames (live recognition, the web app's camera mode)


def default_window(predictor: Predictor) -> int:
    """Frames per window: a typical training clip (the median length recorded at training), capped by what the
    model reads at most (its resampling length or padded length)."""
    typical = int(predictor.card.training.get("frames_median") or 0) or DEFAULT_WINDOW
    cap = predictor.preprocess.resample or predictor.preprocess.max_frames
    return max(1, min(typical, cap) if cap else typical)


class Stabiliser:
    """Turns a stream of (gloss, probability) into a shown gloss or "no sign"."""

    def __init__(self, threshold: float, stable: int):
        self.threshold, self.recent = threshold, deque(maxlen=stable)

    def update(self, gloss: str, probability: float) -> str:
        self.recent.append(gloss if probability >= self.threshold else NO_SIGN)
        if len(self.recent) == self.recent.maxlen and len(set(self.recent)) == 1:
            return self.recent[0]
        return NO_SIGN


@dataclass
class WindowStep:
    """What the model said after a frame: its best guess and what is shown (stable and confident, or no sign)."""

    frame: int
    gloss: str
    probability: float
    shown: str


class SlidingWindow:
    """The last `window` frames of a stream; the model runs every `stride` frames once `min_frames` are there
    (half a window by default, so a short sign is still seen), and a `Stabiliser` decides what is shown."""

    def __init__(self, predictor: Predictor, window: int | None = None, stride: int = 2, threshold: float | None = None,
                 stable: int = 3, min_frames: int | None = None):  # fmt: skip
        self.predictor = predictor
        if threshold is None:  # the model's own, chosen on validation; uncalibrated models: 0.7
            threshold = predictor.threshold if predictor.card.calibration else DEFAULT_THRESHOLD
        self.window = window or default_window(predictor)
        self.min_frames = min(self.window, min_frames or max(1, math.ceil(self.window / 2)))
        self.stride = max(1, stride)
        self.rows: deque = deque(maxlen=self.window)
        self.stabiliser = Stabiliser(threshold, stable)
        self.frames = self.predictions = 0
        self.shown = NO_SIGN

    def push(self, row: np.ndarray) -> WindowStep | None:
        """Add one frame's `(1662,)` row; returns the model's step when it ran on this frame."""
        self.rows.append(row)
        self.frames += 1
        if len(self.rows) < self.min_frames or self.frames % self.stride:
            return None
        probs = self.predictor.predict_proba([np.stack(self.rows)])[0]
        best = int(probs.argmax())
        gloss, p = self.predictor.labels[best], float(probs[best])
        self.shown = self.stabiliser.update(gloss, p)
        self.predictions += 1
        return WindowStep(self.frames, gloss, p, self.shown)

    def status(self) -> str:
        """Why nothing has been predicted yet, or empty when the model has run."""
        if self.predictions:
            return ""
        return (f"only {self.frames} frames so far: the model needs {self.min_frames} "
                f"(half of its {self.window}-frame window) before it predicts")  # fmt: skip
