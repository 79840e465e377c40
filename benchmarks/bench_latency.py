"""Per-clip latency and size of a trained model on the CPU: the checkpoint (PyTorch) and its ONNX export.

    python benchmarks/bench_latency.py RUN [--data STORE] [--clips 60] [--threads 1]

Keypoints to probabilities (preprocessing included, MediaPipe not: see bench_extract.py), one clip at a time as
`signrec predict` does, on the first N validation clips of the run's store; median and 95th percentile in ms,
the two backends in turn on the same clips. Prints Markdown.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
from common import machine, markdown_table


def timings(predictor, seqs: list[np.ndarray]) -> list[float]:
    predictor.predict_proba(seqs[:2])  # warm-up
    out = []
    for s in seqs:
        t = time.perf_counter()
        predictor.predict_proba([s])
        out.append(time.perf_counter() - t)
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run")
    ap.add_argument("--data", help="the keypoint store (default: the run's)")
    ap.add_argument("--clips", type=int, default=60)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    import torch

    from signrec.checkpoint import resolve
    from signrec.export import export_onnx
    from signrec.predict import load_predictor
    from signrec.store import open_store

    torch.set_num_threads(args.threads)
    predictor = load_predictor(args.run)
    store = open_store(args.data or predictor.card.training["data"])
    clips = [c for c in store if c.split == "val"][: args.clips] or list(store)[: args.clips]
    seqs = [store.read(c) for c in clips]
    with tempfile.TemporaryDirectory() as tmp:
        onnx = export_onnx(args.run, Path(tmp) / "model.onnx")
        backends = {"PyTorch checkpoint": predictor, "ONNX (onnxruntime)": load_predictor(onnx)}
        sizes = {"PyTorch checkpoint": os.path.getsize(resolve(args.run)), "ONNX (onnxruntime)": os.path.getsize(onnx)}
        rows = []
        for name, p in backends.items():
            t = np.array(timings(p, seqs)) * 1e3
            rows.append([name, f"{np.median(t):.1f}", f"{np.percentile(t, 95):.1f}", f"{sizes[name] / 1e6:.2f}"])
    print(f"machine: {machine()}; {len(seqs)} clips, median {int(np.median([len(s) for s in seqs]))} frames, "
          f"{args.threads} thread(s)\n")  # fmt: skip
    print(markdown_table(["model", "ms per clip (median)", "p95 ms", "file MB"], rows))


if __name__ == "__main__":
    main()
