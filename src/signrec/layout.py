"""The keypoint layout: the one place that knows what each of the 1662 values of a frame means.

A frame is MediaPipe Holistic's output flattened in a fixed order::

    pose        33 landmarks x (x, y, z, visibility)   [   0:132 ]
    face       468 landmarks x (x, y, z)               [ 132:1536]
    left_hand   21 landmarks x (x, y, z)               [1536:1599]
    right_hand  21 landmarks x (x, y, z)               [1599:1662]

A part that Holistic did not find is an all-zero block. Everything else in signrec asks this module for
sizes and slices instead of writing the numbers down.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

LAYOUT_VERSION = "holistic-1662-v1"


@dataclass(frozen=True)
class Component:
    """One named block of a frame: `landmarks` points of `dims` values each."""

    name: str
    landmarks: int
    dims: int
    start: int

    @property
    def size(self) -> int:
        return self.landmarks * self.dims

    @property
    def stop(self) -> int:
        return self.start + self.size

    @property
    def slice(self) -> slice:
        return slice(self.start, self.stop)


def _build(specs: list[tuple[str, int, int]]) -> dict[str, Component]:
    out, start = {}, 0
    for name, landmarks, dims in specs:
        out[name] = Component(name, landmarks, dims, start)
        start += landmarks * dims
    return out


COMPONENTS: dict[str, Component] = _build(
    [("pose", 33, 4), ("face", 468, 3), ("left_hand", 21, 3), ("right_hand", 21, 3)]
)
POSE, FACE, LEFT_HAND, RIGHT_HAND = (COMPONENTS[n] for n in ("pose", "face", "left_hand", "right_hand"))
PARTS: tuple[str, ...] = tuple(COMPONENTS)
NUM_FEATURES: int = RIGHT_HAND.stop  # 1662

# Derived subsets people use: name -> components (in layout order).
SUBSETS: dict[str, tuple[str, ...]] = {
    "all": PARTS,
    "pose_hands": ("pose", "left_hand", "right_hand"),
    "hands": ("left_hand", "right_hand"),
    "pose": ("pose",),
}

# MediaPipe pose landmark indices used for body-relative coordinates and mirroring.
POSE_NOSE = 0
POSE_LEFT_SHOULDER, POSE_RIGHT_SHOULDER = 11, 12
POSE_LEFT_WRIST, POSE_RIGHT_WRIST = 15, 16
# Pose landmarks come in left/right pairs; mirroring swaps each pair.
POSE_MIRROR_PERMUTATION: tuple[int, ...] = (
    0, 4, 5, 6, 1, 2, 3, 8, 7, 10, 9, 12, 11, 14, 13, 16, 15, 18, 17, 20, 19, 22, 21,
    24, 23, 26, 25, 28, 27, 30, 29, 32, 31,
)  # fmt: skip
# A few face-mesh points that carry most of the signal (lips, eyes, brows, nose, chin) instead of all 468.
FACE_KEY_POINTS: tuple[int, ...] = (
    1, 4, 152,  # nose tip, nose bridge, chin
    61, 291, 0, 17, 13, 14, 78, 308,  # mouth corners, outer and inner lips
    33, 133, 362, 263, 159, 145, 386, 374,  # eye corners and lids
    70, 105, 107, 300, 334, 336,  # brows
)  # fmt: skip
# Mirror partners among the face key points (the others lie on the midline and map to themselves).
FACE_MIRROR_PAIRS: tuple[tuple[int, int], ...] = (
    (61, 291), (78, 308), (33, 263), (133, 362), (159, 386), (145, 374), (70, 300), (105, 334), (107, 336),
)  # fmt: skip


def subset_size(name: str) -> int:
    """Number of values per frame in a named subset (e.g. 'pose_hands' -> 258, 'hands' -> 126)."""
    return sum(COMPONENTS[c].size for c in subset_components(name))


def subset_components(name: str) -> tuple[str, ...]:
    if name not in SUBSETS:
        raise KeyError(f"unknown keypoint subset {name!r}; known: {', '.join(SUBSETS)}")
    return SUBSETS[name]


def subset_for_width(width: int) -> str | None:
    """The subset whose per-frame size is `width`, if any (used to recognise foreign keypoint files)."""
    for name in SUBSETS:
        if subset_size(name) == width:
            return name
    return None


def check_parts(parts: object) -> tuple[str, ...]:
    """Part names in layout order; a string may be a subset name ("hands") or names joined by "+"."""
    if isinstance(parts, str):
        parts = SUBSETS[parts] if parts in SUBSETS else tuple(p for p in parts.split("+") if p)
    names = tuple(parts)  # type: ignore[arg-type]
    unknown = [p for p in names if p not in COMPONENTS]
    if unknown or not names:
        raise ValueError(f"unknown keypoint parts {unknown or names!r}; known: {', '.join(PARTS)}")
    return tuple(p for p in PARTS if p in names)


def parts_label(parts: tuple[str, ...]) -> str:
    """The manifest spelling of a set of parts, e.g. "left_hand+right_hand"."""
    return "+".join(check_parts(parts))


def parts_width(parts: tuple[str, ...]) -> int:
    """Values per frame when only `parts` are stored (e.g. both hands -> 126)."""
    return sum(COMPONENTS[p].size for p in check_parts(parts))


def part_columns(parts: tuple[str, ...]) -> np.ndarray:
    """Column indices into a 1662-value frame of `parts`, in layout order."""
    return np.concatenate([np.arange(COMPONENTS[p].start, COMPONENTS[p].stop) for p in check_parts(parts)])


def take(frames: np.ndarray, parts: tuple[str, ...]) -> np.ndarray:
    """The columns of `parts` from `(T, 1662)` frames: what a store keeps of a source that has only them."""
    check_frames(frames)
    return frames[:, part_columns(parts)]


def expand(stored: np.ndarray, parts: tuple[str, ...]) -> np.ndarray:
    """`(T, parts_width)` rows back into `(T, 1662)` float32; the parts not stored are zeros (missing)."""
    cols = part_columns(parts)
    if stored.ndim != 2 or stored.shape[1] != len(cols):
        raise ValueError(f"expected (frames, {len(cols)}) for parts {parts_label(parts)}, got {stored.shape}")
    if len(cols) == NUM_FEATURES:
        return np.asarray(stored, dtype=np.float32)
    out = np.zeros((stored.shape[0], NUM_FEATURES), dtype=np.float32)
    out[:, cols] = stored
    return out


def parts_found(frames: np.ndarray) -> tuple[str, ...]:
    """The parts that are non-zero in at least one frame of `(T, 1662)` frames."""
    found = presence(frames).any(axis=0)
    return tuple(p for p, f in zip(PARTS, found, strict=True) if f)


def part(frames: np.ndarray, name: str) -> np.ndarray:
    """One component as `(..., landmarks, dims)`."""
    c = COMPONENTS[name]
    return frames[..., c.slice].reshape(*frames.shape[:-1], c.landmarks, c.dims)


def presence(frames: np.ndarray) -> np.ndarray:
    """`(T, 4)` bool: whether pose, face, left hand, right hand were found in each frame (non-zero block)."""
    check_frames(frames)
    return np.stack([frames[..., COMPONENTS[p].slice].any(axis=-1) for p in PARTS], axis=-1)  # no != 0 copy


def presence_summary(frames: np.ndarray) -> dict[str, float]:
    """Share of frames in which each part was found, e.g. {'pose': 0.98, 'face': 0.97, ...}."""
    if len(frames) == 0:
        return {p: 0.0 for p in PARTS}
    share = presence(frames).mean(axis=0)
    return {p: float(s) for p, s in zip(PARTS, share)}


def check_frames(frames: np.ndarray, source: object = "array") -> None:
    """Raise ValueError naming `source` unless `frames` is `(T, 1662)` (or batched `(..., T, 1662)`)."""
    if not isinstance(frames, np.ndarray) or frames.ndim < 2 or frames.shape[-1] != NUM_FEATURES:
        shape = getattr(frames, "shape", type(frames).__name__)
        raise ValueError(f"{source}: expected keypoints of shape (frames, {NUM_FEATURES}), got {shape}")
