"""The web app's cost: latency per uploaded clip against `signrec predict` (the library call) on the same clips,
and frames per second of the live WebSocket path against `signrec live` on the same video, in one run.

    python benchmarks/bench_serve.py [--repeat 3] [--live-clip PATH]

Trains a small reference LSTM on real webcam keypoints (a few epochs: latency does not depend on accuracy), starts
`signrec serve` on 127.0.0.1 in a subprocess (as a user starts it), then, taking turns so that both see the same
machine:
  (a) per real clip, `predict_files` in this process with a warm Holistic, and the same clip uploaded to
      `POST /api/predict` (client wall clock: upload, queue, extraction, model, answer);
  (b) on one real video, `signrec live` (the `live` function, writing its annotated video as `--output` does)
      and the same frames sent over the WebSocket, two in flight as the page keeps them, either as the page
      sends them (JPEG, at most 640 pixels a side) or at full size; frames are encoded before the clock starts.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import cv2
import numpy as np
from common import machine, markdown_table, require_data

from signrec.extract import Holistic, native_log_filter
from signrec.live import LiveConfig, live
from signrec.predict import default_window, load_predictor, predict_files
from signrec.presets import reference
from signrec.training.runner import train
from signrec.video import iter_frames

# One real clip per wlasl12 gloss, 320x240 to 1080p, 28 to 94 frames.
CLIPS = ["apple/03001", "drink/17724", "eat/18329", "fine/21878", "help/27215", "name/37585", "no/38532",
         "time/58503", "water/62506", "what/62968", "yes/64292", "you/64385"]  # fmt: skip


class Server:
    """`signrec serve RUN --port 0` in a subprocess; `url` once it says it is ready."""

    def __init__(self, model: Path):
        cmd = [sys.executable, "-m", "signrec.cli", "serve", str(model), "--port", "0", "--workers", "1"]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                     env={**os.environ, "PYTHONUNBUFFERED": "1"})  # fmt: skip
        for line in self.proc.stdout:  # type: ignore[union-attr]
            if m := re.search(r"ready at (http://127\.0\.0\.1:\d+)/", line):
                self.url = m.group(1)
                break
        else:
            raise SystemExit("signrec serve did not start")
        threading.Thread(target=lambda: [None for _ in self.proc.stdout], daemon=True).start()  # type: ignore[union-attr]

    def close(self) -> None:
        self.proc.terminate()
        self.proc.wait(30)


def upload(url: str, clip: Path) -> dict:
    boundary = uuid.uuid4().hex
    body = (f'--{boundary}\r\nContent-Disposition: form-data; name="file"; filename="{clip.name}"\r\n\r\n').encode()
    body += clip.read_bytes() + f"\r\n--{boundary}--\r\n".encode()
    req = urllib.request.Request(f"{url}/api/predict", body, {"Content-Type": f"multipart/form-data; boundary={boundary}"})
    with urllib.request.urlopen(req, timeout=300) as r:
        return json.loads(r.read())


def websocket_fps(url: str, frames: list[bytes]) -> tuple[float, dict]:
    """Frames per second through /api/live, two frames in flight; and the last answer."""
    from websockets.sync.client import connect

    with connect(url.replace("http://", "ws://") + "/api/live", max_size=None, open_timeout=60) as ws:
        json.loads(ws.recv(timeout=60))  # ready
        t = time.perf_counter()
        ws.send(frames[0])
        for f in frames[1:]:
            ws.send(f)
            last = json.loads(ws.recv(timeout=60))
        last = json.loads(ws.recv(timeout=60))
        seconds = time.perf_counter() - t
    assert last["frame"] == len(frames), last
    return len(frames) / seconds, last


def encode(frames: list[np.ndarray], max_side: int | None) -> list[bytes]:
    out = []
    for f in frames:
        if max_side and max(f.shape[:2]) > max_side:
            s = max_side / max(f.shape[:2])
            f = cv2.resize(f, (round(f.shape[1] * s), round(f.shape[0] * s)), interpolation=cv2.INTER_AREA)
        out.append(cv2.imencode(".jpg", f, [cv2.IMWRITE_JPEG_QUALITY, 85])[1].tobytes())
    return out


def pct(values: list[float], q: float) -> float:
    return float(np.percentile(values, q))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--repeat", type=int, default=3, help="rounds over the clips, and live runs")
    ap.add_argument("--live-clip", default=None, help="video for the live comparison (default: clips/68012.mp4)")
    args = ap.parse_args()
    data = require_data()
    clips = [data / "videos" / "wlasl12" / f"{c}.mp4" for c in CLIPS]
    live_clip = Path(args.live_clip or data / "videos" / "clips" / "68012.mp4")
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory() as tmp, native_log_filter():
        run = Path(tmp) / "run"
        train(data / "keypoints" / "webcam" / "akashsharma095", run,
              reference().with_config(max_epochs=3, threads=1, progress=False), log=lambda *a: None)  # fmt: skip
        predictor = load_predictor(run)
        server = Server(run)
        try:
            # (a) uploads: library call vs server, clip by clip, in turns
            library, served, ratios = [], [], []
            with Holistic() as holistic:
                predict_files(predictor, [clips[0]], 5, holistic)  # warm-up, both sides
                upload(server.url, clips[0])
                for _ in range(args.repeat):
                    for clip in clips:
                        t = time.perf_counter()
                        mine = predict_files(predictor, [clip], 5, holistic)[0]
                        library.append(time.perf_counter() - t)
                        t = time.perf_counter()
                        theirs = upload(server.url, clip)
                        served.append(time.perf_counter() - t)
                        ratios.append(served[-1] / library[-1])
                        assert theirs["frames"] == mine.frames and theirs["top"][0]["gloss"] == mine.top[0][0]
            # (b) live: `signrec live` vs the WebSocket, on the same video, in turns
            raw = list(iter_frames(live_clip))
            as_page, full = encode(raw, 640), encode(raw, None)
            websocket_fps(server.url, as_page[:20])  # warm-up: the server makes its camera Holistic
            live_fps, page_fps, full_fps = [], [], []
            for _ in range(args.repeat):
                r = live(predictor, str(live_clip), Path(tmp) / "live.mp4", LiveConfig())
                live_fps.append(r.frames / r.seconds)
                page_fps.append(websocket_fps(server.url, as_page)[0])
                full_fps.append(websocket_fps(server.url, full)[0])
        finally:
            server.close()
    load_after = os.getloadavg()
    ms = lambda xs: f"{statistics.median(xs) * 1e3:.0f}"
    p95 = lambda xs: f"{pct(xs, 95) * 1e3:.0f}"
    h, w = raw[0].shape[:2]
    print(f"machine: {machine()}; load average {load_before[0]:.1f} before, {load_after[0]:.1f} after "
          f"(1 min; other work was running)")  # fmt: skip
    print(f"\nUploads: {len(clips)} real wlasl12 clips x {args.repeat} rounds; one server worker\n")
    print(markdown_table(["path", "median ms per clip", "p95 ms", "vs signrec predict (median of pairs)"], [
        ["signrec predict (library call, warm Holistic)", ms(library), p95(library), "1.00"],
        ["POST /api/predict (upload, queue, extraction, model, answer)", ms(served), p95(served),
         f"{statistics.median(ratios):.2f} (range {min(ratios):.2f}-{max(ratios):.2f})"],
    ]))  # fmt: skip
    print(f"\nLive: {live_clip.name}, {len(raw)} frames, {w}x{h}; window {default_window(predictor)} frames, model "
          f"every {LiveConfig.stride}; {args.repeat} runs each\n")  # fmt: skip
    med = statistics.median
    print(markdown_table(["path", "frames/s (median)", "runs", "vs signrec live"], [
        ["signrec live (--output: annotated video written)", f"{med(live_fps):.1f}",
         ", ".join(f"{x:.1f}" for x in live_fps), "1.00"],
        ["WebSocket /api/live, frames as the page sends them (JPEG, 640 px)", f"{med(page_fps):.1f}",
         ", ".join(f"{x:.1f}" for x in page_fps), f"{med(page_fps) / med(live_fps):.2f}"],
        [f"WebSocket /api/live, full-size JPEG frames ({w}x{h})", f"{med(full_fps):.1f}",
         ", ".join(f"{x:.1f}" for x in full_fps), f"{med(full_fps) / med(live_fps):.2f}"],
    ]))  # fmt: skip


if __name__ == "__main__":
    main()
