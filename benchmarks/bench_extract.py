"""Extraction throughput: a plain one-process loop against `signrec extract` with 1 and with all workers.

    python benchmarks/bench_extract.py [--clips 12] [--workers N]

The plain loop is what tutorials do: read a frame, convert to RGB, run Holistic, build the row. It runs in this
process with one Holistic. `signrec extract` runs on a folder of the same clips (links to the real files).
Reports frames/s of each, the ratio to the plain loop, and the share of time spent outside Holistic.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import cv2
from common import machine, markdown_table, require_data

from signrec.extract import Holistic, extract, results_to_row


def pick_clips(data: Path, n: int) -> list[Path]:
    """One clip per gloss of the wlasl12 set, then more, so the set mixes resolutions and signers."""
    by_gloss = {g.name: sorted(g.glob("*.mp4")) for g in sorted((data / "videos" / "wlasl12").iterdir())}
    picked: list[Path] = []
    i = 0
    while len(picked) < n and any(len(v) > i for v in by_gloss.values()):
        picked += [v[i] for v in by_gloss.values() if len(v) > i]
        i += 1
    return picked[:n]


def plain_loop(clips: list[Path]) -> tuple[int, float, float]:
    """(frames, seconds, seconds inside Holistic) of the one-process tutorial loop."""
    frames = 0
    in_holistic = 0.0
    with Holistic() as h:
        t0 = time.perf_counter()
        for clip in clips:
            h.reset()
            cap = cv2.VideoCapture(str(clip))
            while True:
                ok, frame = cap.read()
                if not ok:
                    break
                rgb = cv2.cvtColor(frame, cv2.COLOR_BGR2RGB)
                t = time.perf_counter()
                results = h.process_rgb(rgb)
                in_holistic += time.perf_counter() - t
                results_to_row(results)
                frames += 1
            cap.release()
        return frames, time.perf_counter() - t0, in_holistic


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=12)
    ap.add_argument("--workers", type=int, default=os.cpu_count())
    args = ap.parse_args()
    data = require_data()
    clips = pick_clips(data, args.clips)
    with tempfile.TemporaryDirectory() as tmp:
        videos = Path(tmp) / "videos"
        for c in clips:
            (videos / c.parent.name).mkdir(parents=True, exist_ok=True)
            (videos / c.parent.name / c.name).symlink_to(c)
        plain_loop(clips[:1])  # warm-up: model load, caches
        frames, secs, inside = plain_loop(clips)
        base = frames / secs
        rows = [["plain loop (1 process)", frames, f"{base:.1f}", "1.00", f"{1 - inside / secs:.1%}"]]
        for w in sorted({1, args.workers}):
            s = extract(videos, Path(tmp) / f"kp{w}", workers=w, progress=False, min_person=0)
            assert s.frames == frames, (s.frames, frames)
            rows.append([f"signrec extract, {w} worker(s)", s.frames, f"{s.frames_per_second:.1f}",
                         f"{s.frames_per_second / base:.2f}", f"{s.outside_holistic:.1%}"])  # fmt: skip
    print(f"machine: {machine()}; {len(clips)} wlasl12 clips")
    print(markdown_table(["method", "frames", "frames/s", "vs plain loop", "time outside Holistic"], rows))


if __name__ == "__main__":
    main()
