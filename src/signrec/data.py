"""Keypoint datasets: reading `<gloss>/<id>.npy` folders (with or without a manifest), labels and splits."""

from __future__ import annotations

import math
import os
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import layout
from .io import KeypointFileError, atomic_write_json, load_npy, read_csv_rows

MANIFEST_NAME = "manifest.csv"
SPLITS = ("train", "val", "test")


@dataclass
class Sample:
    """One clip's keypoints and what is known about it."""

    path: str  # relative to the dataset root, e.g. "book/68011.npy"
    gloss: str
    keypoints: np.ndarray  # (frames, 1662) float32
    split: str = ""  # official split when the manifest has one
    signer: str = ""
    meta: dict = field(default_factory=dict)


@dataclass
class Dataset:
    root: str
    samples: list[Sample]

    @property
    def glosses(self) -> list[str]:
        """Label order: sorted gloss names (stable across runs and frameworks)."""
        return sorted({s.gloss for s in self.samples})

    def subset(self, paths: list[str]) -> list[Sample]:
        by_path = {s.path: s for s in self.samples}
        missing = [p for p in paths if p not in by_path]
        if missing:
            raise KeyError(f"{self.root}: split names clips that are not in the data: {missing[:5]}")
        return [by_path[p] for p in paths]


def load_keypoints(path: str | os.PathLike) -> np.ndarray:
    """A `(frames, 1662)` float32 keypoint file; a corrupt or wrong-shape file raises an error naming it."""
    arr = load_npy(path)
    if arr.ndim != 2 or arr.shape[1] != layout.NUM_FEATURES or len(arr) == 0:
        raise KeypointFileError(f"{path}: expected keypoints of shape (frames, {layout.NUM_FEATURES}), got {arr.shape}")
    if not np.issubdtype(arr.dtype, np.number):
        raise KeypointFileError(f"{path}: not numeric (dtype {arr.dtype})")
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise KeypointFileError(f"{path}: contains NaN or infinite values")
    return arr


def load_dataset(root: str | os.PathLike, glosses: list[str] | None = None) -> Dataset:
    """Read a keypoint folder. With a manifest, its `ok` rows give paths, glosses, splits and signers;
    without one, every `<gloss>/*.npy` is a sample of that gloss."""
    root = Path(root)
    if not root.is_dir():
        raise FileNotFoundError(f"{root}: no such keypoint folder")
    manifest = root / MANIFEST_NAME
    rows: list[dict]
    if manifest.exists():
        rows = [r for r in read_csv_rows(manifest) if r.get("status", "ok") == "ok"]
    else:
        rows = [{"path": p.relative_to(root).as_posix(), "gloss": p.parent.name}
                for p in sorted(root.glob("*/*.npy"))]  # fmt: skip
    if glosses is not None:
        wanted = set(glosses)
        rows = [r for r in rows if r["gloss"] in wanted]
    samples = []
    for r in rows:
        kp = load_keypoints(root / r["path"])
        samples.append(Sample(
            path=r["path"], gloss=r["gloss"], keypoints=kp, split=r.get("split", "") or "",
            signer=str(r.get("signer_id") or r.get("signer") or ""), meta=r,
        ))  # fmt: skip
    if not samples:
        raise FileNotFoundError(f"{root}: no keypoint files found (expected <gloss>/<id>.npy)")
    if len({s.gloss for s in samples}) < 2:
        raise ValueError(f"{root}: need at least two glosses to train a classifier, found {samples[0].gloss!r}")
    return Dataset(str(root), samples)


def official_split(ds: Dataset) -> dict[str, list[str]] | None:
    """The WLASL split from the manifest, when every sample has one and train and test are both present."""
    if not all(s.split in SPLITS for s in ds.samples):
        return None
    split = {k: [s.path for s in ds.samples if s.split == k] for k in SPLITS}
    if not split["train"] or not split["test"]:
        return None
    if not split["val"]:  # carve validation out of train so model selection never sees test
        split = _stratified(ds, split["train"], split["test"], val_frac=0.15, seed=0)
    return split


def _held_out(y: list[str], frac: float, min_per_class: int) -> tuple[int, list[str] | None]:
    """How many to hold out, and the labels to stratify by: stratified (at least one of each gloss held out)
    when every gloss has `min_per_class` samples, so that even tiny folders split; otherwise at random."""
    n, classes = len(y), len(set(y))
    k = max(1, math.ceil(frac * n))  # as scikit-learn rounds a fractional test_size
    if min(Counter(y).values()) >= min_per_class and n - max(k, classes) >= classes:
        return max(k, classes), y
    return k, None


def _stratified(ds: Dataset, pool: list[str], test: list[str], val_frac: float, seed: int) -> dict[str, list[str]]:
    from sklearn.model_selection import train_test_split

    gloss = {s.path: s.gloss for s in ds.samples}
    k, strat = _held_out([gloss[p] for p in pool], val_frac, 2)
    train, val = train_test_split(pool, test_size=k, random_state=seed, stratify=strat)
    return {"train": sorted(train), "val": sorted(val), "test": sorted(test)}


def stratified_split(ds: Dataset, val_frac: float = 0.15, test_frac: float = 0.15, seed: int = 0) -> dict[str, list[str]]:
    """Train/val/test split stratified by gloss with a fixed seed."""
    from sklearn.model_selection import train_test_split

    paths = [s.path for s in ds.samples]
    k, strat = _held_out([s.gloss for s in ds.samples], test_frac, 3)
    rest, test = train_test_split(paths, test_size=k, random_state=seed, stratify=strat)
    return _stratified(ds, rest, test, val_frac / (1 - test_frac), seed)


def make_split(ds: Dataset, seed: int = 0) -> tuple[dict[str, list[str]], str]:
    """(split, how): the official split when the manifest has one, otherwise stratified with `seed`."""
    split = official_split(ds)
    if split is not None:
        return split, "official"
    return stratified_split(ds, seed=seed), f"stratified(seed={seed})"


def save_split(path: str | os.PathLike, split: dict[str, list[str]], how: str) -> None:
    atomic_write_json(path, {"how": how, **split})


def load_split(path: str | os.PathLike) -> tuple[dict[str, list[str]], str]:
    import json

    obj = json.loads(Path(path).read_text())
    return {k: obj[k] for k in SPLITS}, obj.get("how", "saved")
