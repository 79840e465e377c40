""".pose files of the pose-format package (sign-language-processing/pose), read and written.

A `.pose` file of MediaPipe Holistic, as pose-format's `load_holistic` writes it, has the components
POSE_LANDMARKS (33 points), FACE_LANDMARKS (468, or 478 with refined irises), LEFT_HAND_LANDMARKS and
RIGHT_HAND_LANDMARKS (21 each), and usually POSE_WORLD_LANDMARKS; points are X, Y in pixels of the video
(`header.dimensions`), Z as MediaPipe gives it, and a confidence (the pose's visibility, 1 for a face or hand
point that was found, 0 where a part is missing). signrec's layout names the same parts pose, face, left_hand
and right_hand; reading maps them into `(frames, 1662)` (x and y back to 0..1, missing parts zeros), and
writing does the reverse. pose-format is an optional dependency (`pip install signrec[pose]`).
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np

from .. import layout

# signrec's part -> pose-format's component name
COMPONENT_NAMES = {"pose": "POSE_LANDMARKS", "face": "FACE_LANDMARKS", "left_hand": "LEFT_HAND_LANDMARKS",
                   "right_hand": "RIGHT_HAND_LANDMARKS"}  # fmt: skip


def _pose_format():
    try:
        import pose_format
    except ImportError as e:  # pragma: no cover - depends on the install
        raise ImportError(".pose files need the pose-format package: pip install 'signrec[pose]'") from e
    return pose_format


def read_pose(path: str | os.PathLike) -> np.ndarray:
    """A `.pose` file as `(frames, 1662)` float32 keypoints (the first person; parts it lacks are zeros)."""
    from ..io import KeypointFileError

    pf = _pose_format()
    try:
        pose = pf.Pose.read(Path(path).read_bytes())
    except Exception as e:
        raise KeypointFileError(f"{path}: not a readable .pose file ({e})") from e
    header = pose.header
    width = float(header.dimensions.width or 1)
    height = float(header.dimensions.height or 1)
    data = np.asarray(pose.body.data.filled(0) if hasattr(pose.body.data, "filled") else pose.body.data, np.float32)
    confidence = np.asarray(pose.body.confidence, np.float32)
    if data.ndim != 4 or data.shape[1] < 1:
        raise KeypointFileError(f"{path}: expected (frames, people, points, dims) data, got {data.shape}")
    frames = data.shape[0]
    out = np.zeros((frames, layout.NUM_FEATURES), np.float32)
    names = [c.name for c in header.components]
    found_any = False
    for part, name in COMPONENT_NAMES.items():
        if name not in names:
            continue
        start = sum(len(c.points) for c in header.components[: names.index(name)])
        component = header.components[names.index(name)]
        want = layout.COMPONENTS[part]
        if len(component.points) < want.landmarks:
            raise KeypointFileError(f"{path}: {name} has {len(component.points)} points, signrec's {part} needs "
                                    f"{want.landmarks}")  # fmt: skip
        pts = data[:, 0, start : start + want.landmarks, :3].copy()  # refined face: the first 468 are the mesh
        conf = confidence[:, 0, start : start + want.landmarks]
        pts[..., 0] /= width
        pts[..., 1] /= height
        found = conf.sum(axis=1) > 0  # a part whose points all have confidence 0 was not found
        values = np.concatenate([pts, conf[..., None]], axis=-1) if want.dims == 4 else pts
        values[~found] = 0.0
        out[:, want.slice] = values.reshape(frames, -1)
        found_any |= bool(found.any())
    if not found_any:
        raise KeypointFileError(f"{path}: has none of {', '.join(COMPONENT_NAMES.values())} with any point found")
    return out


def write_pose(path: str | os.PathLike, keypoints: np.ndarray, fps: float, width: int, height: int) -> Path:
    """Write `(frames, 1662)` keypoints as a pose-format `.pose` file (pixel coordinates for a `width` x
    `height` video), atomically. Components and point names are pose-format's own for MediaPipe Holistic."""
    pf = _pose_format()
    from pose_format.numpy.pose_body import NumPyPoseBody
    from pose_format.pose_header import PoseHeader, PoseHeaderDimensions
    from pose_format.utils.holistic import holistic_components

    layout.check_frames(keypoints)
    components = [c for c in holistic_components("XYZC") if c.name in COMPONENT_NAMES.values()]
    data, conf = [], []
    presence = layout.presence(keypoints)
    for i, part in enumerate(layout.PARTS):
        pts = layout.part(keypoints, part).astype(np.float32)
        xyz = pts[..., :3].copy()
        xyz[..., 0] *= width
        xyz[..., 1] *= height
        c = pts[..., 3] if layout.COMPONENTS[part].dims == 4 else np.repeat(presence[:, [i]], pts.shape[1], 1).astype(np.float32)
        c = np.where(presence[:, [i]], c, 0.0)
        data.append(xyz)
        conf.append(c)
    body = NumPyPoseBody(fps=float(fps or 0), data=np.concatenate(data, axis=1)[:, None],
                         confidence=np.concatenate(conf, axis=1)[:, None])  # fmt: skip
    header = PoseHeader(version=0.2, dimensions=PoseHeaderDimensions(width=int(width), height=int(height), depth=0),
                        components=components)  # fmt: skip
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    with open(tmp, "wb") as f:
        pf.Pose(header, body).write(f)
    os.replace(tmp, path)
    return path


def export_pose(store: object, folder: str | os.PathLike | None = None, progress: bool = False) -> list[Path]:
    """Write every clip of a store as a `.pose` file at `<folder>/<gloss>/<id>.pose` (default: beside its array in
    the store), in the pixel coordinates of its video: the manifest's `width`, `height` and `fps` (extraction
    records them; clips without them are written in 0..1 coordinates, width = height = 1). Files already there are
    kept, so an interrupted export resumes. Returns the files written now."""
    from tqdm import tqdm

    from .store import open_store

    _pose_format()
    store = open_store(store)  # type: ignore[arg-type]
    folder = Path(folder) if folder is not None else store.root
    written = []
    for clip in tqdm(list(store), unit="clip", desc="export .pose", disable=not progress):
        target = folder / Path(clip.path).with_suffix(".pose")
        if target.exists():
            continue
        fps, width, height = (float(clip.meta.get(c) or d) for c, d in (("fps", 0), ("width", 1), ("height", 1)))
        write_pose(target, store.read(clip), fps, int(width), int(height))
        written.append(target)
    return written
