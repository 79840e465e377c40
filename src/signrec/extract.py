"""Video -> MediaPipe Holistic keypoints.

`results_to_row` is the one function that turns a Holistic result into a feature row; dataset building,
prediction and live recognition all go through it. `extract_video` runs one clip; `extract` runs a file or a
folder of clips in parallel, resumably, with a manifest.
"""

from __future__ import annotations

import multiprocessing as mp
import os
import sys
import time
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import layout
from .io import atomic_save_npy, clean_partials, load_npy, read_csv_rows, write_csv_atomic
from .video import FULL, VIDEO_SUFFIXES, FrameRange, VideoError, iter_rgb, probe

MANIFEST_NAME = "manifest.csv"
LOG_NAME = "extract.log"
# A clip in which pose and both hands are found in fewer frames than this share has no usable signer.
DEFAULT_MIN_PERSON = 0.2
MANIFEST_FIELDS = [
    "id", "gloss", "path", "source", "status", "error", "frames", "fps",
    "frame_start", "frame_end", *layout.PARTS,
]  # fmt: skip


class ExtractionError(ValueError):
    """A clip that produced no keypoints; the message names the file and the reason."""


class NoPersonError(ExtractionError):
    """Holistic found no signer in (almost) any frame of a clip."""


def _quiet_native_logs() -> None:
    """Keep MediaPipe's and FFmpeg's native chatter out of the progress bar (our own errors say enough)."""
    os.environ.setdefault("GLOG_minloglevel", "2")
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    os.environ.setdefault("OPENCV_FFMPEG_LOGLEVEL", "-8")  # AV_LOG_QUIET
    os.environ.setdefault("OPENCV_LOG_LEVEL", "ERROR")


class Holistic:
    """MediaPipe Holistic as a context manager, configured for the 1662-value layout.

    Uses the bundled `model_complexity=1` model and the 468-point face mesh (`refine_face_landmarks=False`;
    the refined mesh has 478 points and would break the layout). Tracking state carries across frames of a
    clip; call `reset()` between clips so that each clip's keypoints do not depend on what came before.
    """

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5):
        _quiet_native_logs()
        try:
            from mediapipe.python.solutions import holistic as mp_holistic
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError("MediaPipe is required for keypoint extraction: pip install mediapipe==0.10.21") from e
        self._solution = mp_holistic.Holistic(
            static_image_mode=False,
            model_complexity=1,
            smooth_landmarks=True,
            refine_face_landmarks=False,
            min_detection_confidence=min_detection_confidence,
            min_tracking_confidence=min_tracking_confidence,
        )

    def process_rgb(self, frame_rgb: np.ndarray) -> Any:
        """Holistic results for one RGB frame."""
        return self._solution.process(frame_rgb)

    def process_bgr(self, frame_bgr: np.ndarray) -> Any:
        """Holistic results for one BGR frame (as OpenCV reads it)."""
        import cv2

        return self._solution.process(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))

    def reset(self) -> None:
        self._solution.reset()

    def close(self) -> None:
        self._solution.close()

    def __enter__(self) -> Holistic:  # noqa: PYI034 - typing.Self needs Python 3.11
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def _landmarks(lms: Any, component: layout.Component) -> np.ndarray | None:
    if lms is None:
        return None
    points = lms.landmark
    if len(points) != component.landmarks:
        raise ValueError(
            f"{component.name}: Holistic gave {len(points)} landmarks, the layout expects {component.landmarks}"
        )
    if component.dims == 4:
        return np.array([(p.x, p.y, p.z, p.visibility) for p in points], dtype=np.float32)
    return np.array([(p.x, p.y, p.z) for p in points], dtype=np.float32)


def results_to_row(results: Any) -> np.ndarray:
    """The feature row `(1662,)` float32 for one Holistic result; parts not found are zeros."""
    row = np.zeros(layout.NUM_FEATURES, dtype=np.float32)
    sources = {
        "pose": results.pose_landmarks,
        "face": results.face_landmarks,
        "left_hand": results.left_hand_landmarks,
        "right_hand": results.right_hand_landmarks,
    }
    for name, lms in sources.items():
        values = _landmarks(lms, layout.COMPONENTS[name])
        if values is not None:
            row[layout.COMPONENTS[name].slice] = values.ravel()
    return row


@dataclass
class ClipKeypoints:
    """Keypoints of one clip plus what was learnt about the clip while extracting."""

    keypoints: np.ndarray  # (frames, 1662) float32
    fps: float
    holistic_seconds: float = 0.0
    total_seconds: float = 0.0

    @property
    def frames(self) -> int:
        return len(self.keypoints)


def extract_video(
    path: str | os.PathLike,
    frame_range: FrameRange = FULL,
    holistic: Holistic | None = None,
    min_person: float = 0.0,
) -> ClipKeypoints:
    """Keypoints `(frames, 1662)` of every decodable frame of `path` within `frame_range`.

    Raises VideoError for a file that is not a readable video, NoPersonError when pose and hands are found in
    fewer than `min_person` of the frames.
    """
    info = probe(path)
    own = holistic is None
    holistic = holistic or Holistic()
    rows: list[np.ndarray] = []
    t0 = time.perf_counter()
    in_holistic = 0.0
    try:
        holistic.reset()
        for rgb in iter_rgb(path, frame_range):
            t = time.perf_counter()
            results = holistic.process_rgb(rgb)
            in_holistic += time.perf_counter() - t
            rows.append(results_to_row(results))
    finally:
        if own:
            holistic.close()
    keypoints = np.stack(rows).astype(np.float32, copy=False)
    clip = ClipKeypoints(keypoints, info.fps, in_holistic, time.perf_counter() - t0)
    if min_person > 0:
        found = layout.presence(keypoints)
        person = found[:, [0, 2, 3]].any(axis=1).mean()  # pose or a hand
        if person < min_person:
            raise NoPersonError(
                f"{path}: no person found (pose or hands in {person:.0%} of {len(keypoints)} frames, "
                f"need {min_person:.0%})"
            )
    return clip


# ----------------------------------------------------------------------------------------------------------
# Batch extraction


@dataclass(frozen=True)
class Job:
    """One clip to extract: source video, destination `.npy`, and metadata carried into the manifest."""

    id: str
    gloss: str
    source: str
    dest: str
    frame_range: FrameRange = FULL
    meta: dict = field(default_factory=dict, hash=False, compare=False)


@dataclass
class ExtractSummary:
    """What a batch run did; `failed` maps a source path to its reason."""

    done: int = 0
    skipped: int = 0
    failed: dict[str, str] = field(default_factory=dict)
    frames: int = 0
    seconds: float = 0.0
    holistic_seconds: float = 0.0
    work_seconds: float = 0.0
    parts_found: dict[str, float] = field(default_factory=dict)
    manifest: str = ""

    @property
    def frames_per_second(self) -> float:
        return self.frames / self.seconds if self.seconds > 0 else 0.0

    @property
    def outside_holistic(self) -> float:
        """Share of the workers' time not spent inside Holistic (decoding, conversion, rows, saving)."""
        return 1 - self.holistic_seconds / self.work_seconds if self.work_seconds > 0 else 0.0

    def report(self) -> str:
        lines = [
            f"clips: {self.done} extracted, {self.skipped} already done (skipped), {len(self.failed)} failed",
            (f"frames: {self.frames} in {self.seconds:.1f} s ({self.frames_per_second:.1f} frames/s), "
            f"{self.outside_holistic:.1%} of worker time outside Holistic"),
        ]
        if self.parts_found:
            found = ", ".join(f"{k} {v:.0%}" for k, v in self.parts_found.items())
            lines.append(f"frames with part found (all clips in manifest): {found}")
        lines.extend(f"FAILED {why}" for why in self.failed.values())
        if self.manifest:
            lines.append(f"manifest: {self.manifest}")
        return "\n".join(lines)


def _read_metadata(path: str | os.PathLike | None) -> dict[str, dict]:
    """Per-clip metadata keyed by id (column `id` or `video_id` or `wlasl_video_id`)."""
    if path is None or not Path(path).exists():
        return {}
    out = {}
    for row in read_csv_rows(path):
        key = row.get("id") or row.get("video_id") or row.get("wlasl_video_id")
        if key:
            out[key] = row
    return out


def find_jobs(
    input: str | os.PathLike,
    out: str | os.PathLike,
    frame_range: FrameRange = FULL,
    metadata: str | os.PathLike | None = None,
) -> list[Job]:
    """Jobs for a video file or a folder laid out as `<gloss>/<id>.<ext>` (mirrored as `out/<gloss>/<id>.npy`).

    Metadata (a CSV with an `id`/`video_id` column, by default `input/manifest.csv` as `signrec data`
    writes it) is carried into the keypoint manifest; its `frame_start`/`frame_end` trim clips that the
    videos folder holds untrimmed (`trimmed` column false).
    """
    input, out = Path(input), Path(out)
    if not input.exists():
        raise FileNotFoundError(f"{input}: no such file or folder")
    if input.is_file():
        return [Job(input.stem, "", str(input), str(out / f"{input.stem}.npy"), frame_range)]
    meta = _read_metadata(metadata if metadata is not None else input / MANIFEST_NAME)
    jobs = []
    for src in _walk_files(input):
        if src.suffix.lower() not in VIDEO_SUFFIXES or src.name.startswith("."):
            continue
        rel = src.relative_to(input)
        m = dict(meta.get(src.stem, {}))
        # the folder names the gloss, unless the metadata spells it ("thank you" lives in thank_you/)
        gloss = m.get("gloss") or (rel.parent.as_posix() if rel.parent != Path(".") else "")
        rng = frame_range
        if m.get("trimmed", "true").lower() in ("false", "0", "no") and m.get("frame_start"):
            rng = FrameRange(int(m["frame_start"]), int(m.get("frame_end") or -1))
        extra = {k: v for k, v in m.items() if k not in MANIFEST_FIELDS and k not in ("video_id", "trimmed")}
        jobs.append(Job(src.stem, gloss, str(src), str(out / rel.with_suffix(".npy")), rng, extra))
    if not jobs:
        raise FileNotFoundError(f"{input}: no video files found (looked for {', '.join(VIDEO_SUFFIXES)})")
    return jobs


def _walk_files(root: Path) -> list[Path]:
    """Every file below `root`, following linked folders and skipping hidden ones (`.downloads`), sorted."""
    found = []
    for d, dirs, files in os.walk(root, followlinks=True):
        dirs[:] = [x for x in dirs if not x.startswith(".")]
        found.extend(Path(d) / f for f in files)
    return sorted(found)


_WORKER_HOLISTIC: Holistic | None = None


def _worker_init(log_path: str | None = None) -> None:
    """Start a worker: native logs (MediaPipe's, FFmpeg's) go to `log_path`, then one Holistic is built."""
    global _WORKER_HOLISTIC
    if log_path:
        fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
        os.dup2(fd, 2)
        os.close(fd)
    _WORKER_HOLISTIC = Holistic()


def _row(job: Job, out_root: Path, **values: Any) -> dict:
    row = {
        "id": job.id,
        "gloss": job.gloss,
        "path": Path(job.dest).relative_to(out_root).as_posix(),
        "source": job.source,
        "frame_start": job.frame_range.start,
        "frame_end": job.frame_range.end,
        **job.meta,
    }
    row.update(values)
    return row


def _run_job(args: tuple[Job, str, float]) -> tuple[dict, float, float]:
    """Extract one clip in a worker; returns (manifest row, seconds in Holistic, seconds in total)."""
    job, out_root, min_person = args
    if _WORKER_HOLISTIC is None:
        _worker_init()
    t0 = time.perf_counter()
    try:
        clip = extract_video(job.source, job.frame_range, _WORKER_HOLISTIC, min_person=min_person)
        atomic_save_npy(job.dest, clip.keypoints)
    except (VideoError, ExtractionError, ValueError) as e:
        status = "no_person" if isinstance(e, NoPersonError) else "failed"
        return _row(job, Path(out_root), status=status, error=str(e)), 0.0, time.perf_counter() - t0
    return _ok_row(job, Path(out_root), clip.keypoints, clip.fps), clip.holistic_seconds, time.perf_counter() - t0


def _ok_row(job: Job, out_root: Path, keypoints: np.ndarray, fps: float) -> dict:
    found = layout.presence_summary(keypoints)
    return _row(job, out_root, status="ok", error="", frames=len(keypoints), fps=round(fps, 3),
                **{k: round(v, 4) for k, v in found.items()})  # fmt: skip


def _row_from_file(job: Job, out_root: Path) -> dict:
    """Rebuild a manifest row for a clip whose `.npy` exists but whose row was lost (interrupted run)."""
    try:
        fps = probe(job.source).fps
    except VideoError:
        fps = 0.0
    return _ok_row(job, out_root, load_npy(job.dest), fps)


def write_manifest(path: str | os.PathLike, rows: list[dict]) -> None:
    """Write the keypoint manifest atomically, known columns first, extra metadata after."""
    extra = sorted({k for r in rows for k in r} - set(MANIFEST_FIELDS))
    write_csv_atomic(path, rows, MANIFEST_FIELDS + extra)


def extract(
    input: str | os.PathLike,
    out: str | os.PathLike,
    workers: int | None = None,
    frame_range: FrameRange = FULL,
    metadata: str | os.PathLike | None = None,
    min_person: float = DEFAULT_MIN_PERSON,
    progress: bool = True,
    save_every: float = 30.0,
) -> ExtractSummary:
    """Extract keypoints for a video file or a `<gloss>/<id>.mp4` folder into `out`, resumably.

    Clips whose `.npy` already exists are skipped; a clip is written under a temporary name and renamed when
    complete, so an interrupted run leaves no half-written file. Failed clips are recorded in the manifest
    and retried by the next run.
    """
    from tqdm import tqdm

    _quiet_native_logs()  # before workers start: they inherit the environment
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    clean_partials(out)
    jobs = find_jobs(input, out, frame_range, metadata)
    manifest_path = out / MANIFEST_NAME
    previous = {r["path"]: r for r in read_csv_rows(manifest_path)} if manifest_path.exists() else {}
    rows: dict[str, dict] = {}
    todo: list[Job] = []
    summary = ExtractSummary(manifest=str(manifest_path))
    for job in jobs:
        rel = Path(job.dest).relative_to(out).as_posix()
        if Path(job.dest).exists():
            old = previous.get(rel)
            rows[rel] = old if old and old.get("status") == "ok" else _row_from_file(job, out)
            summary.skipped += 1
        else:
            todo.append(job)
    workers = max(1, min(workers or os.cpu_count() or 1, len(todo) or 1))
    t0 = time.perf_counter()
    last_save = t0
    bar = tqdm(total=len(todo), unit="clip", desc="extract", disable=not progress, file=sys.stderr)
    args = [(job, str(out), min_person) for job in todo]
    # Workers are separate processes even when there is one, so that MediaPipe's native log lines go to
    # extract.log instead of through the progress bar.
    pool = mp.get_context("spawn").Pool(workers, initializer=_worker_init, initargs=(str(out / LOG_NAME),)) if todo else None
    try:
        for row, in_holistic, total in pool.imap_unordered(_run_job, args, chunksize=1) if pool else ():
            rows[row["path"]] = row
            if row["status"] == "ok":
                summary.holistic_seconds += in_holistic
                summary.work_seconds += total
                summary.done += 1
                summary.frames += int(row["frames"])
            else:
                summary.failed[row["source"]] = row["error"]
                tqdm.write(f"signrec extract: {row['error']}", file=sys.stderr)
            elapsed = time.perf_counter() - t0
            bar.set_postfix_str(f"{summary.frames / elapsed:.1f} frames/s, {len(summary.failed)} failed")
            bar.update(1)
            if time.perf_counter() - last_save > save_every:
                write_manifest(manifest_path, list(rows.values()))
                last_save = time.perf_counter()
    finally:
        bar.close()
        if pool is not None:
            pool.terminate()
            pool.join()
        # Rows of clips that are not part of this input (e.g. from another run into the same folder) stay.
        for rel, old in previous.items():
            rows.setdefault(rel, old)
        write_manifest(manifest_path, sorted(rows.values(), key=lambda r: r["path"]))
    summary.seconds = time.perf_counter() - t0
    summary.parts_found = _parts_found(rows.values())
    return summary


def _parts_found(rows: Iterable[dict]) -> dict[str, float]:
    """Frame-weighted share of frames with each part found, over the ok rows of a manifest."""
    ok = [r for r in rows if r.get("status") == "ok" and r.get("frames")]
    total = sum(int(r["frames"]) for r in ok)
    if not total:
        return {}
    return {p: sum(float(r[p]) * int(r["frames"]) for r in ok) / total for p in layout.PARTS}


def read_manifest(folder: str | os.PathLike) -> list[dict]:
    """Rows of a keypoint folder's manifest (empty if it has none)."""
    path = Path(folder) / MANIFEST_NAME
    return read_csv_rows(path) if path.exists() else []


__all__ = [
    "ClipKeypoints",
    "ExtractSummary",
    "ExtractionError",
    "Holistic",
    "NoPersonError",
    "extract",
    "extract_video",
    "find_jobs",
    "read_manifest",
    "results_to_row",
    "write_manifest",
]  # fmt: skip
