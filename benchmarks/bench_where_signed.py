"""Where each source's people make each sign: the height of the signing hand relative to the nose, in shoulder
widths, in the body frame the best recipe normalises to (`level_aspect` then `normalize_body`), per source and
gloss, and per person of the cross-dataset test source. It explains what webcam -> GISLR gets wrong: a sign told
from another by where it is made is hard for a model trained on people who make it elsewhere.

    .venv/bin/python benchmarks/bench_where_signed.py [--work work/bench-accuracy] [--plot work/where-signed.png]

Per clip: the palm centre (wrist and the four finger bases) of each hand found in at least 3 frames; `highest`
is its highest point (the start of hello and thanks), `median` its median height; positive is below the nose.
The stores are the accuracy benchmark's (imported once into WORK/stores).
"""

from __future__ import annotations

import argparse
import statistics
from pathlib import Path

import numpy as np
from common import markdown_table, require_data, shared_store

from signrec import layout
from signrec.transforms import level_aspect, normalize_body

PALM = [0, 5, 9, 13, 17]  # the wrist and the four finger bases
Heights = list[tuple[str, float, float]]


def heights(frames: np.ndarray) -> Heights:
    """(hand, highest, median) for each hand found in 3 frames or more: palm height minus the nose's, in shoulder
    widths (positive: below the nose)."""
    present = layout.presence(frames)
    body = normalize_body(level_aspect(frames))
    nose = layout.part(body, "pose")[:, layout.POSE_NOSE, 1]
    out = []
    for hand in ("left_hand", "right_hand"):
        seen = present[:, layout.PARTS.index(hand)] & present[:, layout.PARTS.index("pose")]
        if seen.sum() < 3:
            continue
        dy = layout.part(body, hand)[seen][:, PALM, 1].mean(axis=1) - nose[seen]
        out.append((hand, float(dy.min()), float(np.median(dy))))
    return out


def by_person(store) -> dict[tuple[str, str], Heights]:
    """Heights per (person, gloss), each clip read once; groups without a usable hand are left out."""
    groups: dict[tuple[str, str], Heights] = {}
    for c in store.clips:
        if hs := heights(store.read(c)):
            groups.setdefault((c.signer or "?", c.gloss), []).extend(hs)
    return groups


def row(name: list[object], hs: Heights) -> list[object]:
    left = sum(h == "left_hand" for h, _, _ in hs) / len(hs)
    return [*name, len(hs), f"{statistics.median(h for _, h, _ in hs):+.2f}",
            f"{statistics.median(m for _, _, m in hs):+.2f}", f"{100 * left:.0f}"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--work", default="work/bench-accuracy")
    ap.add_argument("--plot", help="also draw each person's hello against thanks height to this PNG")
    args = ap.parse_args()
    data, work = require_data(), Path(args.work)
    sources = {"webcam": shared_store(data / "keypoints" / "webcam", work, "webcam"),
               "gislr": shared_store(data / "keypoints" / "gislr-hello-thankyou", work, "gislr",
                                     aliases={"thankyou": "thanks"})}  # fmt: skip
    header = ["hands", "highest (median)", "median height (median)", "left hand %"]
    people = {name: by_person(store) for name, store in sources.items()}
    rows = []
    for name, groups in people.items():
        by_gloss: dict[str, Heights] = {}
        for (_, gloss), hs in groups.items():
            by_gloss.setdefault(gloss, []).extend(hs)
        rows += [row([name, gloss], hs) for gloss, hs in sorted(by_gloss.items())]
    print("Palm height below the nose, in shoulder widths, per source and gloss:\n")
    print(markdown_table(["source", "gloss", *header], rows))
    rows = [row(["gislr", signer, gloss], hs) for (signer, gloss), hs in sorted(people["gislr"].items())]
    print("\nPer GISLR person:\n")
    print(markdown_table(["source", "person", "gloss", *header], rows))
    if args.plot:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt

        fig, ax = plt.subplots(figsize=(6, 5))
        for name, groups in people.items():
            for signer in sorted({s for s, _ in groups}):
                if (signer, "hello") in groups and (signer, "thanks") in groups:
                    x, y = (statistics.median(h for _, h, _ in groups[(signer, g)]) for g in ("hello", "thanks"))
                    ax.scatter(x, y, c="tab:blue" if name == "webcam" else "tab:orange", s=30,
                               label=name if name not in ax.get_legend_handles_labels()[1] else None)  # fmt: skip
                    ax.annotate(signer[:6], (x, y), fontsize=6, alpha=0.7)
        ax.plot([-0.5, 1.5], [-0.5, 1.5], "k:", lw=0.8)
        ax.set_xlabel("hello: highest palm point below the nose (shoulder widths)")
        ax.set_ylabel("thanks: the same")
        ax.set_title("Where each person signs hello and thanks")
        ax.legend()
        fig.tight_layout()
        Path(args.plot).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(args.plot, dpi=120)
        print(f"\nplot: {args.plot}")


if __name__ == "__main__":
    main()
