"""Time spent making one training example (augmentation + features, in the data-loading worker) per clip, with
the affine steps done on the parts a clip has (signrec) against every landmark of the 1662-value layout (how
signrec did it before), on real hands-only clips (WLASL300-hands, 126 of 1662 values) and real Holistic clips.

    python benchmarks/bench_augment.py [--clips 200] [--repeat 5]

Both ways run in turns on the same clips with the same random draws (the results are checked to be equal), and
the ratio is taken per turn; the median over turns is printed.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from contextlib import contextmanager
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
from common import machine, markdown_table, require_data, shared_store

from signrec import layout, transforms
from signrec.presets import best


def every_landmark(frames: np.ndarray, fn, z_scale: float = 1.0) -> np.ndarray:
    """`transforms._affine_xy` as it was: `fn` applied to all 543 landmarks, missing ones masked back to zero."""
    out = np.array(frames, dtype=np.float32, copy=True)
    present = layout.presence(frames)
    pose, rest = transforms._point_views(out)
    counts = [layout.COMPONENTS[p].landmarks for p in layout.PARTS[1:]]
    masks = (present[:, :1, None], np.repeat(present[:, 1:], counts, axis=1)[..., None])
    for view, mask in zip((pose, rest), masks, strict=True):
        view[..., :2] = np.where(mask, fn(view[..., :2]), 0.0)
        if z_scale != 1.0:
            view[..., 2] *= z_scale
    return out


@contextmanager
def affine(fn):
    saved = transforms._affine_xy
    transforms._affine_xy = fn
    try:
        yield
    finally:
        transforms._affine_xy = saved


def examples(clips: list[np.ndarray], recipe, pre) -> tuple[float, list[np.ndarray]]:
    """Milliseconds per clip to augment and featurise each clip once (a fixed random stream), and the results."""
    rng = np.random.default_rng(0)
    start = time.perf_counter()
    out = [pre(recipe.augment(x, rng)) for x in clips]
    return 1000 * (time.perf_counter() - start) / len(clips), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, default=200)
    ap.add_argument("--repeat", type=int, default=5)
    ap.add_argument("--work", default="work/bench-accuracy")
    args = ap.parse_args()
    data = require_data()
    recipe = best()
    rows = []
    for name in ("wlasl300-hands", "wlasl-a"):
        store = shared_store(data / "keypoints" / name, Path(args.work), name)
        clips = [store.read(c) for c in store.clips[: args.clips]]
        pre = recipe.preprocess.for_parts(store.parts)
        times: dict[str, list[float]] = {"parts": [], "every": []}
        for _ in range(args.repeat):
            t_parts, a = examples(clips, recipe, pre)
            with affine(every_landmark):
                t_every, b = examples(clips, recipe, pre)
            assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True)), "the two ways disagree"
            times["parts"].append(t_parts)
            times["every"].append(t_every)
        ratio = statistics.median(p / e for p, e in zip(times["parts"], times["every"], strict=True))
        parts = "+".join(store.parts) if len(store.parts) < len(layout.PARTS) else "all four parts"
        rows.append([f"{name} ({len(clips)} clips, {parts})", f"{statistics.median(times['every']):.2f}",
                     f"{statistics.median(times['parts']):.2f}", f"{ratio:.2f}"])  # fmt: skip
    print(f"machine: {machine()}; best recipe's augmentation and features, {args.repeat} turns")
    print(markdown_table(["clips", "every landmark, ms per clip", "the parts present, ms per clip",
                          "ratio (median of turns)"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
