"""Turning keypoint sequences into model inputs: feature selection and length handling.

`Preprocess` is stored inside every checkpoint so that prediction applies exactly what training applied.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from . import layout


@dataclass
class Preprocess:
    """How raw `(T, 1662)` keypoints become model input `(T', features)`.

    The reference model uses every value of every frame ("all"), padded to the longest training sequence.
    """

    features: str = "all"  # a layout subset name
    max_frames: int | None = None  # longer sequences keep their first max_frames frames
    padding: str = "post"  # where zeros go when a batch is padded: "post" or "pre" (Keras's default)

    @property
    def num_features(self) -> int:
        return layout.subset_size(self.features)

    def __call__(self, keypoints: np.ndarray) -> np.ndarray:
        layout.check_frames(keypoints)
        x = keypoints if self.features == "all" else layout.select(keypoints, self.features)
        if self.max_frames is not None and len(x) > self.max_frames:
            x = x[: self.max_frames]
        return np.ascontiguousarray(x, dtype=np.float32)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        return cls(**{k: v for k, v in d.items() if k in cls.__dataclass_fields__})
