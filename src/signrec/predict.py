"""Using a trained model: predict the sign in video files, and export the PyTorch model to ONNX.

Keypoints come from the same single extraction path as training (`signrec.extract`), and each checkpoint
applies its own preprocessing, so a checkpoint and a video are all that is needed.
"""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .checkpoint import Predictor, load_predictor, resolve
from .extract import Holistic, extract_video
from .video import VIDEO_SUFFIXES, VideoError


@dataclass
class VideoPrediction:
    video: str
    frames: int
    top: list[tuple[str, float]]  # (gloss, probability), most probable first
    probabilities: dict[str, float]
    error: str = ""

    def to_dict(self) -> dict:
        return {"video": self.video, "frames": self.frames, "error": self.error,
                "top": [{"gloss": g, "probability": round(p, 6)} for g, p in self.top],
                "probabilities": {g: round(p, 6) for g, p in self.probabilities.items()}}  # fmt: skip


def list_videos(inputs: list[str | os.PathLike]) -> list[Path]:
    """Video files from files and folders (searched recursively), in a stable order."""
    out: list[Path] = []
    for item in inputs:
        p = Path(item)
        if p.is_dir():
            out += sorted(f for f in p.rglob("*") if f.suffix.lower() in VIDEO_SUFFIXES and f.is_file())
        elif p.exists():
            out.append(p)
        else:
            raise FileNotFoundError(f"{p}: no such video file or folder")
    return out


def top_k(probs: np.ndarray, labels: list[str], k: int) -> list[tuple[str, float]]:
    order = np.argsort(-probs, kind="stable")[:k]
    return [(labels[i], float(probs[i])) for i in order]


def predict_videos(
    checkpoint: str | os.PathLike | Predictor, videos: list[str | os.PathLike], k: int = 3
) -> list[VideoPrediction]:
    """Top-k glosses for each video. A video that cannot be read gets `error` set instead of a prediction."""
    predictor = checkpoint if isinstance(checkpoint, Predictor) else load_predictor(checkpoint)
    results = []
    with Holistic() as holistic:
        for video in list_videos(videos):
            try:
                kp = extract_video(video, holistic=holistic).keypoints
            except VideoError as e:
                results.append(VideoPrediction(str(video), 0, [], {}, str(e)))
                continue
            probs = predictor.predict_proba([kp])[0]
            results.append(VideoPrediction(str(video), len(kp), top_k(probs, predictor.labels, k),
                                           dict(zip(predictor.labels, map(float, probs)))))  # fmt: skip
    return results


def export_onnx(checkpoint: str | os.PathLike, path: str | os.PathLike) -> Path:
    """Export a PyTorch checkpoint to ONNX: inputs `x (batch, max_frames, features)` float32, zero-padded
    after each clip, and `lengths (batch,)` int64; output `probabilities (batch, classes)`."""
    import torch

    predictor = load_predictor(checkpoint)
    if predictor.framework != "torch":
        raise ValueError(f"{resolve(checkpoint)}: ONNX export is for PyTorch checkpoints; Keras models stay .keras")
    pre = predictor.preprocess
    if pre.padding != "post":
        raise ValueError(f"{resolve(checkpoint)}: ONNX export expects post-padding, checkpoint uses {pre.padding!r}")

    class WithSoftmax(torch.nn.Module):
        def __init__(self, model: torch.nn.Module):
            super().__init__()
            self.model = model

        def forward(self, x: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
            return torch.softmax(self.model(x, lengths), dim=-1)

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    frames = onnx_frames(pre)
    x = torch.zeros(2, frames, pre.num_features)
    lengths = torch.tensor([frames, max(1, frames // 2)])
    tmp = path.with_name(path.name + ".partial")
    warnings.filterwarnings("ignore", category=torch.jit.TracerWarning)  # shapes are fixed by design
    torch.onnx.export(
        WithSoftmax(predictor.model).eval(), (x, lengths), str(tmp), input_names=["x", "lengths"],
        output_names=["probabilities"], dynamic_axes={"x": {0: "batch"}, "lengths": {0: "batch"},
                                                      "probabilities": {0: "batch"}},
        dynamo=False, opset_version=17,
    )  # fmt: skip
    os.replace(tmp, path)
    return path


def onnx_frames(pre) -> int:
    """The exported model's time axis: the padded length, else the resampling length (longer clips are
    resampled to it, so none is longer)."""
    return pre.max_frames or pre.resample or 64


def onnx_inputs(predictor: Predictor, sequences: list[np.ndarray]) -> dict[str, np.ndarray]:
    """The ONNX model's inputs for raw keypoint sequences, with the checkpoint's preprocessing."""
    pre = predictor.preprocess
    xs = [pre(s)[: onnx_frames(pre)] for s in sequences]
    x = np.zeros((len(xs), onnx_frames(pre), pre.num_features), np.float32)
    for i, a in enumerate(xs):
        x[i, : len(a)] = a
    return {"x": x, "lengths": np.array([len(a) for a in xs], np.int64)}
