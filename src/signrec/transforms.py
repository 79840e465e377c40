"""Turning raw `(T, 1662)` keypoint sequences into model inputs, and augmenting them for training.

`Preprocess` is stored inside every checkpoint so that prediction applies exactly what training applied. Its
defaults are the reference model's input (every raw value of every frame); each improvement is a switch:

- `features="compact"`: upper-body pose, 25 face key points and both hands (92 points) instead of the whole
  mesh (the face is 84% of the 1662 values and carries little of a sign);
- `normalize="body"`: x, y, z relative to the body: centred on the middle of the shoulders and divided by the
  shoulder width (per sequence, so where the signer stands and how far from the camera no longer matter);
- `hand_view=True`: each hand also relative to its own wrist, divided by its size (hand shape as such);
- `hand_shape=True`: distances between chosen joints of each hand, in hand sizes; `bones=True`: each hand's
  bones as unit directions and how far each finger joint bends;
- `image_place=True` (keypoints without a body): each hand's wrist where it is in the frame, and the hand's size
  there; for a signer framed as usual, where relative to the body a sign is made (chin or forehead);
- `motion=True`: frame-to-frame differences (zero where a part appears or disappears);
- `flags=True`: whether pose, face, left and right hand were found in each frame (missing parts explicit);
- `resample=N`: sequences longer than N frames are resampled to N (models that need a bounded length).

`Augment` works on raw `(T, 1662)` sequences before `Preprocess`: a left-right mirror that swaps the hands,
small rotations and scalings about the body, both hands placed elsewhere relative to the body, each hand turned
and sized, time stretching, crops and dropped frames, lost hands, one-handed forms. Every step is switchable.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass, fields

import numpy as np

from . import layout

NORMALIZE = ("none", "body", "hands", "auto")
# The compact point set: pose landmarks 0-24 (upper body down to the hips), face key points, both hands.
POSE_UPPER = tuple(range(25))
HAND_POINTS = layout.COMPONENTS["left_hand"].landmarks


def _pose_xyz_index() -> np.ndarray:
    start = layout.COMPONENTS["pose"].start
    return np.array([[start + 4 * p + d for d in range(3)] for p in POSE_UPPER])


def _points_index(part: str, points: tuple[int, ...] | range) -> np.ndarray:
    start = layout.COMPONENTS[part].start
    return np.array([[start + 3 * p + d for d in range(3)] for p in points])


# (92, 3) column indices into a 1662-value frame: pose 25, face 25, left hand 21, right hand 21.
COMPACT_INDEX = np.concatenate([
    _pose_xyz_index(),
    _points_index("face", layout.FACE_KEY_POINTS),
    _points_index("left_hand", range(HAND_POINTS)),
    _points_index("right_hand", range(HAND_POINTS)),
])  # fmt: skip
_COUNTS = {"pose": len(POSE_UPPER), "face": len(layout.FACE_KEY_POINTS), "left_hand": HAND_POINTS,
           "right_hand": HAND_POINTS}  # fmt: skip
COMPACT_PARTS = {p: slice(sum(list(_COUNTS.values())[:i]), sum(list(_COUNTS.values())[: i + 1]))
                 for i, p in enumerate(_COUNTS)}  # fmt: skip
# (92,) index into layout.PARTS of each compact point
COMPACT_PART_OF = np.concatenate([np.full(s.stop - s.start, layout.PARTS.index(p)) for p, s in COMPACT_PARTS.items()])


def all_points(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Every landmark as `(T, 543, 3)` xyz (pose visibility dropped) and a `(T, 543)` present mask."""
    pts = [layout.part(frames, p)[..., :3] for p in layout.PARTS]
    xyz = np.concatenate(pts, axis=-2)
    present = np.concatenate([np.repeat(layout.presence(frames)[:, [i]], len(p[0]), axis=1)
                              for i, p in enumerate(pts)], axis=1)  # fmt: skip
    return xyz, present


def body_frame(frames: np.ndarray) -> tuple[np.ndarray, float]:
    """The sequence's body centre (x, y) and scale: middle of the shoulders and shoulder width (medians over the
    frames with a pose); without a pose, the mean and spread of whatever points are present."""
    pose = layout.part(frames, "pose")
    has_pose = np.any(pose != 0, axis=(1, 2))
    if has_pose.any():
        left, right = pose[has_pose, layout.POSE_LEFT_SHOULDER, :2], pose[has_pose, layout.POSE_RIGHT_SHOULDER, :2]
        centre = np.median((left + right) / 2, axis=0)
        scale = float(np.median(np.linalg.norm(left - right, axis=1)))
    else:
        xyz, present = all_points(frames)
        pts = xyz[present][:, :2]
        if len(pts) == 0:
            return np.zeros(2, np.float32), 1.0
        centre, scale = pts.mean(axis=0), float(pts.std(axis=0).mean() * 2)
    return centre.astype(np.float32), scale if scale > 1e-6 else 1.0


@dataclass
class Preprocess:
    """How raw `(T, 1662)` keypoints become model input `(T', features)`. The defaults are the reference:
    every raw value, padded to the longest training sequence.

    `parts` are the layout parts the model reads (all four by default); the others never reach it, so a
    model trained on hands only predicts from full Holistic keypoints by reading their hands.
    """

    features: str = "all"  # a layout subset name ("all", "pose_hands", "hands", "pose") or "compact"
    parts: tuple[str, ...] = layout.PARTS
    max_frames: int | None = None  # longer sequences keep their first max_frames frames (the reference)
    padding: str = "post"  # where zeros go when a batch is padded: "post" or "pre" (Keras's default)
    normalize: str = "none"  # "none", "body", "hands", or "auto" (body when there is a pose, else hands)
    hand_view: bool = False
    motion: bool = False
    flags: bool = False
    resample: int | None = None  # longer sequences are resampled (not cut) to this many frames
    resample_all: bool = False  # shorter ones too (every clip `resample` frames: frame rate and speed factored out)
    aspect: bool = False  # with normalize="body": undo the camera's aspect ratio (see `level_aspect`)
    fill_gaps: int = 0  # hands missing for at most this many frames in a row are interpolated (0 = off)
    trim: bool = False  # leading and trailing frames in which no hand was found are dropped (before resampling)
    hand_shape: bool = False  # distances between chosen joints of each hand, in hand sizes (HAND_PAIRS)
    bones: bool = False  # each hand's 20 bones as unit directions, and how far each finger joint bends (cosines)
    image_place: bool = False  # without a body (normalize "hands"): each hand's wrist x, y in the frame and its size
    # (IMAGE_PLACE_WIDTH values a hand); a recipe may ask for it always: with a body (normalize "body", or "none")
    # it adds nothing, and `for_parts` drops it
    depth: bool = True  # False: every z is zero before any feature is made (MediaPipe's z is a guess from one
    # camera, and its scale differs between its models and versions); the x, y features are unchanged

    def __post_init__(self) -> None:
        if self.features != "compact" and self.features not in layout.SUBSETS:
            raise ValueError(f"unknown features {self.features!r}; known: compact, {', '.join(layout.SUBSETS)}")
        if self.normalize not in NORMALIZE:
            raise ValueError(f"normalize must be one of {', '.join(NORMALIZE)}, got {self.normalize!r}")
        self.parts = layout.check_parts(self.parts)
        if self.normalize == "body" and "pose" not in self.parts:  # "auto" picks hands then
            raise ValueError("normalize='body' needs the pose part; these keypoints have "
                             f"{layout.parts_label(self.parts)}")  # fmt: skip
        for name in ("hand_view", "hand_shape", "bones", "image_place"):
            if getattr(self, name) and not self._hands:
                raise ValueError(f"{name} needs a hand part; these keypoints have {layout.parts_label(self.parts)}")
        if not self._coord_parts:
            raise ValueError(f"features {self.features!r} use none of the parts {layout.parts_label(self.parts)}")

    @property
    def _hands(self) -> tuple[str, ...]:
        return tuple(p for p in ("left_hand", "right_hand") if p in self.parts)

    @property
    def _image_place(self) -> bool:
        return self.image_place and self.resolved_normalize == "hands"

    @property
    def _coord_parts(self) -> tuple[str, ...]:
        """The parts whose coordinates are features."""
        chosen = layout.PARTS if self.features == "compact" else layout.SUBSETS[self.features]
        return tuple(p for p in chosen if p in self.parts)

    @property
    def _compact_rows(self) -> np.ndarray:
        """Rows of COMPACT_INDEX that belong to the parts used."""
        used = [layout.PARTS.index(p) for p in self._coord_parts]
        return np.flatnonzero(np.isin(COMPACT_PART_OF, used))

    @property
    def num_features(self) -> int:
        if self.features == "compact":
            coords = len(self._compact_rows) * 3
        else:
            coords = layout.parts_width(self._coord_parts)
        n = coords
        n += len(self._hands) * HAND_POINTS * 3 if self.hand_view else 0
        n += len(self._hands) * len(HAND_PAIRS) if self.hand_shape else 0
        n += len(self._hands) * bone_width(self.depth) if self.bones else 0
        n += len(self._hands) * IMAGE_PLACE_WIDTH if self._image_place else 0
        n += coords if self.motion else 0
        n += len(self.parts) if self.flags else 0
        return n

    @property
    def is_reference(self) -> bool:
        return (self.features != "compact" and self.normalize == "none" and not self.fill_gaps
                and not (self.hand_view or self.hand_shape or self.bones or self.motion or self.flags))  # fmt: skip

    def __call__(self, keypoints: np.ndarray) -> np.ndarray:
        layout.check_frames(keypoints)
        if self.trim and self._hands:
            keypoints = trim_to_hands(keypoints, self._hands)
        if self.resample is not None and (len(keypoints) > self.resample or self.resample_all):
            keypoints = resample(keypoints, self.resample)
        if self.is_reference:
            parts = self._coord_parts
            x = keypoints if parts == layout.PARTS else layout.take(keypoints, parts)
        else:
            x = self._features(keypoints)
        if self.max_frames is not None and len(x) > self.max_frames:
            x = x[: self.max_frames]
        return np.ascontiguousarray(x, dtype=np.float32)

    def _features(self, frames: np.ndarray) -> np.ndarray:
        frames = np.asarray(frames, dtype=np.float32)
        if self.fill_gaps:
            frames = fill_gaps(frames, self.fill_gaps)
        present = layout.presence(frames)  # (T, 4), before any z is zeroed
        if not self.depth:
            frames = without_depth(frames)
        placed = hand_image_place(frames, self._hands) if self._image_place else None  # before normalising
        normalize = self.resolved_normalize
        if normalize == "body":
            frames = normalize_body(level_aspect(frames) if self.aspect else frames)
        elif normalize == "hands":
            frames = normalize_hands(frames)
        if self.features == "compact":
            rows = self._compact_rows
            coords = frames[:, COMPACT_INDEX[rows]].reshape(len(frames), -1)
            coord_present = np.repeat(present[:, COMPACT_PART_OF[rows]], 3, axis=1)
        else:
            coords = layout.take(frames, self._coord_parts)
            coord_present = np.concatenate([np.repeat(present[:, [layout.PARTS.index(c)]], layout.COMPONENTS[c].size, 1)
                                            for c in self._coord_parts], axis=1)  # fmt: skip
        views = [coords]
        if self.hand_view:
            views.append(hand_relative(frames, self._hands))
        if self.hand_shape:
            views.append(hand_distances(frames, self._hands))
        if self.bones:
            views.append(hand_bones(frames, self._hands, self.depth))
        if placed is not None:
            views.append(placed)
        if self.motion:
            d = np.zeros_like(coords)
            both = coord_present[1:] & coord_present[:-1]
            d[1:] = np.where(both, coords[1:] - coords[:-1], 0.0)
            views.append(d)
        if self.flags:
            views.append(present[:, [layout.PARTS.index(p) for p in self.parts]].astype(np.float32))
        return np.concatenate(views, axis=1)

    @property
    def resolved_normalize(self) -> str:
        if self.normalize == "auto":
            return "body" if "pose" in self.parts else "hands"
        return self.normalize

    def for_parts(self, available: tuple[str, ...]) -> Preprocess:
        """The same preprocessing restricted to the parts the data has (a recipe written for Holistic keypoints,
        applied to a hands-only store), with `auto` choices made; errors when nothing it reads is there."""
        parts = tuple(p for p in self.parts if p in available)
        if not parts:
            raise ValueError(f"the data has only {layout.parts_label(available)}, none of the parts this model reads "
                             f"({layout.parts_label(self.parts)})")  # fmt: skip
        d = {**self.to_dict(), "parts": parts}
        if self.normalize == "auto":
            d["normalize"] = "body" if "pose" in parts else "hands"
        if not any(p.endswith("hand") for p in parts):
            d.update(hand_view=False, hand_shape=False, bones=False, image_place=False)
        if d["normalize"] != "hands":  # with a body, where the hands are relative to it says more than the frame
            d["image_place"] = False
        return Preprocess(**d)

    def to_dict(self) -> dict:
        out = asdict(self)
        if self.depth:  # added later: left out when on, so runs made before it keep their fingerprints
            del out["depth"]
        if not self.bones:  # the same
            del out["bones"]
        if not self.image_place:  # the same
            del out["image_place"]
        return out

    @classmethod
    def from_dict(cls, d: dict) -> Preprocess:
        return cls(**{k: tuple(v) if k == "parts" else v for k, v in d.items() if k in cls.__dataclass_fields__})


def without_depth(frames: np.ndarray) -> np.ndarray:
    """`frames` (T, 1662) with every landmark's z set to 0 (pose visibility kept)."""
    out = np.array(frames, dtype=np.float32, copy=True)
    pose, rest = _point_views(out)
    pose[..., 2] = 0.0
    rest[..., 2] = 0.0
    return out


def _point_views(frames: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Views into `frames` (T, 1662): pose `(T, 33, 4)` and the rest (face and hands) `(T, 510, 3)`."""
    pose_end = layout.COMPONENTS["pose"].stop
    return frames[:, :pose_end].reshape(len(frames), -1, 4), frames[:, pose_end:].reshape(len(frames), -1, 3)


def _affine_xy(frames: np.ndarray, fn, z_scale: float = 1.0) -> np.ndarray:
    """Apply `fn(xy (..., 2)) -> xy` to the x, y of every present landmark (and multiply z by `z_scale`);
    missing parts (all-zero blocks) stay zero."""
    out = np.array(frames, dtype=np.float32, copy=True)
    present = layout.presence(frames)
    pose, rest = _point_views(out)
    for i, (view, points) in enumerate(zip((pose, rest, rest, rest), _PART_POINTS, strict=True)):
        if not present[:, i].any():  # a part found in no frame is all zeros and stays so: nothing to compute
            continue
        part = view[:, points]  # a view: written in place
        part[..., :2] = np.where(present[:, i, None, None], fn(part[..., :2]), 0.0)
        if z_scale != 1.0:
            part[..., 2] *= z_scale
    return out


# Each part's landmarks within `_point_views`: pose in the first view, face and hands (after the pose) in the second.
_PART_POINTS = tuple(slice(0, layout.POSE.landmarks) if p == "pose" else
                     slice((layout.COMPONENTS[p].start - layout.POSE.stop) // 3,
                           (layout.COMPONENTS[p].stop - layout.POSE.stop) // 3)
                     for p in layout.PARTS)  # fmt: skip


def hands_frame(frames: np.ndarray) -> tuple[np.ndarray, float]:
    """A centre (x, y) and scale from the hands alone, for data without a body: the median over the frames of
    the mean of the hand points present, and the median hand size (wrist to the farthest point) times 4
    (about a shoulder width). Missing hands in many frames are fine; with no hand at all, (0, 0) and 1."""
    pts, sizes = [], []
    for name in ("left_hand", "right_hand"):
        h = layout.part(frames, name)[..., :2]
        found = np.any(h != 0, axis=(1, 2))
        if found.any():
            pts.append(h[found].reshape(-1, 2))
            sizes.append(np.linalg.norm(h[found] - h[found][:, :1], axis=-1).max(axis=1))
    if not pts:
        return np.zeros(2, np.float32), 1.0
    centre = np.median(np.concatenate(pts), axis=0)
    scale = float(np.median(np.concatenate(sizes))) * 4.0
    return centre.astype(np.float32), scale if scale > 1e-6 else 1.0


def normalize_hands(frames: np.ndarray) -> np.ndarray:
    """x, y relative to where the hands are over the clip, divided by their size; z divided by it too. The
    position of each hand within the clip (and relative to the other) is kept; missing parts stay zero."""
    centre, scale = hands_frame(frames)
    return _affine_xy(frames, lambda xy: (xy - centre) / scale, z_scale=1.0 / scale)


HEAD_HEIGHT = 0.6  # nose above the middle of the shoulders, in shoulder widths, for a typical upright signer


def level_aspect(frames: np.ndarray) -> np.ndarray:
    """Undo the camera's aspect ratio: Holistic's x is a share of the image width and y of its height, so the
    same body looks taller in a landscape video than in a portrait one (1.6x between the webcam and the phone
    recordings here). y is scaled about the body centre so that the nose sits HEAD_HEIGHT shoulder widths above
    the shoulders (medians over the frames with a pose); without a pose, nothing changes."""
    k = aspect_factor(frames)
    if k is None:
        return frames
    centre, _ = body_frame(frames)
    return _affine_xy(frames, lambda xy: np.stack([xy[..., 0], centre[1] + (xy[..., 1] - centre[1]) * k], axis=-1))


def aspect_factor(frames: np.ndarray) -> np.float32 | None:
    """What y must be multiplied by for the nose to sit HEAD_HEIGHT shoulder widths above the shoulders (medians
    over the frames with a pose): the camera's aspect ratio, undone; None without a usable pose."""
    pose = layout.part(frames, "pose")
    has_pose = np.any(pose != 0, axis=(1, 2))
    if not has_pose.any():
        return None
    p = pose[has_pose]
    width = np.median(np.abs(p[:, layout.POSE_LEFT_SHOULDER, 0] - p[:, layout.POSE_RIGHT_SHOULDER, 0]))
    height = np.median((p[:, layout.POSE_LEFT_SHOULDER, 1] + p[:, layout.POSE_RIGHT_SHOULDER, 1]) / 2 - p[:, layout.POSE_NOSE, 1])
    if width < 1e-6 or height < 1e-6:
        return None
    return np.float32(HEAD_HEIGHT * width / height)


def normalize_body(frames: np.ndarray) -> np.ndarray:
    """x, y relative to the body centre and z, all divided by the shoulder width; missing parts stay zero."""
    centre, scale = body_frame(frames)
    return _affine_xy(frames, lambda xy: (xy - centre) / scale, z_scale=1.0 / scale)


def hand_relative(frames: np.ndarray, hands: tuple[str, ...] = ("left_hand", "right_hand")) -> np.ndarray:
    """`(T, 63 per hand)`: each hand's points minus its wrist, divided by the hand's size (wrist to the farthest
    point); zeros where the hand is missing."""
    views = []
    for name in hands:
        rel, size = _wrist_relative(frames, name)
        found = size[:, None, None] > 1e-6
        views.append(np.where(found, rel / np.maximum(size, 1e-6)[:, None, None], 0.0).reshape(len(frames), -1))
    return np.concatenate(views, axis=1).astype(np.float32)


def _wrist_relative(frames: np.ndarray, hand: str) -> tuple[np.ndarray, np.ndarray]:
    """A hand's points minus its wrist `(T, 21, 3)`, and its size per frame `(T,)`: wrist to the farthest point in
    the image plane (0 where the hand is missing)."""
    h = layout.part(frames, hand)[..., :3]
    rel = h - h[:, :1]
    return rel, np.linalg.norm(rel[..., :2], axis=-1).max(axis=1)


# Joint pairs whose distances describe a hand's shape: fingertips to each other and to the wrist, the other tips to
# the thumb's joints 2 and 3, every tip to the four finger bases except its own, palm width and the thumb's base.
_TIPS = (4, 8, 12, 16, 20)
HAND_PAIRS = tuple(sorted({*((a, b) for i, a in enumerate(_TIPS) for b in _TIPS[i + 1 :]), *((0, t) for t in _TIPS),
                           *((t, j) for t in _TIPS[1:] for j in (2, 3)),
                           *((t, m) for t in _TIPS for m in (5, 9, 13, 17) if t != m + 3), (5, 17), (2, 5), (3, 6)}))  # fmt: skip


def hand_distances(frames: np.ndarray, hands: tuple[str, ...] = ("left_hand", "right_hand")) -> np.ndarray:
    """`(T, 42 per hand)`: 3D distances between the HAND_PAIRS joints, divided by the hand's size (wrist to the
    farthest point): unchanged by where the hand is, how big it looks and how it is turned in the image plane.
    Zeros where the hand is missing."""
    i, j = np.array(HAND_PAIRS).T
    views = []
    for name in hands:
        rel, size = _wrist_relative(frames, name)
        d = np.linalg.norm(rel[:, i] - rel[:, j], axis=-1)
        views.append(np.where(size[:, None] > 1e-6, d / np.maximum(size, 1e-6)[:, None], 0.0))
    return np.concatenate(views, axis=1).astype(np.float32)


# Each hand landmark's parent (the joint nearer the wrist; the wrist has none): the 20 bones of the hand's tree.
HAND_PARENT = (-1, 0, 1, 2, 3, 0, 5, 6, 7, 0, 9, 10, 11, 0, 13, 14, 15, 0, 17, 18, 19)
_BONE_CHILD = np.arange(1, HAND_POINTS)
_BONE_PARENT = np.array(HAND_PARENT[1:])
# The finger joints (MCP, PIP, DIP of each finger; the thumb's CMC, MCP, IP), where a bone meets the next one:
# (bone into the joint, bone out of it), as indices into the 20 bones
_BENDS = np.array([(c - 2, c - 1) for c in range(2, HAND_POINTS) if HAND_PARENT[c] == c - 1])


def bone_width(depth: bool) -> int:
    """Values per hand of `hand_bones`: 20 directions of 2 (x, y) or 3 (x, y, z) values, and 15 bends."""
    return (HAND_POINTS - 1) * (3 if depth else 2) + len(_BENDS)


def hand_bones(frames: np.ndarray, hands: tuple[str, ...] = ("left_hand", "right_hand"), depth: bool = False
               ) -> np.ndarray:  # fmt: skip
    """`(T, bone_width(depth) per hand)`: each bone (joint minus its parent) as a unit vector in the image plane
    (with z when `depth`), so finger directions do not depend on the hand's size or the finger's length; and at
    each of the 15 finger joints the cosine of the angle between the bone into it and the bone out of it (1 for a
    straight finger, lower as it bends; unchanged by how the hand is turned in the image plane, when x and y are
    in the same units: with `aspect` and a body, not in raw image shares of width and height). Zeros where the
    hand is missing, or a bone is too short to have a direction."""
    dims = 3 if depth else 2
    views = []
    for name in hands:
        h = layout.part(frames, name)[..., :dims].astype(np.float32)
        v = h[:, _BONE_CHILD] - h[:, _BONE_PARENT]  # (T, 20, dims)
        length = np.linalg.norm(v, axis=-1, keepdims=True)
        unit = np.where(length > 1e-6, v / np.maximum(length, 1e-6), 0.0)
        bend = np.sum(unit[:, _BENDS[:, 0]] * unit[:, _BENDS[:, 1]], axis=-1)  # (T, 15)
        views.append(np.concatenate([unit.reshape(len(frames), -1), bend], axis=1))
    return np.concatenate(views, axis=1).astype(np.float32)


IMAGE_PLACE_WIDTH = 3  # a hand's wrist x and y, and its size


def hand_image_place(frames: np.ndarray, hands: tuple[str, ...] = ("left_hand", "right_hand")) -> np.ndarray:
    """`(T, IMAGE_PLACE_WIDTH per hand)`: each hand's wrist x, y as found (shares of the frame's width and height,
    less 0.5: 0 is the middle of the frame) and its size (wrist to the farthest point in those same units, as
    MediaPipe gives x and y), zeros where the hand is missing. Features relative to the hands say how a hand moves and is shaped, but not where it
    is; a signer is framed about the same in most recordings, so where in the frame tells where relative to the
    body (father at the forehead, mother at the chin) when there is no body to measure it against."""
    views = []
    for name in hands:
        _, size = _wrist_relative(frames, name)
        wrist = layout.part(frames, name)[:, 0, :2]
        found = (size > 1e-6)[:, None]
        views.append(np.where(found, np.concatenate([wrist - 0.5, size[:, None]], axis=1), 0.0))
    return np.concatenate(views, axis=1).astype(np.float32)


def trim_to_hands(frames: np.ndarray, hands: tuple[str, ...] = ("left_hand", "right_hand")) -> np.ndarray:
    """The frames from the first to the last in which one of `hands` was found (a clip with no hand: unchanged).
    Signers' hands rest out of view before and after a sign; those frames only dilute it."""
    found = np.flatnonzero(layout.presence(frames)[:, [layout.PARTS.index(h) for h in hands]].any(axis=1))
    return frames if len(found) == 0 else frames[found[0] : found[-1] + 1]


def fill_gaps(frames: np.ndarray, max_gap: int, parts: tuple[str, ...] = ("left_hand", "right_hand")) -> np.ndarray:
    """Interpolate a part linearly over runs of at most `max_gap` frames where it was not found between two
    frames where it was (Holistic often loses a moving hand for a frame or two). Longer gaps, and gaps at the
    start or end, stay missing."""
    out = np.array(frames, dtype=np.float32, copy=True)
    for name in parts:
        cols = layout.COMPONENTS[name].slice
        found = np.flatnonzero(np.any(frames[:, cols] != 0, axis=1))
        for a, b in itertools.pairwise(found):
            if 1 < b - a <= max_gap + 1:
                w = (np.arange(a + 1, b) - a)[:, None] / (b - a)
                out[a + 1 : b, cols] = (1 - w) * frames[a, cols] + w * frames[b, cols]
    return out


def resample(frames: np.ndarray, length: int) -> np.ndarray:
    """`length` frames spread evenly over the sequence (nearest frames: a missing part stays missing)."""
    index = np.round(np.linspace(0, len(frames) - 1, length)).astype(int)
    return frames[index]


# --- augmentation --------------------------------------------------------------------------------------------


def _face_mirror() -> np.ndarray:
    perm = np.arange(layout.COMPONENTS["face"].landmarks)
    for a, b in layout.FACE_MIRROR_PAIRS:
        perm[a], perm[b] = b, a
    return perm


_FACE_MIRROR = _face_mirror()


def mirror(frames: np.ndarray) -> np.ndarray:
    """Left-right mirror: x -> 1 - x for every present point, left and right pose landmarks swapped, the left
    and right hands swapped, and the face key points swapped with their mirror partners (the rest of the face
    mesh is flipped in place). Mirroring twice gives the sequence back."""
    out = _affine_xy(frames, lambda xy: np.stack([1.0 - xy[..., 0], xy[..., 1]], axis=-1))
    pose = layout.part(out, "pose")
    pose[:] = pose[:, list(layout.POSE_MIRROR_PERMUTATION)]
    face = layout.part(out, "face")
    if face.any():  # hands-only and body-only data have none to swap
        face[:] = face[:, _FACE_MIRROR]
    left, right = layout.COMPONENTS["left_hand"].slice, layout.COMPONENTS["right_hand"].slice
    out[:, left], out[:, right] = out[:, right].copy(), out[:, left].copy()
    return out


def rotation(degrees: float) -> np.ndarray:
    """The 2 x 2 matrix turning x, y by `degrees` (counter-clockwise in x-right, y-up axes)."""
    a = np.deg2rad(degrees)
    return np.array([[np.cos(a), -np.sin(a)], [np.sin(a), np.cos(a)]], np.float32)


def rotate_scale(frames: np.ndarray, degrees: float, scale_x: float, scale_y: float, shear: float = 0.0,
                 shift: np.ndarray | tuple[float, float] = (0.0, 0.0)) -> np.ndarray:  # fmt: skip
    """Rotate by `degrees`, shear (x += shear * y) and scale x, y about the body centre, then move everything by
    `shift` (present points only)."""
    centre, _ = body_frame(frames)
    m = np.array([[1.0, shear], [0.0, 1.0]], np.float32) @ rotation(degrees) * np.array([scale_x, scale_y], np.float32)[:, None]
    move = centre + np.asarray(shift, np.float32)
    return _affine_xy(frames, lambda xy: (xy - centre) @ m.T + move)


def time_stretch(frames: np.ndarray, factor: float) -> np.ndarray:
    """The sequence played `factor` times as long (nearest frames)."""
    return resample(frames, max(2, round(len(frames) * factor)))


def time_crop(frames: np.ndarray, keep: float, start: float) -> np.ndarray:
    """A window of `keep` (0-1) of the frames, starting at `start` (0-1) of the room left: a sign caught a little
    late or cut a little early. At least two frames are kept."""
    n = min(len(frames), max(2, round(len(frames) * keep)))
    first = round((len(frames) - n) * start)
    return frames[first : first + n]


def drop_frames(frames: np.ndarray, p: float, rng: np.random.Generator) -> np.ndarray:
    """Each frame dropped with probability `p` (at least half of them, and two, are kept)."""
    keep = rng.random(len(frames)) >= p
    if keep.sum() < max(2, len(frames) // 2):
        return frames
    return frames[keep]


ARM_POSE_POINTS = {"left_hand": (15, 17, 19, 21), "right_hand": (16, 18, 20, 22)}  # wrist, pinky, index, thumb


def turn_hands(frames: np.ndarray, turns: dict[str, tuple[float, float]]) -> np.ndarray:
    """Hand pose: each named hand's points rotated by `degrees` and scaled by `scale` about its own wrist (x, y;
    z scaled too) in the frames where it was found, as people hold and size their hands differently; the arm
    and the rest of the body stay where they are. `turns` maps a hand to (degrees, scale)."""
    out = np.array(frames, dtype=np.float32, copy=True)
    for name, (degrees, scale) in turns.items():
        hand = layout.part(out, name)
        found = np.any(hand != 0, axis=(1, 2))
        m = scale * rotation(degrees)
        wrist = hand[:, :1, :2]
        hand[..., :2] = np.where(found[:, None, None], (hand[..., :2] - wrist) @ m.T + wrist, 0.0)
        hand[..., 2] *= scale
    return out


def move_arms(frames: np.ndarray, factors: dict[str, float]) -> np.ndarray:
    """Body proportions: each hand (its 21 points and the pose's wrist and finger points) moved along the line
    from the body centre to its wrist, to `factor` times the distance; the hand's shape is unchanged."""
    out = np.array(frames, dtype=np.float32, copy=True)
    pose = layout.part(out, "pose")
    has_pose = np.any(pose != 0, axis=(1, 2))
    centre = body_frame(frames)[0] if has_pose.any() else hands_frame(frames)[0]
    for name, f in factors.items():
        hand = layout.part(out, name)
        found = np.any(hand != 0, axis=(1, 2))
        wrist = np.where(found[:, None], hand[:, 0, :2], pose[:, ARM_POSE_POINTS[name][0], :2])  # (T, 2)
        known = found | (has_pose & np.any(pose[:, ARM_POSE_POINTS[name][0], :2] != 0, axis=1))
        delta = np.where(known[:, None], (f - 1.0) * (wrist - centre), 0.0)
        hand[..., :2] = np.where(found[:, None, None], hand[..., :2] + delta[:, None], 0.0)
        pts = list(ARM_POSE_POINTS[name])
        pose[:, pts, :2] = np.where(has_pose[:, None, None], pose[:, pts, :2] + delta[:, None], pose[:, pts, :2])
    return out


def place_hands(frames: np.ndarray, offset: np.ndarray) -> np.ndarray:
    """Where a person signs relative to the body (hello at the forehead or at the mouth): both hands (their 21
    points and the pose's wrist and finger points) moved by `offset` (x, y) shoulder widths, the same in every
    frame; hand shapes and motion are unchanged."""
    out = np.array(frames, dtype=np.float32, copy=True)
    pose = layout.part(out, "pose")
    has_pose = np.any(pose != 0, axis=(1, 2))
    scale = body_frame(frames)[1] if has_pose.any() else hands_frame(frames)[1]
    delta = (np.asarray(offset, np.float32) * scale).astype(np.float32)
    for name in ("left_hand", "right_hand"):
        hand = layout.part(out, name)
        found = np.any(hand != 0, axis=(1, 2))
        hand[..., :2] = np.where(found[:, None, None], hand[..., :2] + delta, 0.0)
        pts = list(ARM_POSE_POINTS[name])
        pose[:, pts, :2] = np.where(has_pose[:, None, None], pose[:, pts, :2] + delta, pose[:, pts, :2])
    return out


def drop_hand_span(frames: np.ndarray, rng: np.random.Generator, low: float = 0.2, high: float = 0.6) -> np.ndarray:
    """One hand lost for a contiguous stretch of `low` to `high` of the clip (as trackers lose a moving hand)."""
    present = [h for h in ("left_hand", "right_hand") if np.any(layout.part(frames, h) != 0)]
    if not present or len(frames) < 3:
        return frames
    name = present[rng.integers(len(present))]
    n = max(1, round(len(frames) * rng.uniform(low, high)))
    start = int(rng.integers(0, len(frames) - n + 1))
    out = np.array(frames, copy=True)
    out[start : start + n, layout.COMPONENTS[name].slice] = 0.0
    return out


ARM_REST = {13: (0.05, 0.8), 15: (0.05, 1.5), 17: (0.05, 1.7), 19: (0.05, 1.75), 21: (0.05, 1.65)}  # left arm
# (elbow, wrist, pinky, index, thumb): where they hang relative to the shoulder, in shoulder widths (x outward, y down)
# on a body of level aspect (`aspect_factor`); the right arm's points are these + 1


SYMMETRIC_PRESENCE, SYMMETRIC_SPEED = 0.5, 0.5


def weaker_hand(frames: np.ndarray) -> str | None:
    """Of two hands both found in the clip, the one whose wrist moves less from frame to frame (mean speed over
    the consecutive frames that have it, so a hand found in fewer frames is not taken for the still one): the
    passive or mirroring hand of a two-handed sign. None when fewer than two hands were found."""
    speeds = _wrist_speeds(frames)
    return None if speeds is None else _slower(speeds)


def _slower(speeds: dict[str, tuple[float, float]]) -> str:
    return min(speeds, key=lambda n: (speeds[n][0], n))


def _wrist_speeds(frames: np.ndarray) -> dict[str, tuple[float, float]] | None:
    """Per hand: mean wrist speed over consecutive frames that have it, and the share of frames it was found in;
    None unless both hands were found."""
    out = {}
    for name in ("left_hand", "right_hand"):
        hand = layout.part(frames, name)
        found = np.any(hand != 0, axis=(1, 2))
        if not found.any():
            return None
        both = found[1:] & found[:-1]
        steps = np.linalg.norm(np.diff(hand[:, 0, :2], axis=0), axis=1)[both]
        out[name] = (float(steps.mean()) if len(steps) else 0.0, float(found.mean()))
    return out


def symmetric_weaker_hand(frames: np.ndarray) -> str | None:
    """The weaker hand of a symmetric two-handed sign, the kind people most often make with one hand (both hands
    found in at least SYMMETRIC_PRESENCE of the frames and moving alike: the slower at least SYMMETRIC_SPEED times
    as fast as the other); None for a one-handed clip, a resting hand seen now and then, or a still base hand that
    the other hand acts on (dropping that would make another sign)."""
    speeds = _wrist_speeds(frames)
    if speeds is None or min(found for _, found in speeds.values()) < SYMMETRIC_PRESENCE:
        return None
    slow, fast = sorted(s for s, _ in speeds.values())
    if fast <= 0 or slow < SYMMETRIC_SPEED * fast:
        return None
    return _slower(speeds)


def sign_one_handed(frames: np.ndarray, name: str) -> np.ndarray:
    """The one-handed form of a two-handed sign, as many people sign it ("weak drop"): hand `name` is removed
    from every frame and, where there is a pose, its arm hangs at the side (elbow, wrist and finger points put
    ARM_REST below the shoulder, in the body's proportions whatever the camera's aspect ratio)."""
    out = np.array(frames, dtype=np.float32, copy=True)
    out[:, layout.COMPONENTS[name].slice] = 0.0
    pose = layout.part(out, "pose")
    has_pose = np.any(pose != 0, axis=(1, 2))
    if has_pose.any():
        k = aspect_factor(frames) or np.float32(1.0)
        level = np.array([1.0, k], np.float32)  # image x, y -> a body of level aspect, and back by dividing
        left = name == "left_hand"
        shoulder = layout.POSE_LEFT_SHOULDER if left else layout.POSE_RIGHT_SHOULDER
        other = layout.POSE_RIGHT_SHOULDER if left else layout.POSE_LEFT_SHOULDER
        width = (pose[has_pose, shoulder, :2] - pose[has_pose, other, :2]) * level  # from the other shoulder out
        size = np.linalg.norm(width, axis=1, keepdims=True)
        outward = width / np.maximum(size, 1e-6)
        down = np.stack([-outward[:, 1], outward[:, 0]], axis=1)
        down = np.where(down[:, 1:] < 0, -down, down)  # image y grows downwards
        for point, (x, y) in ARM_REST.items():
            p = point if left else point + 1
            pose[has_pose, p, :2] = pose[has_pose, shoulder, :2] + size * (x * outward + y * down) / level
    return out


@dataclass
class Augment:
    """Random training-time changes to raw `(T, 1662)` sequences; a value of 0 switches a step off. Each stands
    for a way people and cameras differ: handedness (mirror), camera tilt and field of view (rotate, shear,
    scale), where the person is (shift), body proportions (arms), how hands are held (hand_rotate, hand_scale),
    speed and frame rate (stretch, drop), when recording started and stopped (crop), sources without pose
    visibility (no_visibility), trackers losing a hand (hand_drop), the one-handed form of a two-handed sign
    (one_hand) and landmark noise (jitter)."""

    mirror: float = 0.5  # probability of the left-right mirror (hands swapped)
    rotate: float = 10.0  # degrees, uniform in [-rotate, rotate]
    scale: float = 0.1  # x and y scaled independently by 1 +- scale
    aspect: float = 1.0  # y scaled by a factor between 1/aspect and aspect (log-uniform): other cameras' shapes
    shear: float = 0.0  # x += k * y with k uniform in [-shear, shear] (camera tilt / lens)
    shift: float = 0.0  # the whole person moved by up to this, in image units
    arms: float = 0.0  # each hand's distance from the body times 1 +- arms
    hand_place: float = 0.0  # both hands moved by up to this many shoulder widths (x and y), the same all clip;
    # clips without a body are left alone (their features are relative to the hands, and where in the frame the
    # hands are, `image_place`, is what tells where relative to the body they signed)
    hand_rotate: float = 0.0  # each hand turned about its wrist by up to this many degrees (uniform, +-)
    hand_scale: float = 0.0  # each hand's size about its wrist times 1 +- hand_scale
    stretch: float = 0.2  # length times 1 +- stretch (speed, frame rate)
    drop: float = 0.1  # probability of dropping each frame
    crop: float = 0.0  # half the time, a window of 1 - crop to all of the clip is kept (a late start, an early stop)
    hand_drop: float = 0.0  # probability of losing one hand for 20-60% of the clip
    one_hand: float = 0.0  # probability of making a symmetric two-handed sign with one hand (the slower one dropped)
    no_visibility: float = 0.0  # probability of zeroing the pose visibility values
    jitter: float = 0.0  # standard deviation of noise added to x, y of every present point

    def __call__(self, frames: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        if self.mirror and rng.random() < self.mirror:
            frames = mirror(frames)
        if self.one_hand and rng.random() < self.one_hand and (weak := symmetric_weaker_hand(frames)) is not None:
            frames = sign_one_handed(frames, weak)
        if self.arms:
            frames = move_arms(frames, {h: 1 + rng.uniform(-self.arms, self.arms) for h in ("left_hand", "right_hand")})
        if self.hand_place and layout.presence(frames)[:, layout.PARTS.index("pose")].any():  # relative to a body:
            # without one the features are relative to the hands, which this moves as a whole; no draw spent
            frames = place_hands(frames, rng.uniform(-self.hand_place, self.hand_place, 2))
        if self.hand_rotate or self.hand_scale:
            frames = turn_hands(frames, {h: (rng.uniform(-self.hand_rotate, self.hand_rotate),
                                             1 + rng.uniform(-self.hand_scale, self.hand_scale))
                                         for h in ("left_hand", "right_hand")})  # fmt: skip
        if self.rotate or self.scale or self.shear or self.shift or self.aspect > 1:
            a = float(np.exp(rng.uniform(-np.log(self.aspect), np.log(self.aspect)))) if self.aspect > 1 else 1.0
            frames = rotate_scale(frames, rng.uniform(-self.rotate, self.rotate),
                                  1 + rng.uniform(-self.scale, self.scale), a * (1 + rng.uniform(-self.scale, self.scale)),
                                  rng.uniform(-self.shear, self.shear), rng.uniform(-self.shift, self.shift, 2))  # fmt: skip
        if self.jitter:
            noise = rng.normal(0, self.jitter, (len(frames), 2)).astype(np.float32)
            frames = _affine_xy(frames, lambda xy: xy + noise.reshape((len(frames),) + (1,) * (xy.ndim - 2) + (2,)))
        if self.no_visibility and rng.random() < self.no_visibility:
            frames = np.array(frames, copy=True)
            layout.part(frames, "pose")[..., 3] = 0.0
        if self.hand_drop and rng.random() < self.hand_drop:
            frames = drop_hand_span(frames, rng)
        if self.crop and rng.random() < 0.5:
            frames = time_crop(frames, rng.uniform(1 - self.crop, 1.0), rng.random())
        if self.stretch:
            frames = time_stretch(frames, 1 + rng.uniform(-self.stretch, self.stretch))
        if self.drop:
            frames = drop_frames(frames, self.drop, rng)
        return frames

    def to_dict(self) -> dict:
        out = asdict(self)
        for name in ("one_hand", "hand_place"):  # added later: left out when off, so runs made before keep their
            if not out[name]:  # fingerprints
                del out[name]
        return out

    @classmethod
    def off(cls) -> Augment:
        return cls(**{f.name: 0.0 for f in fields(cls)})
