"""Live recognition: a sliding window over the keypoint stream of a camera (or a video standing in for one).

A sign is shown only when the model is confident and the same gloss won the last few windows; otherwise the
state is "no sign". Holistic is created once; the model runs once per `stride` frames on the last `window`.
"""

from __future__ import annotations

import csv
import os
import time
from collections import deque
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .checkpoint import Predictor, load_predictor
from .extract import Holistic, results_to_row
from .video import open_camera

NO_SIGN = "no sign"


@dataclass
class LiveConfig:
    window: int | None = None  # frames per window (default: the checkpoint's max_frames, else 30)
    stride: int = 2  # run the model every `stride` frames
    threshold: float = 0.7  # minimum probability to show a sign
    stable: int = 3  # the same gloss must win this many windows in a row
    max_frames: int | None = None  # stop after this many frames (None: until the source ends or 'q')


class Stabiliser:
    """Turns a stream of (gloss, probability) into a shown gloss or "no sign"."""

    def __init__(self, threshold: float, stable: int):
        self.threshold, self.recent = threshold, deque(maxlen=stable)

    def update(self, gloss: str, probability: float) -> str:
        self.recent.append(gloss if probability >= self.threshold else NO_SIGN)
        if len(self.recent) == self.recent.maxlen and len(set(self.recent)) == 1:
            return self.recent[0]
        return NO_SIGN


def draw(frame: np.ndarray, results: object, text: str, fps: float) -> None:
    """Landmarks, the current prediction and the frame rate, drawn on the BGR frame in place."""
    from mediapipe.python.solutions import drawing_utils as du
    from mediapipe.python.solutions import holistic as mh

    for lms, conns in ((getattr(results, "pose_landmarks", None), mh.POSE_CONNECTIONS),
                       (getattr(results, "left_hand_landmarks", None), mh.HAND_CONNECTIONS),
                       (getattr(results, "right_hand_landmarks", None), mh.HAND_CONNECTIONS)):  # fmt: skip
        if lms is not None:
            du.draw_landmarks(frame, lms, conns)
    h, w = frame.shape[:2]
    scale = max(0.5, w / 900)
    cv2.rectangle(frame, (0, 0), (w, int(40 * scale)), (40, 40, 40), -1)
    cv2.putText(frame, text, (10, int(28 * scale)), cv2.FONT_HERSHEY_SIMPLEX, 0.8 * scale, (255, 255, 255), 2)
    cv2.putText(frame, f"{fps:.1f} fps", (w - int(130 * scale), int(28 * scale)), cv2.FONT_HERSHEY_SIMPLEX,
                0.6 * scale, (180, 255, 180), 1)  # fmt: skip


class _BackgroundWriter:
    """Encodes frames in a thread (OpenCV releases the GIL), so writing the video does not slow the loop."""

    def __init__(self, path: Path, fps: float, shape: tuple[int, ...]):
        import queue
        import threading

        path.parent.mkdir(parents=True, exist_ok=True)
        h, w = shape[:2]
        self._writer = cv2.VideoWriter(str(path), cv2.VideoWriter_fourcc(*"mp4v"), fps, (w, h))
        self._queue: queue.Queue = queue.Queue(maxsize=64)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while (frame := self._queue.get()) is not None:
            self._writer.write(frame)

    def write(self, frame: np.ndarray) -> None:
        self._queue.put(frame)

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join()
        self._writer.release()


@dataclass
class LiveResult:
    frames: int
    predictions: int
    shown: dict[str, int]  # gloss -> frames on which it was shown
    log: str
    output: str
    seconds: float


def live(
    checkpoint: str | os.PathLike | Predictor,
    source: int | str = 0,
    output: str | os.PathLike | None = None,
    config: LiveConfig | None = None,
) -> LiveResult:
    """Run live recognition. With `output`, writes the annotated video (and a CSV prediction log beside it)
    instead of opening a window, so it runs on a machine with no screen."""
    config = config or LiveConfig()
    predictor = checkpoint if isinstance(checkpoint, Predictor) else load_predictor(checkpoint)
    window = config.window or predictor.preprocess.max_frames or 30
    cap = open_camera(source)
    fps_in = cap.get(cv2.CAP_PROP_FPS) or 25.0
    rows: deque = deque(maxlen=window)
    stabiliser = Stabiliser(config.threshold, config.stable)
    writer = None
    out_path = Path(output) if output else None
    tmp = out_path.with_name(f".{out_path.stem}.partial{out_path.suffix}") if out_path else None
    log_path = (out_path.with_suffix(".csv") if out_path else Path(f"live-{int(time.time())}.csv"))
    log_path.parent.mkdir(parents=True, exist_ok=True)
    log_file = open(log_path, "w", newline="")
    log = csv.writer(log_file)
    log.writerow(["frame", "time_s", "top_gloss", "probability", "shown"])
    shown_counts: dict[str, int] = {}
    n = predictions = 0
    shown, text = NO_SIGN, NO_SIGN
    times: deque = deque(maxlen=30)
    try:
        with Holistic() as holistic:
            t_start = time.perf_counter()  # the loop's own time: Holistic's start-up is paid once, before it
            while config.max_frames is None or n < config.max_frames:
                ok, frame = cap.read()
                if not ok:
                    break
                t0 = time.perf_counter()
                results = holistic.process_bgr(frame)
                rows.append(results_to_row(results))
                n += 1
                if len(rows) == window and n % config.stride == 0:
                    probs = predictor.predict_proba([np.stack(rows)])[0]
                    best = int(probs.argmax())
                    gloss, p = predictor.labels[best], float(probs[best])
                    shown = stabiliser.update(gloss, p)
                    predictions += 1
                    text = f"{shown} ({p:.0%})" if shown != NO_SIGN else NO_SIGN
                    log.writerow([n, f"{t0 - t_start:.3f}", gloss, f"{p:.4f}", shown])
                shown_counts[shown] = shown_counts.get(shown, 0) + 1
                times.append(time.perf_counter() - t0)
                draw(frame, results, text, len(times) / sum(times))
                if out_path is not None:
                    if writer is None:
                        writer = _BackgroundWriter(tmp, fps_in, frame.shape)
                    writer.write(frame)
                else:  # pragma: no cover - needs a screen
                    cv2.imshow("signrec live (q to quit)", frame)
                    if cv2.waitKey(1) & 0xFF == ord("q"):
                        break
            seconds = time.perf_counter() - t_start
    finally:
        cap.release()
        log_file.close()
        if writer is not None:
            writer.close()
            if n:
                os.replace(tmp, out_path)
        if out_path is None:  # pragma: no cover - needs a screen
            cv2.destroyAllWindows()
    return LiveResult(n, predictions, shown_counts, str(log_path), str(out_path or ""), seconds)
