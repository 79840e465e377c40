"""Video -> MediaPipe Holistic keypoints.

`results_to_row` is the one function that turns a Holistic result into a feature row; dataset building,
prediction and live recognition all go through it. `extract_video` runs one clip; `extract` runs a file or a
folder of clips in parallel, resumably, writing each clip through the keypoint store (`signrec.store`).
"""

from __future__ import annotations

import contextlib
import multiprocessing as mp
import os
import re
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from . import layout
from .io import read_csv_rows
from .store import COLUMNS, MANIFEST_NAME, StoreWriter
from .store.schema import ALIASES, value
from .video import FULL, VIDEO_SUFFIXES, FrameRange, VideoError, iter_rgb, probe

LOG_NAME = "extract.log"
FORMATS = ("npy", "pose")  # the store's arrays; and pose-format files beside them
# A clip in which pose and both hands are found in fewer frames than this share has no usable signer.
DEFAULT_MIN_PERSON = 0.2
# Metadata CSVs that describe a folder of videos: inside it, or beside it named for it (videos/wlasl12.csv).
METADATA_NAMES = (MANIFEST_NAME, "index.csv")


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


@contextlib.contextmanager
def native_stderr_silenced(silence: bool = True) -> Iterator[None]:
    """Send file descriptor 2 to /dev/null meanwhile (native libraries write there directly, past Python)."""
    if not silence:
        yield
        return
    sys.stderr.flush()
    saved = os.dup(2)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, 2)
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)
        os.close(saved)
        os.close(devnull)


# Lines MediaPipe, absl and TensorFlow Lite write to fd 2 on their own: glog-style `W0000 00:00:...`, TFLite's
# `INFO: Created TensorFlow Lite XNNPACK delegate`, absl's warning about logging before InitializeLog.
NATIVE_LOG = re.compile(rb"^(?:[IWEF]\d{4} \d\d:\d\d:\d\d|INFO: |WARNING: All log messages before absl)")


@contextlib.contextmanager
def native_log_filter(active: bool = True) -> Iterator[None]:
    """Meanwhile, drop the native libraries' own log lines from stderr and pass everything else through.

    They write to file descriptor 2 directly (past Python's `sys.stderr`) and at unpredictable times (a graph's
    first run, a hand model's first hand), so fd 2 goes through a pipe that a thread filters line by line."""
    if not active:
        yield
        return
    import threading

    sys.stderr.flush()
    read_end, write_end = os.pipe()
    saved = os.dup(2)
    os.dup2(write_end, 2)
    os.close(write_end)

    def pump() -> None:
        with os.fdopen(read_end, "rb") as src:
            for line in src:
                if not NATIVE_LOG.match(line):
                    os.write(saved, line)

    thread = threading.Thread(target=pump, daemon=True)
    thread.start()
    try:
        yield
    finally:
        sys.stderr.flush()
        os.dup2(saved, 2)  # closes the pipe's last write end: the pump sees the end and stops
        thread.join(timeout=5)
        os.close(saved)


class Holistic:
    """MediaPipe Holistic as a context manager, configured for the 1662-value layout.

    Uses the bundled `model_complexity=1` model and the 468-point face mesh (`refine_face_landmarks=False`;
    the refined mesh has 478 points and would break the layout). Tracking state carries across frames of a
    clip; call `reset()` between clips so that each clip's keypoints do not depend on what came before.
    With `quiet` (the default), MediaPipe's and TensorFlow Lite's native start-up lines (written straight to
    the process's stderr, past Python) are swallowed; `quiet=False` shows them.
    """

    def __init__(self, min_detection_confidence: float = 0.5, min_tracking_confidence: float = 0.5,
                 quiet: bool = True):  # fmt: skip
        _quiet_native_logs()
        self.quiet = quiet
        try:
            from mediapipe.python.solutions import holistic as mp_holistic
        except ImportError as e:  # pragma: no cover - depends on the install
            raise ImportError("MediaPipe is required for keypoint extraction: pip install mediapipe==0.10.21") from e
        with native_stderr_silenced(quiet):
            self._solution = mp_holistic.Holistic(
                static_image_mode=False,
                model_complexity=1,
                smooth_landmarks=True,
                refine_face_landmarks=False,
                min_detection_confidence=min_detection_confidence,
                min_tracking_confidence=min_tracking_confidence,
            )
        self._warm = False

    def process_rgb(self, frame_rgb: np.ndarray) -> Any:
        """Holistic results for one RGB frame."""
        if not self._warm:  # the graph's first run prints its own start-up lines
            self._warm = True
            with native_stderr_silenced(self.quiet):
                return self._solution.process(frame_rgb)
        return self._solution.process(frame_rgb)

    def process_bgr(self, frame_bgr: np.ndarray) -> Any:
        """Holistic results for one BGR frame (as OpenCV reads it)."""
        import cv2

        return self._solution.process(cv2.cvtColor(frame_bgr, cv2.COLOR_BGR2RGB))

    def reset(self) -> None:
        self._solution.reset()

    def close(self) -> None:
        self._solution.close()

    def __enter__(self) -> Holistic:
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
    width: int = 0  # the video's frame size (pose-format files give points in its pixels)
    height: int = 0
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
    clip = ClipKeypoints(keypoints, info.fps, info.width, info.height, in_holistic, time.perf_counter() - t0)
    check_person(keypoints, min_person, path)
    return clip


def check_person(keypoints: np.ndarray, min_person: float, source: object) -> None:
    """Raise NoPersonError naming `source` when pose or a hand is found in fewer than `min_person` of the frames."""
    if min_person <= 0:
        return
    found = layout.presence(keypoints)
    person = found[:, [0, 2, 3]].any(axis=1).mean()  # pose or a hand
    if person < min_person:
        raise NoPersonError(
            f"{source}: no person found (pose or hands in {person:.0%} of {len(keypoints)} frames, "
            f"need {min_person:.0%})"
        )


# ----------------------------------------------------------------------------------------------------------
# Batch extraction


@dataclass(frozen=True)
class Job:
    """One clip to extract: source video, its path in the store, and metadata carried into the manifest."""

    id: str
    gloss: str
    source: str
    rel: str  # the clip's path in the store, e.g. "book/68011.npy"
    frame_range: FrameRange = FULL
    meta: dict = field(default_factory=dict, hash=False, compare=False)
    frames_hint: int = 0  # expected frames (for the progress estimate; 0 = unknown)

    def row(self, dataset: str = "") -> dict:
        """The clip's manifest values before extraction (metadata carried along)."""
        return {**self.meta, "id": self.id, "gloss": self.gloss, "source": self.source, "dataset": dataset,
                "signer": value(self.meta, "signer"), "split": value(self.meta, "split"),
                "frame_start": self.frame_range.start, "frame_end": self.frame_range.end}  # fmt: skip


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
    notes: list[str] = field(default_factory=list)
    engine: str = ""  # what ran the clips: the process pool or a Dask cluster

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
             f"{self.outside_holistic:.1%} of worker time outside Holistic"
             + (f", on a {self.engine}" if self.engine else "")),
        ]
        if self.parts_found:
            found = ", ".join(f"{k} {v:.0%}" for k, v in self.parts_found.items())
            lines.append(f"frames with part found (all clips in manifest): {found}")
        lines.extend(f"note: {n}" for n in self.notes)
        lines.extend(f"FAILED {why}" for why in self.failed.values())
        if self.manifest:
            lines.append(f"manifest: {self.manifest}")
        return "\n".join(lines)


def find_metadata(input: str | os.PathLike, metadata: str | os.PathLike | None = None) -> Path | None:
    """The metadata CSV for `input`: the one given (which must exist), else one inside the videos folder
    (manifest.csv as `signrec data` writes it, index.csv), else `<folder>.csv` beside it."""
    if metadata is not None:
        if not Path(metadata).is_file():
            raise FileNotFoundError(f"--metadata {metadata}: no such file")
        return Path(metadata)
    input = Path(input)
    if input.is_file():
        return None
    for name in METADATA_NAMES:
        if (input / name).is_file():
            return input / name
    beside = input.parent / f"{input.name}.csv"
    return beside if beside.is_file() else None


def read_metadata(path: str | os.PathLike | None) -> dict[str, dict]:
    """Per-clip metadata keyed by id (column `id`, `video_id` or `wlasl_video_id`, or the file name of `path`)."""
    if path is None:
        return {}
    out = {}
    for row in read_csv_rows(path):
        key = value(row, "id") or (Path(row["path"]).stem if row.get("path") else "")
        if key:
            out[key] = row
    return out


# Metadata columns that describe the video file, not the clip's keypoints; not carried into the store.
_NOT_CARRIED = {"path", "status", "error", "frames", "trimmed", "parts", "dtype", *layout.PARTS,
                *(a for names in ALIASES.values() for a in names)}  # fmt: skip


def find_jobs(
    input: str | os.PathLike,
    frame_range: FrameRange = FULL,
    metadata: str | os.PathLike | None = None,
) -> list[Job]:
    """Jobs for a video file or a folder laid out as `<gloss>/<id>.<ext>` (stored as `<gloss>/<id>.npy`).

    Metadata (see `find_metadata`) is carried into the manifest (split, signer, any other column); its
    `frame_start`/`frame_end` trim clips that the folder holds untrimmed (`trimmed` column false).
    """
    input = Path(input)
    if not input.exists():
        raise FileNotFoundError(f"{input}: no such file or folder")
    meta_file = find_metadata(input, metadata)
    if input.is_file():
        if input.suffix.lower() not in VIDEO_SUFFIXES:
            raise ValueError(f"{input}: not a video file (expected {', '.join(VIDEO_SUFFIXES)})")
        return [Job(input.stem, "", str(input), f"{input.stem}.npy", frame_range)]
    meta = read_metadata(meta_file)
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
        extra = {k: v for k, v in m.items() if k not in _NOT_CARRIED and k not in COLUMNS}
        extra.update({k: value(m, k) for k in ("signer", "split") if value(m, k)})
        hint = int(float(m.get("frames") or 0)) if rng == frame_range else 0
        jobs.append(Job(src.stem, gloss, str(src), rel.with_suffix(".npy").as_posix(), rng, extra, hint))
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


def expected_frames(job: Job) -> int:
    """How many frames a job will give, for the progress estimate: the range, the metadata, or the container."""
    r = job.frame_range
    if r.end != -1:
        return r.end - r.start + 1
    if job.frames_hint:
        return job.frames_hint
    try:
        return max(1, probe(job.source).frame_count - r.start + 1)
    except VideoError:
        return 1


# One Holistic per worker thread (per worker process with the pool and with `dask worker --nthreads 1`), made on
# first use and reused for every clip after: loading the model costs about a second.
_WORKER = threading.local()
_NATIVE_LOG: str | None = None  # where this process's native log lines go, once redirected
_SETUP = threading.Lock()
_OPENED = 0  # Holistics this process has opened


def worker_setup(log_path: str | None = None) -> None:
    """Prepare a worker process, once: native logs (MediaPipe's, FFmpeg's, written to fd 2 past Python) go to
    `log_path` when given, so they do not run through the progress bar."""
    global _NATIVE_LOG
    _quiet_native_logs()
    with _SETUP:
        if log_path and _NATIVE_LOG is None:
            fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 2)
            os.close(fd)
            _NATIVE_LOG = log_path


def worker_holistic() -> Holistic:
    """This worker thread's Holistic, made on first use and reused for every clip after."""
    global _OPENED
    holistic = getattr(_WORKER, "holistic", None)
    if holistic is None:
        holistic = _WORKER.holistic = Holistic(quiet=_NATIVE_LOG is None)  # with a log, its lines go there
        with _SETUP:
            _OPENED += 1
    return holistic


def holistics_opened() -> int:
    """How many Holistics this worker process has opened (one per worker thread, however many clips it ran)."""
    return _OPENED


def _pool_init(log_path: str | None = None) -> None:
    worker_setup(log_path)
    worker_holistic()  # load the model while the other workers start


@dataclass
class ClipResult:
    """What a worker sends back for one clip: its manifest values, its keypoints `(frames, 1662)` float32 (None
    for a bad clip, whose row says why), and the seconds spent inside Holistic and in all."""

    row: dict
    keypoints: np.ndarray | None
    holistic_seconds: float = 0.0
    total_seconds: float = 0.0


def extract_clip(job: Job, min_person: float = DEFAULT_MIN_PERSON, dataset: str = "",
                 holistic: Holistic | None = None) -> ClipResult:  # fmt: skip
    """Extract one clip, writing nothing: the task every engine (the built-in pool, Dask) runs in its workers.

    A bad clip gives a row with status failed or no_person and the reason, not an exception."""
    holistic = holistic or worker_holistic()
    t0 = time.perf_counter()
    row = {**job.row(dataset), "path": job.rel}
    try:
        clip = extract_video(job.source, job.frame_range, holistic, min_person=min_person)
    except (VideoError, ExtractionError, ValueError) as e:
        return failed_clip(job, dataset, e, time.perf_counter() - t0)
    row.update(fps=round(clip.fps, 3), width=clip.width, height=clip.height)
    return ClipResult(row, clip.keypoints, clip.holistic_seconds, time.perf_counter() - t0)


def failed_clip(job: Job, dataset: str, error: Exception | str, seconds: float = 0.0) -> ClipResult:
    """The result for a clip that gave no keypoints, with the reason."""
    status = "no_person" if isinstance(error, NoPersonError) else "failed"
    return ClipResult({**job.row(dataset), "path": job.rel, "status": status, "error": str(error)}, None, 0.0, seconds)


def store_clip(writer: StoreWriter, result: ClipResult, dtype: str = "float32") -> dict:
    """Write a worker's result through the store (validated, atomic) and record its manifest row."""
    if result.keypoints is not None:
        try:
            return writer.write(result.row["path"], result.keypoints, layout.PARTS, dtype, **result.row)
        except ValueError as e:  # keypoints the store refuses (NaN, no frames): a failed clip, not a crash
            result = ClipResult({**result.row, "status": "failed", "error": str(e)}, None)
    writer.add(result.row)
    return result.row


def _extract_args(args: tuple) -> ClipResult:
    return extract_clip(*args)


class ProcessPool:
    """The built-in engine: `workers` spawned processes, one Holistic each, native logs to `log_path`."""

    def __init__(self, workers: int, log_path: str | None = None):
        self.workers = workers
        self.description = f"process pool ({workers} worker{'s' if workers > 1 else ''})"
        # Workers are separate processes even when there is one, so that MediaPipe's native log lines go to
        # extract.log instead of through the progress bar. Spawned, not forked: a fork of a process that runs
        # MediaPipe's or JAX's threads can deadlock.
        self._pool = mp.get_context("spawn").Pool(workers, initializer=_pool_init, initargs=(log_path,))

    def frames(self, jobs: list[Job]) -> list[int]:
        """Expected frames per job (container headers, read here: this machine has the files)."""
        with ThreadPoolExecutor(8) as threads:
            return list(threads.map(expected_frames, jobs))

    def results(self, jobs: list[Job], min_person: float, dataset: str) -> Iterator[tuple[Job, ClipResult]]:
        """(job, result) as workers finish them, in any order."""
        by_rel = {j.rel: j for j in jobs}
        args = [(job, min_person, dataset) for job in jobs]
        for result in self._pool.imap_unordered(_extract_args, args, chunksize=1):
            yield by_rel[result.row["path"]], result

    def close(self) -> None:
        self._pool.terminate()
        self._pool.join()

    def __enter__(self) -> ProcessPool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def extract(
    input: str | os.PathLike,
    out: str | os.PathLike,
    workers: int | None = None,
    frame_range: FrameRange = FULL,
    metadata: str | os.PathLike | None = None,
    min_person: float = DEFAULT_MIN_PERSON,
    progress: bool = True,
    save_every: float = 30.0,
    dtype: str = "float32",
    scheduler: str | None = None,
    keypoint_format: str = "npy",
) -> ExtractSummary:
    """Extract keypoints for a video file or a `<gloss>/<id>.mp4` folder into the store `out`, resumably.

    Clips run on the built-in process pool (`workers` processes, default one per core), or on a Dask cluster
    when `scheduler` is given: `local:N` starts a LocalCluster of N single-threaded worker processes, an address
    (`tcp://host:8786`) uses a cluster that is already running (see `signrec.cluster`). Either way workers run
    `extract_clip` and send the keypoints back; this process writes them through the store.

    Clips already stored are skipped; each clip is written under a temporary name and renamed when complete,
    so an interrupted run leaves no half-written file. Failed clips are recorded in the manifest and retried
    by the next run. The progress bar counts frames, so its estimate does not swing with clip length.

    `keypoint_format="pose"` also writes each clip as a pose-format `.pose` file beside its array (see `store.posefmt`).
    """
    from tqdm import tqdm

    if keypoint_format not in FORMATS:
        raise ValueError(f"unknown keypoint format {keypoint_format!r}; known: {', '.join(FORMATS)}")
    if keypoint_format == "pose":
        from .store.posefmt import _pose_format

        _pose_format()  # the install hint before any clip is extracted
    _quiet_native_logs()  # before workers start: they inherit the environment
    if scheduler is not None and workers is not None:
        raise ValueError("workers sizes the built-in process pool; with a Dask scheduler the cluster decides "
                         "(--scheduler local:N starts N workers)")  # fmt: skip
    spec = None
    if scheduler is not None:
        from .cluster import parse_scheduler

        spec = parse_scheduler(scheduler)
    jobs = find_jobs(input, frame_range, metadata)
    out = Path(out)
    summary = ExtractSummary(manifest=str(out / MANIFEST_NAME))
    loose = sum(1 for j in jobs if not j.gloss)
    if loose and Path(input).is_dir():
        summary.notes.append(f"{loose} clips lie directly in {input}, not in <gloss>/ folders, and no metadata "
                             f"names their gloss: their gloss is empty (fine for predict; to train, put each clip in "
                             f"a folder named for its gloss, or give --metadata with a gloss column)")  # fmt: skip
    dataset = Path(input).name if Path(input).is_dir() else ""
    log_path = str(out.resolve() / LOG_NAME)

    def start(n_jobs: int) -> Any:
        if spec is not None:
            from .cluster import DaskEngine

            return DaskEngine(spec, log_path)
        return ProcessPool(max(1, min(workers or os.cpu_count() or 1, n_jobs)), log_path)

    with contextlib.ExitStack() as stack:
        t0 = time.perf_counter()
        # A new store on a remote cluster: connect first, so that an unreachable scheduler leaves no folder behind.
        remote = spec is not None and spec.address is not None
        engine = stack.enter_context(start(len(jobs))) if remote and not out.exists() else None
        writer = stack.enter_context(StoreWriter(out, save_every=save_every))
        todo = [j for j in jobs if not writer.has(j.rel) and writer.adopt(j.rel, **j.row(dataset)) is None]
        summary.skipped = len(jobs) - len(todo)
        if todo:
            engine = engine or stack.enter_context(start(len(todo)))
            summary.engine = engine.description
            summary.notes.extend(getattr(engine, "notes", []))
            expected = dict(zip((j.rel for j in todo), engine.frames(todo)))
            bar = stack.enter_context(tqdm(total=sum(expected.values()), unit="frame", desc="extract",
                                           disable=not progress, file=sys.stderr, dynamic_ncols=True))  # fmt: skip
            for job, result in engine.results(todo, min_person, dataset):
                row = store_clip(writer, result, dtype)
                _account(summary, row, result.holistic_seconds, result.total_seconds)
                if row["status"] != "ok":
                    tqdm.write(f"signrec extract: {row['error']}", file=sys.stderr)
                bar.set_postfix_str(f"{summary.frames / (time.perf_counter() - t0):.1f} frames/s, "
                                    f"{len(summary.failed)} failed", refresh=False)  # fmt: skip
                frames = int(row.get("frames") or 0) if row["status"] == "ok" else expected[job.rel]
                bar.total += frames - expected[job.rel]  # containers miscount frames: the bar ends at its total
                bar.update(frames)
        summary.seconds = time.perf_counter() - t0
    if keypoint_format == "pose":
        from .store.posefmt import export_pose

        summary.notes.append(f"{len(export_pose(out, progress=progress))} .pose files written beside the arrays")
    summary.parts_found = _parts_found(writer.rows.values())
    return summary


def _account(summary: ExtractSummary, row: dict, in_holistic: float, seconds: float) -> None:
    if row["status"] == "ok":
        summary.holistic_seconds += in_holistic
        summary.work_seconds += seconds
        summary.done += 1
        summary.frames += int(row["frames"])
    else:
        summary.failed[row["source"]] = row["error"]


def _parts_found(rows: Iterable[dict]) -> dict[str, float]:
    """Frame-weighted share of frames with each part found, over the ok rows of a manifest."""
    ok = [r for r in rows if r.get("status") == "ok" and r.get("frames")]
    total = sum(int(r["frames"]) for r in ok)
    if not total:
        return {}
    return {p: sum(float(r.get(p) or 0) * int(r["frames"]) for r in ok) / total for p in layout.PARTS}


def read_manifest(folder: str | os.PathLike) -> list[dict]:
    """Rows of a keypoint folder's manifest (empty if it has none)."""
    path = Path(folder) / MANIFEST_NAME
    return read_csv_rows(path) if path.exists() else []


__all__ = [
    "ClipKeypoints",
    "ClipResult",
    "ExtractSummary",
    "ExtractionError",
    "Holistic",
    "Job",
    "NoPersonError",
    "check_person",
    "extract",
    "extract_clip",
    "extract_video",
    "find_jobs",
    "read_manifest",
    "results_to_row",
    "store_clip",
]  # fmt: skip
