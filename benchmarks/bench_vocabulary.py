"""What learning from more glosses buys: runs that learnt different vocabularies (say WLASL100 alone, and all of
WLASL300), each answering among the same glosses, scored on the same clips.

    python benchmarks/bench_vocabulary.py RUN [RUN ...] --data STORE --where wlasl100=1 [--split val]

The clips are those of STORE that `--where` keeps and that are on the `--split` side of every run's split (so the
same clips for every run, and none a run trained on). A run that knows more glosses than those clips have answers
among theirs only: its probabilities of those glosses, renormalised, which is exactly what
`signrec train --where ... --extra-glosses` saves (`signrec.models.keep_classes`, tested to be the same).

A RUN may also be a result that `bench_accuracy.py` saved (its JSON: the clips it scored and the probabilities), such
as a WLASL300 pair of `--only inner300` scored among WLASL100's glosses against the WLASL100 pairs of `--only
inner100` on the same clips; the clips are then those every result scored. With more than one RUN, a last row
averages them all.
"""

from __future__ import annotations

import argparse
import json
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
    ap.add_argument("runs", nargs="+", help="run folders (or checkpoints), or results bench_accuracy.py saved (.json)")
    ap.add_argument("--data", required=True, help="the keypoint store the runs were trained on")
    ap.add_argument("--where", action="append", required=True, help="the glosses (clips) to answer among")
    ap.add_argument("--split", default="val", choices=["val", "test", "train"])
    args = ap.parse_args()
    store = filter_store(open_store(args.data), args.where)
    glosses = store.glosses
    sources = [json.loads(Path(r).read_text()) if r.endswith(".json") else load_predictor(r) for r in args.runs]
    paths = {c.path for c in store.clips}
    for run, source in zip(args.runs, sources, strict=True):
        paths &= set(source["clips"]) if isinstance(source, dict) else set(
            Split.load(run_folder(run) / SPLIT_NAME).side(args.split))  # fmt: skip
    clips = store.subset(sorted(paths))
    if not clips:
        raise SystemExit(f"no clip of {store.root} where {args.where} is scored by every run")
    labels = [[g["gloss"] for g in s["per_gloss"]] if isinstance(s, dict) else s.labels for s in sources]
    missing = [(r, g) for r, known in zip(args.runs, labels, strict=True) for g in glosses if g not in known]
    if missing:
        raise SystemExit(f"{missing[0][0]} does not know {missing[0][1]!r}: every run must know every gloss scored")
    arrays = [store.read(c) for c in clips] if any(not isinstance(s, dict) for s in sources) else []
    y = np.array([glosses.index(c.gloss) for c in clips])
    rows, among = [], []
    for run, source, known in zip(args.runs, sources, labels, strict=True):
        if isinstance(source, dict):
            row = {p: i for i, p in enumerate(source["clips"])}
            full = np.array(source["raw"])[[row[c.path] for c in clips]]
        else:
            full = source.predict_proba(arrays, calibrated=False)
        probs = full[:, [known.index(g) for g in glosses]]
        among.append(probs / probs.sum(axis=1, keepdims=True))
        rows.append(_row(Path(run).name, len(known), among[-1], y, glosses))
    if len(among) > 1:
        rows.append(_row("all of them averaged", "", np.mean(among, axis=0), y, glosses))
    print(f"machine: {machine()}; {len(clips)} clips of {len(glosses)} glosses ({', '.join(args.where)}) of "
          f"{store.root}, scored by every run")  # fmt: skip
    print(markdown_table(["run", "glosses learnt", "top-1 %", "95% CI", "top-5 %"], rows))


def _row(name: str, learnt: object, probs: np.ndarray, y: np.ndarray, glosses: list[str]) -> list[object]:
    m = compute_metrics(probs, y, glosses)
    return [name, learnt, f"{100 * m.top1:.1f}", f"{100 * m.top1_ci[0]:.1f}-{100 * m.top1_ci[1]:.1f}", f"{100 * m.top5:.1f}"]


if __name__ == "__main__":
    main()
