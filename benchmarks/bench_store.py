"""The keypoint store: memory of training on data larger than RAM would allow, reading speed, and disk size.

    python benchmarks/bench_store.py [--clips 21000 8000] [--speed-clips 4000] [--work work/bench-store]

1. Peak resident memory (the training process and any data workers, summed, sampled every 0.1 s) of one epoch
   of the reference model on a synthetic store the size of WLASL2000: 21,000 clips x 60 frames written as
   `(60, 1662)` float32 files (8.4 GB), and on 8,000 clips (3.2 GB). The stores are written once under WORK
   and reused.
2. Seconds per epoch reading from the store against the same clips already in memory, side by side in one run
   (interleaved, repeated; the page cache is warm for both: this measures signrec's reading, not the disk).
3. Disk size of the real hands-only WLASL300 set imported into a store, against the same clips as 1662-wide
   float32 arrays.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
from common import machine, markdown_table, require_data

FRAMES = 60
GLOSSES = 2000


def synthetic_store(root: Path, clips: int) -> Path:
    """`clips` clips of 60 random frames in `GLOSSES` glosses, as (60, 1662) float32 files with a manifest."""
    from signrec.store import StoreWriter

    if (root / "manifest.csv").exists():
        return root
    rng = np.random.default_rng(0)
    with StoreWriter(root, save_every=3600) as w:
        for i in range(clips):
            gloss = f"g{i % GLOSSES:04d}"
            w.write(f"{gloss}/{i:05d}.npy", rng.random((FRAMES, 1662), dtype=np.float32), gloss=gloss, id=f"{i:05d}")
            if i % 2000 == 0:
                print(f"writing {root.name}: {i}/{clips}", file=sys.stderr, flush=True)
    return root


CHILD = """
import json, sys, time
from pathlib import Path
from signrec.presets import reference
from signrec.training.runner import train
from signrec.store import open_store
t = time.perf_counter()
store = open_store(sys.argv[1])
r = train(store, Path(sys.argv[2]), reference().with_config(max_epochs=1, progress=False, threads=int(sys.argv[3])),
          split="stratified")
print(json.dumps({"seconds": time.perf_counter() - t, "epoch_seconds": r.seconds_per_epoch, "clips": len(store)}))
"""


def peak_memory(store: Path, threads: int) -> dict:
    """Train one epoch in a child process; its peak RSS (with its children) sampled every 0.1 s."""
    import psutil

    with tempfile.TemporaryDirectory() as tmp:
        proc = subprocess.Popen([sys.executable, "-c", CHILD, str(store), str(Path(tmp) / "run"), str(threads)],
                                stdout=subprocess.PIPE, text=True)  # fmt: skip
        root = psutil.Process(proc.pid)
        peak = 0
        while proc.poll() is None:
            try:
                tree = [root, *root.children(recursive=True)]
                peak = max(peak, sum(p.memory_info().rss for p in tree))
            except psutil.Error:
                pass
            time.sleep(0.1)
        out = json.loads(proc.stdout.read().strip().splitlines()[-1])
    return {**out, "peak_gb": peak / 1e9}


def epoch_speed(store_path: Path, clips: int, repeat: int, threads: int) -> tuple[list[float], list[float]]:
    """Seconds per epoch of the reference model, reading from the store vs from memory, interleaved."""
    from signrec.presets import reference
    from signrec.store import KeypointStore, open_store
    from signrec.training.runner import train

    full = open_store(store_path)
    store = full.select(lambda c: int(c.id) < clips)

    class InMemory(KeypointStore):
        def __init__(self, base: KeypointStore):
            super().__init__(base.root, base.clips, base.failed, base.columns)
            self.arrays = {c.path: base.read(c) for c in base.clips}

        def read(self, clip):
            return self.arrays[clip if isinstance(clip, str) else clip.path]

    memory = InMemory(store)
    recipe = reference().with_config(max_epochs=2, progress=False, threads=threads)
    from_store, from_memory = [], []
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(repeat):
            for name, data, times in (("store", store, from_store), ("memory", memory, from_memory)):
                r = train(data, Path(tmp) / f"{name}{i}", recipe, split="stratified")
                times.append(r.seconds_per_epoch)
    return from_store, from_memory


def hands_size(data: Path) -> tuple[int, int, int]:
    from signrec.store import import_keypoints, open_store

    with tempfile.TemporaryDirectory() as tmp:
        import_keypoints(data / "keypoints" / "wlasl300-hands", tmp, progress=False)
        store = open_store(tmp)
        stored = sum((Path(tmp) / c.path).stat().st_size for c in store.clips)
        frames = sum(c.frames for c in store.clips)
        return len(store), stored, frames * 1662 * 4 + 128 * len(store)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--clips", type=int, nargs="+", default=[21000, 8000])
    ap.add_argument("--speed-clips", type=int, default=4000)
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--work", default="work/bench-store")
    args = ap.parse_args()
    data = require_data()
    work = Path(args.work)
    big = synthetic_store(work / f"synthetic-{max(args.clips)}", max(args.clips))
    rows = []
    for n in args.clips:
        store = big if n == max(args.clips) else work / f"view-{n}"
        if n != max(args.clips) and not (store / "manifest.csv").exists():
            _view(big, store, n)
        m = peak_memory(store, args.threads)
        rows.append([f"{n:,}", f"{n * FRAMES * 1662 * 4 / 1e9:.1f}", f"{m['peak_gb']:.2f}", f"{m['epoch_seconds']:.0f}",
                     f"{m['seconds']:.0f}"])  # fmt: skip
        print(rows[-1], file=sys.stderr, flush=True)
    print(f"machine: {machine()}")
    print("### Memory: one epoch of the reference model on a synthetic WLASL2000-size store\n")
    print(markdown_table(["clips", "data as float32 (GB)", "peak resident memory (GB)", "epoch (s)", "whole run (s)"], rows))
    s, m = epoch_speed(big, args.speed_clips, args.repeat, args.threads)
    ratio = statistics.median(s) / statistics.median(m)
    print(f"\n### Speed: {args.speed_clips:,} clips, reference model, {args.threads} thread(s), {args.repeat} runs each\n")
    print(markdown_table(["data", "seconds per epoch (median)", "runs", "ratio"], [
        ["already in memory", f"{statistics.median(m):.2f}", ", ".join(f"{x:.2f}" for x in m), "1.00"],
        ["read from the store", f"{statistics.median(s):.2f}", ", ".join(f"{x:.2f}" for x in s), f"{ratio:.2f}"],
    ]))  # fmt: skip
    n, stored, wide = hands_size(data)
    print("\n### Size: the real WLASL300 hands-only clips\n")
    print(markdown_table(["form", "bytes", "share"], [
        ["(frames, 1662) float32 arrays", f"{wide:,}", "100%"],
        [f"signrec store (hands only, float16), {n:,} clips", f"{stored:,}", f"{100 * stored / wide:.1f}%"],
    ]))  # fmt: skip


def _view(big: Path, target: Path, n: int) -> None:
    """A store of the first `n` clips of `big`: its manifest, pointing at the same files through links."""
    from signrec.io import read_csv_rows, write_csv_atomic
    from signrec.store.schema import order_columns

    rows = [r for r in read_csv_rows(big / "manifest.csv") if int(r["id"]) < n]
    for r in rows:
        dest = target / r["path"]
        dest.parent.mkdir(parents=True, exist_ok=True)
        if not dest.exists():
            dest.symlink_to((big / r["path"]).resolve())
    write_csv_atomic(target / "manifest.csv", rows, order_columns(rows))


if __name__ == "__main__":
    main()
