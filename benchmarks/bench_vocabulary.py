"""What learning from more glosses buys: runs that learnt different vocabularies (say WLASL100 alone, and all of
WLASL300), each answering among the same glosses, scored on the same clips.

    python benchmarks/bench_vocabulary.py RUN [RUN ...] --data STORE --where wlasl100=1 [--split val]

The clips are those of STORE that `--where` keeps and that are on the `--split` side of every run's split (so the
same clips for every run, and none a run trained on). A run that knows more glosses than those clips have answers
among theirs only: its probabilities of those glosses, renormalised, which is exactly what
`signrec train --where ... --extra-glosses` saves (`signrec.models.keep_classes`, tested to be the same).
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
from common import machine, markdown_table

from signrec.checkpoint import run_folder
from signrec.evaluate import compute_metrics
from signrec.predict import load_predictor
from signrec.splits import SPLIT_NAME, Split, filter_store
from signrec.store import open_store


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("runs", nargs="+")
    ap.add_argument("--data", required=True, help="the keypoint store the runs were trained on")
    ap.add_argument("--where", action="append", required=True, help="the glosses (clips) to answer among")
    ap.add_argument("--split", default="val", choices=["val", "test", "train"])
    args = ap.parse_args()
    store = filter_store(open_store(args.data), args.where)
    glosses = store.glosses
    predictors = [load_predictor(r) for r in args.runs]
    paths = {c.path for c in store.clips}
    for run in args.runs:
        paths &= set(Split.load(run_folder(run) / SPLIT_NAME).side(args.split))
    clips = store.subset(sorted(paths))
    if not clips:
        raise SystemExit(f"no clip of {store.root} where {args.where} is on the {args.split} side of every run")
    missing = [(r, g) for r, p in zip(args.runs, predictors, strict=True) for g in glosses if g not in p.labels]
    if missing:
        raise SystemExit(f"{missing[0][0]} does not know {missing[0][1]!r}: every run must know every gloss scored")
    arrays = [store.read(c) for c in clips]
    y = np.array([glosses.index(c.gloss) for c in clips])
    rows = []
    for run, p in zip(args.runs, predictors, strict=True):
        probs = p.predict_proba(arrays, calibrated=False)[:, [p.labels.index(g) for g in glosses]]
        probs /= probs.sum(axis=1, keepdims=True)
        m = compute_metrics(probs, y, glosses)
        rows.append([run, len(p.labels), f"{100 * m.top1:.1f}", f"{100 * m.top1_ci[0]:.1f}-{100 * m.top1_ci[1]:.1f}",
                     f"{100 * m.top5:.1f}"])  # fmt: skip
    print(f"machine: {machine()}; {len(clips)} {args.split} clips of {len(glosses)} glosses "
          f"({', '.join(args.where)}) of {store.root}")  # fmt: skip
    print(markdown_table(["run", "glosses learnt", "top-1 %", "95% CI", "top-5 %"], rows))


if __name__ == "__main__":
    main()
