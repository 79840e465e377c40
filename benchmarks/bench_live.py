"""Live loop cost: per-frame time of `signrec live` against Holistic alone on the same frames, and the model's
own latency per window.

    python benchmarks/bench_live.py [--clip PATH] [--window 30]

Trains a small reference LSTM on real webcam keypoints (a few epochs: latency does not depend on accuracy),
then runs, on the same real clip: (a) Holistic alone on every frame, (b) the whole live loop writing an
annotated video, and times the model on single windows.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
import torch
from common import machine, markdown_table, require_data

from signrec.extract import Holistic
from signrec.live import LiveConfig, live
from signrec.predict import load_predictor
from signrec.presets import reference
from signrec.training.runner import train
from signrec.video import iter_frames


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clip", default=None)
    ap.add_argument("--window", type=int, default=30)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--stride", type=int, default=LiveConfig.stride, help="model every N frames (live's default)")
    args = ap.parse_args()
    data = require_data()
    clip = Path(args.clip or data / "videos" / "clips" / "68012.mp4")
    with tempfile.TemporaryDirectory() as tmp:
        run = Path(tmp) / "run"
        train(data / "keypoints" / "webcam" / "akashsharma095", run, reference().with_config(max_epochs=3, progress=False))
        predictor = load_predictor(run)
        frames = list(iter_frames(clip))
        holistic_alone, live_loop, ratios = [], [], []
        for _ in range(args.repeat):  # interleaved, so that both see the same machine
            with Holistic() as h:
                h.process_bgr(frames[0])
                h.reset()
                t = time.perf_counter()
                for f in frames:
                    h.process_bgr(f)
                holistic_alone.append((time.perf_counter() - t) / len(frames))
            r = live(predictor, str(clip), Path(tmp) / "out.mp4", LiveConfig(window=args.window, stride=args.stride))
            live_loop.append(r.seconds / r.frames)
            ratios.append(live_loop[-1] / holistic_alone[-1])
        torch.set_num_threads(1)  # as `signrec live` runs it
        window = np.random.default_rng(0).random((args.window, 1662), dtype=np.float32)
        for _ in range(10):
            predictor.predict_proba([window])
        lat = []
        for _ in range(200):
            t = time.perf_counter()
            predictor.predict_proba([window])
            lat.append(time.perf_counter() - t)
    h_ms, l_ms = statistics.median(holistic_alone) * 1e3, statistics.median(live_loop) * 1e3
    print(f"machine: {machine()}; clip {clip.name} ({len(frames)} frames), window {args.window}, model every {args.stride} frame(s)")
    print(markdown_table(["measure", "ms", "vs Holistic alone"], [
        ["Holistic alone, per frame", f"{h_ms:.1f}", "1.00"],
        ["live loop (Holistic + row + model + drawing + video writing), per frame", f"{l_ms:.1f}",
         f"{statistics.median(ratios):.2f} (runs: {min(ratios):.2f}-{max(ratios):.2f})"],
        ["model alone, per window (median of 200, 1 thread)", f"{statistics.median(lat) * 1e3:.2f}", ""],
    ]))  # fmt: skip


if __name__ == "__main__":
    main()
