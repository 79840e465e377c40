"""Live recognition: a sliding window over the keypoint stream of a camera (or a video standing in for one).

A sign is shown only when the model is confident and the same gloss won the last few windows; otherwise the
state is "no sign". Holistic is created once; the model runs once per `stride` frames on the last `window`.
"""

from __future__ import annotations

import contextlib
import csv
import os
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import cv2
import numpy as np

from .extract import Holistic, results_to_row
from .predict import NO_SIGN, Predictor, SlidingWindow, WindowStep, load_predictor
from .video import open_camera, prefetch


@dataclass
class LiveConfig:
    window: int | None = None  # frames per window (default: a typical training clip; see predict.default_window)
    stride: int = 2  # run the model every `stride` frames
    threshold: float | None = None  # minimum probability to show a sign (default: the model's, or 0.7)
    stable: int = 3  # the same gloss must win this many windows in a row
    max_frames: int | None = None  # stop after this many frames (None: until the source ends or 'q')


class LiveStream:
    """One stream of frames through the live path: Holistic (its tracking state belongs to this stream), the one
    results -> row function, and the sliding window that decides what is shown. `signrec live` and the web
    app's camera mode both send their frames through it; `detect` and `push` are separate so that `live` can run
    them in different threads."""

    def __init__(self, predictor: Predictor, config: LiveConfig, holistic: Holistic):
        self.holistic = holistic
        holistic.reset()  # a new stream: nothing tracked from an earlier one
        self.window = SlidingWindow(predictor, config.window, config.stride, config.threshold, config.stable)
        self.row: np.ndarray | None = None  # the last frame's (1662,) row

    def detect(self, rgb: np.ndarray) -> Any:
        """Holistic results for the next RGB frame of the stream."""
        return self.holistic.process_rgb(rgb)

    def push(self, results: Any) -> WindowStep | None:
        """The frame's row into the window; the model's step when it ran on this frame."""
        self.row = results_to_row(results)
        return self.window.push(self.row)

    def process(self, rgb: np.ndarray) -> tuple[Any, WindowStep | None]:
        results = self.detect(rgb)
        return results, self.push(results)


def draw(frame: np.ndarray, results: object, text: str, fps: float) -> None:
    """Landmarks, the current prediction and the frame rate, drawn on the BGR frame in place."""
    from mediapipe.python.solutions import drawing_utils as du
    from mediapipe.python.solutions import holistic as mh

    for lms, conns in ((getattr(results, "pose_landmarks", None), mh.POSE_CONNECTIONS),
                       (getattr(results, "left_hand_landmarks", None), mh.HAND_CONNECTIONS),
                       (getattr(results, "right_hand_landmarks", None), mh.HAND_CONNECTIONS)):  # fmt: skip
        if lms is not None:
            du.draw_landmarks(frame, lms, conns)
    _h, w = frame.shape[:2]
    scale = max(0.5, w / 900)
    cv2.rectangle(frame, (0, 0), (w, int(40 * scale)), (40, 40, 40), -1)
    cv2.putText(frame, text, (10, int(28 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), 2)
    cv2.putText(frame, f"{fps:.1f} fps", (w - int(130 * scale), int(28 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                0.6 * scale, (180, 255, 180), 1)  # fmt: skip


def _read(cap: cv2.VideoCapture, max_frames: int | None) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """(BGR frame to draw on, RGB copy for Holistic) for each frame of the source."""
    n = 0
    while max_frames is None or n < max_frames:
        ok, frame = cap.read()
        if not ok:
            return
        n += 1
        yield frame, cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)


class _Annotator:
    """What happens to a frame after Holistic: the stream pushes its row into the sliding window, the log gets a
    line when the model ran, and the frame is drawn on."""

    def __init__(self, stream: LiveStream, log: Any, t_start: float):
        self.stream, self.window, self.log, self.t_start = stream, stream.window, log, t_start
        self.text = NO_SIGN
        self.shown_counts: dict[str, int] = {}
        self.stamps: deque = deque(maxlen=31)

    @property
    def frames(self) -> int:
        return self.window.frames

    @property
    def predictions(self) -> int:
        return self.window.predictions

    def __call__(self, frame: np.ndarray, results: object) -> np.ndarray:
        now = time.perf_counter()
        step = self.stream.push(results)
        if step is not None:
            self.text = f"{step.shown} ({step.probability:.0%})" if step.shown != NO_SIGN else NO_SIGN
            self.log.writerow([step.frame, f"{now - self.t_start:.3f}", step.gloss, f"{step.probability:.4f}", step.shown])
        self.shown_counts[self.window.shown] = self.shown_counts.get(self.window.shown, 0) + 1
        self.stamps.append(now)
        fps = (len(self.stamps) - 1) / (self.stamps[-1] - self.stamps[0]) if len(self.stamps) > 1 else 0.0
        draw(frame, results, self.text, fps)
        return frame


class _BackgroundStage:
    """Runs `annotate` and encodes the video in a thread, so that the main thread only runs Holistic.

    OpenCV, MediaPipe's drawing and PyTorch release the GIL for their heavy parts, so this work fills the time
    Holistic leaves the cores idle. The queue is bounded: a slow stage holds the loop back instead of growing.
    """

    def __init__(self, annotate: _Annotator, path: Path, fps: float):
        import queue
        import threading

        path.parent.mkdir(parents=True, exist_ok=True)
        self.annotate, self.path, self.fps, self._writer = annotate, path, fps, None
        self._queue: queue.Queue = queue.Queue(maxsize=16)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        try:
            while (item := self._queue.get()) is not None:
                frame = self.annotate(*item)
                if self._writer is None:
                    h, w = frame.shape[:2]
                    self._writer = cv2.VideoWriter(str(self.path), cv2.VideoWriter_fourcc(*"mp4v"), self.fps, (w, h))
                self._writer.write(frame)
        except BaseException as e:  # noqa: BLE001 - handed to the main thread, which re-raises it
            self._error = e
            while self._queue.get() is not None:  # drain so that put() never blocks forever
                pass

    def put(self, frame: np.ndarray, results: object) -> None:
        if self._error is not None:
            raise self._error
        self._queue.put((frame, results))

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        if self._writer is not None:
            self._writer.release()
        if self._error is not None:
            raise self._error


@dataclass
class LiveResult:
    frames: int
    predictions: int
    shown: dict[str, int]  # gloss -> frames on which it was shown
    log: str
    output: str
    seconds: float
    window: int = 0
    warning: str = ""  # why the model never ran, when it did not


def live(
    checkpoint: str | os.PathLike | Predictor,
    source: int | str = 0,
    output: str | os.PathLike | None = None,
    config: LiveConfig | None = None,
    quiet: bool = True,
) -> LiveResult:
    """Run live recognition. With `output`, writes the annotated video (and a CSV prediction log beside it)
    instead of opening a window, so it runs on a machine with no screen.

    Three stages overlap: frames are read in a background thread, Holistic runs in this one, and the rest
    (window, model, drawing, video encoding) runs in another background thread when writing a video.
    """
    config = config or LiveConfig()
    predictor = load_predictor(checkpoint)
    cap = open_camera(source)
    fps_in = cap.get(cv2.CAP_PROP_FPS) or 25.0
    out_path = Path(output) if output else None
    tmp = out_path.with_name(f".{out_path.stem}.partial{out_path.suffix}") if out_path else None
    log_path = out_path.with_suffix(".csv") if out_path else Path(f"live-{int(time.time())}.csv")
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "w", newline="")  # noqa: SIM115 - closed in the finally below
    log = csv.writer(log_file)
    log.writerow(["frame", "time_s", "top_gloss", "probability", "shown"])
    stage = None
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)  # one window at a time: a second thread only competes with Holistic's
    try:
        with Holistic(quiet=quiet) as holistic:
            t_start = time.perf_counter()  # the loop's own time: Holistic's start-up is paid once, before it
            stream = LiveStream(predictor, config, holistic)
            window = stream.window
            annotate = _Annotator(stream, log, t_start)
            if tmp is not None:
                stage = _BackgroundStage(annotate, tmp, fps_in)
            for frame, rgb in prefetch(_read(cap, config.max_frames), size=2):
                results = stream.detect(rgb)
                if stage is not None:
                    stage.put(frame, results)
                else:  # pragma: no cover - needs a screen
                    cv2.imshow("signrec live (q to quit)", annotate(frame, results))
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        break
            if stage is not None:
                stage, closing = None, stage
                closing.close()  # waits for the last frames, so the time below includes them
            seconds = time.perf_counter() - t_start
    except BaseException:
        if tmp is not None:  # never leave a half-written video behind
            tmp.unlink(missing_ok=True)
        raise
    finally:
        if stage is not None:  # an error stopped the loop: stop the thread, keep the first error
            with contextlib.suppress(Exception):
                stage.close()
        torch.set_num_threads(threads)
        cap.release()
        log_file.close()
        if out_path is None:  # pragma: no cover - needs a screen
            cv2.destroyAllWindows()
    if tmp is not None and annotate.frames:
        os.replace(tmp, out_path)
    return LiveResult(annotate.frames, annotate.predictions, annotate.shown_counts, str(log_path),
                      str(out_path or ""), seconds, window.window, window.status())  # fmt: skip
