"""Reading frames from video files and cameras, one frame at a time.

Frames are streamed, never decoded into memory as a whole video. WLASL frame ranges are 1-based and inclusive,
with `end = -1` meaning "to the end"; `FrameRange` holds that convention in one place.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

VIDEO_SUFFIXES = (".mp4", ".mov", ".avi", ".mkv", ".webm", ".m4v", ".mpg", ".mpeg", ".flv", ".swf")


class VideoError(ValueError):
    """A video that cannot be used; the message names the file and the problem."""


@dataclass(frozen=True)
class FrameRange:
    """WLASL-style frame range: 1-based, inclusive; `end == -1` reads to the end of the video."""

    start: int = 1
    end: int = -1

    def __post_init__(self) -> None:
        if self.start < 1:
            raise ValueError(f"frame range start must be >= 1 (1-based), got {self.start}")
        if self.end != -1 and self.end < self.start:
            raise ValueError(f"frame range end {self.end} is before start {self.start}")

    @property
    def is_full(self) -> bool:
        return self.start == 1 and self.end == -1

    def __str__(self) -> str:
        return f"{self.start}-{'end' if self.end == -1 else self.end}"


FULL = FrameRange()


@dataclass(frozen=True)
class VideoInfo:
    """What the container says about a video (the frame count may be wrong; only decoding tells)."""

    path: str
    fps: float
    frame_count: int
    width: int
    height: int


def _open(path: str | os.PathLike) -> cv2.VideoCapture:
    p = Path(path)
    if not p.exists():
        raise VideoError(f"{p}: no such file")
    if p.is_dir():
        raise VideoError(f"{p}: is a folder, not a video file")
    if p.stat().st_size == 0:
        raise VideoError(f"{p}: empty file (0 bytes)")
    cap = cv2.VideoCapture(str(p))
    if not cap.isOpened():
        cap.release()
        raise VideoError(f"{p}: not a readable video (OpenCV/FFmpeg cannot open it)")
    return cap


def probe(path: str | os.PathLike) -> VideoInfo:
    """Container metadata of a video file; raises VideoError if it cannot be opened."""
    cap = _open(path)
    try:
        return VideoInfo(
            path=str(path),
            fps=float(cap.get(cv2.CAP_PROP_FPS) or 0.0),
            frame_count=int(cap.get(cv2.CAP_PROP_FRAME_COUNT) or 0),
            width=int(cap.get(cv2.CAP_PROP_FRAME_WIDTH) or 0),
            height=int(cap.get(cv2.CAP_PROP_FRAME_HEIGHT) or 0),
        )
    finally:
        cap.release()


def iter_frames(path: str | os.PathLike, frame_range: FrameRange = FULL) -> Iterator[np.ndarray]:
    """Yield BGR frames (H, W, 3) uint8 of `frame_range`, decoding one frame at a time.

    Frames before the range are skipped with `grab()` (decoded but not converted), which is exact where
    container seeking is not. The video ends where decoding ends, whatever the container claims.
    Raises VideoError if the file cannot be opened or no frame of the range decodes.
    """
    cap = _open(path)
    try:
        index = 0  # 1-based index of the last frame read
        while index < frame_range.start - 1:
            if not cap.grab():
                raise VideoError(
                    f"{path}: frame range {frame_range} starts after the last decodable frame ({index})"
                )
            index += 1
        produced = 0
        while frame_range.end == -1 or index < frame_range.end:
            ok, frame = cap.read()
            if not ok or frame is None:
                break
            index += 1
            produced += 1
            yield frame
        if produced == 0:
            raise VideoError(f"{path}: no frame could be decoded (empty or corrupt video)")
    finally:
        cap.release()


_END = object()


def prefetch(items: Iterator, size: int = 8) -> Iterator:
    """Run `items` in a background thread, `size` items ahead.

    Decoding and colour conversion release the GIL, so they overlap with the consumer's work (Holistic).
    Exceptions raised by `items` are re-raised in the consumer; stopping early stops the thread.
    """
    import queue
    import threading

    q: queue.Queue = queue.Queue(maxsize=size)
    stop = threading.Event()

    def run() -> None:
        try:
            for item in items:
                while not stop.is_set():
                    try:
                        q.put((item, None), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    return
            q.put((_END, None))
        except BaseException as e:  # noqa: BLE001 - handed to the consumer, which re-raises it
            q.put((_END, e))

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    try:
        while True:
            item, error = q.get()
            if item is _END:
                if error is not None:
                    raise error
                return
            yield item
    finally:
        stop.set()
        thread.join(timeout=5)


def iter_rgb(path: str | os.PathLike, frame_range: FrameRange = FULL, ahead: int = 8) -> Iterator[np.ndarray]:
    """RGB frames of `frame_range`, decoded and converted in a background thread."""
    frames = (cv2.cvtColor(f, cv2.COLOR_BGR2RGB) for f in iter_frames(path, frame_range))
    return prefetch(frames, ahead) if ahead > 0 else frames


def count_frames(path: str | os.PathLike) -> int:
    """Number of frames that actually decode (slow: decodes the video); 0 for an unreadable one."""
    cap = _open(path)
    n = 0
    try:
        while cap.grab():
            n += 1
    finally:
        cap.release()
    return n


# Real WLASL clips decode at least 88% of the frames their container announces (01377.mp4: 22 of 25); a file
# that decodes fewer than this share of them was cut off.
MIN_DECODED_SHARE = 0.8
# Top-level boxes an MP4/MOV (ISO base media) file starts with.
_ISO_BOXES = (b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot")


def check_complete(path: str | os.PathLike, decoded: int | None = None, announced: int = 0,
                   name: object = None) -> None:  # fmt: skip
    """Raise VideoError when the file looks cut off (an upload or copy that stopped early).

    MP4/MOV files are checked exactly: a top-level box that runs past the end of the file. Any format is also
    checked, when `decoded` is given, by the frames that decoded against the `announced` count of the container.
    `name` replaces the path in the message (an uploaded file's own name instead of its temporary one).
    """
    path, name = Path(path), name or path
    size = path.stat().st_size
    with open(path, "rb") as f:
        if f.read(8)[4:8] in _ISO_BOXES:
            offset = 0
            while offset + 8 <= size:
                f.seek(offset)
                head = f.read(16)
                length, kind = int.from_bytes(head[:4], "big"), head[4:8].decode("latin-1")
                if length == 1:  # a 64-bit size follows the type
                    length = int.from_bytes(head[8:16], "big") if len(head) == 16 else size + 1
                elif length == 0:  # the box runs to the end of the file
                    break
                if length < 8:
                    raise VideoError(f"{name}: not a valid MP4/MOV file (a box of {length} bytes at byte {offset:,})")
                if offset + length > size:
                    raise VideoError(f"{name}: the file is cut off: it ends at byte {size:,}, but its '{kind}' box "
                                     f"runs to byte {offset + length:,} (an upload or copy that stopped early?)")  # fmt: skip
                offset += length
    if decoded is not None and announced > 0 and decoded < MIN_DECODED_SHARE * announced:
        raise VideoError(f"{name}: only {decoded} of the {announced} frames the file announces could be decoded: "
                         f"it looks cut off (an upload or copy that stopped early?)")  # fmt: skip


def write_y4m(path: str | os.PathLike, frames: Iterator[np.ndarray], fps: float) -> int:
    """Write BGR frames as an uncompressed YUV4MPEG2 (4:2:0) file: what Chromium's fake camera plays
    (`--use-file-for-fake-video-capture`). Width and height are cut to even numbers. Returns the frame count."""
    path = Path(path)
    n = 0
    with open(path, "wb") as out:
        for frame in frames:
            h, w = (d - d % 2 for d in frame.shape[:2])
            if n == 0:
                num, den = (round(fps * 1000), 1000) if fps else (25, 1)
                out.write(f"YUV4MPEG2 W{w} H{h} F{num}:{den} Ip A1:1 C420jpeg\n".encode())
            out.write(b"FRAME\n")
            out.write(cv2.cvtColor(np.ascontiguousarray(frame[:h, :w]), cv2.COLOR_BGR2YUV_I420).tobytes())
            n += 1
    if n == 0:
        path.unlink(missing_ok=True)
        raise VideoError(f"{path}: no frames to write")
    return n


def write_video(path: str | os.PathLike, frames: Iterator[np.ndarray], fps: float) -> int:
    """Write BGR frames to an mp4 file atomically (temporary name, then rename). Returns the frame count."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.partial{path.suffix}")
    writer = None
    n = 0
    try:
        for frame in frames:
            if writer is None:
                h, w = frame.shape[:2]
                writer = cv2.VideoWriter(str(tmp), cv2.VideoWriter_fourcc(*"mp4v"), fps or 25.0, (w, h))
                if not writer.isOpened():
                    raise VideoError(f"{path}: cannot open a video writer")
            writer.write(frame)
            n += 1
    except BaseException:
        if writer is not None:
            writer.release()
        tmp.unlink(missing_ok=True)
        raise
    if writer is None:
        raise VideoError(f"{path}: no frames to write")
    writer.release()
    os.replace(tmp, path)
    return n


def open_camera(source: int | str) -> cv2.VideoCapture:
    """Open a camera index (int or digit string) or a video file standing in for one."""
    if isinstance(source, str) and source.isdigit():
        source = int(source)
    if isinstance(source, int):
        cap = cv2.VideoCapture(source)
        if not cap.isOpened():
            cap.release()
            raise VideoError(f"camera {source}: cannot be opened (no such camera, or it is in use)")
        return cap
    return _open(source)
