"""Splits as named specs, and row filters: which clips train, which select the model, which test it.

A spec is one of:

    auto              official when every clip has one (WLASL's), else signer-disjoint when the data says who
                      signed each clip (3 people or more), else stratified; what `train` and `run` use by default
    official          the `split` column of the store (train/val/test; with train/val only, there is no test
                      split and reports say the figures are validation figures; with train/test only, a
                      stratified 15% of train becomes validation)
    stratified[:SEED] 70/15/15, stratified by gloss, fixed seed (default 0)
    signer[:FOLD]     signer-disjoint: people are dealt into up to 5 folds of similar size; fold FOLD (default 0)
                      tests, the next one validates, the rest train, so no person is on two sides
    PATH.json         a split file written by signrec (`split.json` of a run)

A filter (`--where`) keeps the clips whose columns match, before splitting: `wlasl100=1`, `signer!=3`,
`gloss=hello|thanks`.
"""

from __future__ import annotations

import json
import math
import os
from collections import Counter
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

from .io import atomic_write_json
from .store import SPLITS, Clip, KeypointStore

SPLIT_NAME = "split.json"
SIGNER_FOLDS = 5
VAL_FRACTION = TEST_FRACTION = 0.15


@dataclass
class Split:
    """Clip paths per side and how they were chosen."""

    train: list[str]
    val: list[str]
    test: list[str]
    how: str

    def sides(self) -> dict[str, list[str]]:
        return {"train": self.train, "val": self.val, "test": self.test}

    def side(self, name: str) -> list[str]:
        if name not in SPLITS:
            raise ValueError(f"split side must be one of {', '.join(SPLITS)}, got {name!r}")
        return self.sides()[name]

    @property
    def eval_side(self) -> str:
        """Where final figures come from: test when there is one, else validation (and reports say so)."""
        return "test" if self.test else "val"

    def save(self, path: str | os.PathLike) -> None:
        atomic_write_json(path, {"how": self.how, **self.sides()})

    @classmethod
    def load(cls, path: str | os.PathLike) -> Split:
        try:
            obj = json.loads(Path(path).read_text())
            return cls(*(list(obj.get(k, [])) for k in SPLITS), how=obj.get("how", f"file {path}"))
        except (OSError, json.JSONDecodeError, AttributeError) as e:
            raise ValueError(f"{path}: not a signrec split file ({e})") from e

    def describe(self, store: KeypointStore) -> str:
        """One line per side: clips, glosses and signers, and people on more than one side."""
        lines = [f"split: {self.how}"]
        signers = {}
        for name, paths in self.sides().items():
            clips = store.subset(paths)
            signers[name] = {c.signer for c in clips if c.signer}
            who = f", {len(signers[name])} signers" if signers[name] else ""
            lines.append(f"  {name}: {len(clips)} clips, {len({c.gloss for c in clips})} glosses{who}")
        shared = (signers["train"] & signers["val"]) | (signers["train"] & signers["test"])
        if any(signers.values()):
            lines.append(f"  signers in training and in val/test: {len(shared)}" +
                         (" (none: signer-disjoint)" if not shared else ""))  # fmt: skip
        return "\n".join(lines)

    def fingerprint(self) -> str:
        import hashlib

        return hashlib.sha256(json.dumps(self.sides(), sort_keys=True).encode()).hexdigest()[:16]


# ---------------------------------------------------------------------------------------------------------------
# Filters


def parse_where(exprs: Iterable[str] | str | None) -> Callable[[Clip], bool] | None:
    """`["wlasl100=1", "signer!=3"]` (or one comma-separated string) -> a predicate on clips; None keeps all."""
    if not exprs:
        return None
    if isinstance(exprs, str):
        exprs = [exprs]
    tests = []
    for expr in (e.strip() for item in exprs for e in item.split(",") if e.strip()):
        op = "!=" if "!=" in expr else "="
        column, _, wanted = expr.partition(op)
        column, options = column.strip(), {w.strip() for w in wanted.split("|")}
        if not column or not wanted:
            raise ValueError(f"--where {expr!r}: expected COLUMN=VALUE or COLUMN!=VALUE (values joined by |)")
        tests.append((column, op, options))

    def keep(clip: Clip) -> bool:
        for column, op, options in tests:
            got = getattr(clip, column, None) if column in ("gloss", "signer", "split", "id", "path") else None
            got = str(got if got not in (None, "") else clip.meta.get(column, ""))
            if (got in options) != (op == "="):
                return False
        return True

    keep.columns = [t[0] for t in tests]  # type: ignore[attr-defined]
    keep.text = ",".join(f"{c}{op}{'|'.join(sorted(o))}" for c, op, o in tests)  # type: ignore[attr-defined]
    return keep


def filter_store(store: KeypointStore, where: Iterable[str] | str | None) -> KeypointStore:
    """The clips that match `where`; an unknown column or an empty result is an error naming it."""
    keep = parse_where(where)
    if keep is None:
        return store
    known = set(store.columns) | {"gloss", "signer", "split", "id", "path"}
    unknown = [c for c in keep.columns if c not in known]  # type: ignore[attr-defined]
    if unknown:
        raise ValueError(f"--where: {store.root} has no column {', '.join(unknown)}; columns: {', '.join(sorted(known))}")
    view = store.select(keep)
    if not view.clips:
        raise ValueError(f"--where {keep.text}: no clip of {store.root} matches")  # type: ignore[attr-defined]
    return view


def answer_and_learn(store: KeypointStore, where: Iterable[str] | str | None,
                     extra_glosses: bool) -> tuple[KeypointStore, KeypointStore | None]:  # fmt: skip
    """The clips `where` keeps (what a model answers among and is scored on) and, with `extra_glosses` when the
    filter leaves glosses out, what the model learns from: those clips and every clip of the glosses it leaves
    out (a clip of a kept gloss that the filter drops, say another signer's, stays out); None otherwise."""
    kept = filter_store(store, where)
    if not extra_glosses:
        return kept, None
    if not where:
        raise ValueError("extra glosses need a filter (--where) to say which glosses the model answers among")
    glosses, keep = set(kept.glosses), parse_where(where)
    if glosses == set(store.glosses):
        return kept, None
    return kept, store.select(lambda c: c.gloss not in glosses or keep(c))  # type: ignore[misc]


# ---------------------------------------------------------------------------------------------------------------
# Specs


def _held_out(y: list[str], frac: float, min_per_class: int) -> tuple[int, list[str] | None]:
    """How many to hold out, and the labels to stratify by: stratified (at least one of each gloss held out)
    when every gloss has `min_per_class` samples, so that even tiny folders split; otherwise at random."""
    n, classes = len(y), len(set(y))
    k = max(1, math.ceil(frac * n))  # as scikit-learn rounds a fractional test_size
    if min(Counter(y).values()) >= min_per_class and n - max(k, classes) >= classes:
        return max(k, classes), y
    return k, None


def _carve(clips: list[Clip], frac: float, seed: int, min_per_class: int) -> tuple[list[str], list[str]]:
    from sklearn.model_selection import train_test_split

    k, strat = _held_out([c.gloss for c in clips], frac, min_per_class)
    keep, held = train_test_split([c.path for c in clips], test_size=k, random_state=seed, stratify=strat)
    return sorted(keep), sorted(held)


def stratified(store: KeypointStore, seed: int = 0) -> Split:
    """Train/val/test 70/15/15, stratified by gloss with a fixed seed."""
    rest, test = _carve(store.clips, TEST_FRACTION, seed, 3)
    train, val = _carve(store.subset(rest), VAL_FRACTION / (1 - TEST_FRACTION), seed, 2)
    return Split(train, val, test, f"stratified (seed {seed})")


def official(store: KeypointStore, seed: int = 0) -> Split:
    """The store's own `split` column."""
    bad = [c.path for c in store.clips if c.split not in SPLITS]
    if bad:
        raise ValueError(f"{store.root}: --split official needs a split (train/val/test) for every clip; "
                         f"{len(bad)} have none, e.g. {bad[0]}")  # fmt: skip
    sides = {k: sorted(c.path for c in store.clips if c.split == k) for k in SPLITS}
    if not sides["train"] or not (sides["val"] or sides["test"]):
        have = ", ".join(k for k, v in sides.items() if v)
        raise ValueError(f"{store.root}: the official split has only {have}; need train and val or test")
    if not sides["val"]:  # carve validation out of train so that model selection never sees test
        train, val = _carve(store.subset(sides["train"]), VAL_FRACTION, seed, 2)
        return Split(train, val, sides["test"], f"official (validation: stratified 15% of train, seed {seed})")
    if not sides["test"]:
        return Split(sides["train"], sides["val"], [], "official train/val (the data has no test split)")
    return Split(sides["train"], sides["val"], sides["test"], "official")


def signer_folds(store: KeypointStore, k: int = SIGNER_FOLDS) -> list[list[str]]:
    """People dealt into `min(k, people)` folds of similar size (most clips first, each to the smallest fold)."""
    counts = Counter(c.signer for c in store.clips)
    if "" in counts:
        raise ValueError(f"{store.root}: signer-disjoint splits need a signer for every clip; "
                         f"{counts['']} clips have none")  # fmt: skip
    k = min(k, len(counts))
    folds: list[list[str]] = [[] for _ in range(k)]
    sizes = [0] * k
    for signer, n in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        i = min(range(k), key=lambda j: (sizes[j], j))
        folds[i].append(signer)
        sizes[i] += n
    return folds


def signer_disjoint(store: KeypointStore, fold: int = 0) -> Split:
    """Fold `fold` of the people tests, the next validates, the others train."""
    folds = signer_folds(store)
    if len(folds) < 3:
        raise ValueError(f"{store.root}: a signer-disjoint split needs at least 3 signers, found {len(folds)}")
    fold %= len(folds)
    test, val = set(folds[fold]), set(folds[(fold + 1) % len(folds)])
    side = {c.path: "test" if c.signer in test else "val" if c.signer in val else "train" for c in store.clips}
    paths = {k: sorted(p for p, s in side.items() if s == k) for k in SPLITS}
    return Split(paths["train"], paths["val"], paths["test"],
                 f"signer-disjoint (fold {fold} of {len(folds)}: test {', '.join(sorted(test))}; "
                 f"val {', '.join(sorted(val))})")  # fmt: skip


def _has_official(store: KeypointStore) -> bool:
    sides = {c.split for c in store.clips}
    return sides <= set(SPLITS) and "train" in sides and len(sides) >= 2


def auto_kind(store: KeypointStore) -> str:
    """What `auto` means for this store."""
    if _has_official(store):
        return "official"
    if all(c.signer for c in store.clips) and len(store.signers) >= 3:
        return "signer"
    return "stratified"


def make_split(store: KeypointStore, spec: str = "auto", seed: int = 0) -> Split:
    """The split a spec names, for the clips of `store` (already filtered)."""
    spec = spec or "auto"
    kind, _, arg = spec.partition(":")
    if kind == "auto":
        kind = auto_kind(store)
        if kind == "stratified":
            arg = str(seed)
    if kind == "official":
        return official(store, seed)
    if kind == "stratified":
        return stratified(store, int(arg) if arg else seed)
    if kind == "signer":
        return signer_disjoint(store, int(arg) if arg else 0)
    if spec.endswith(".json") or Path(spec).is_file():
        split = Split.load(spec)
        present = {c.path for c in store.clips}
        for name, paths in split.sides().items():  # a file may name clips a --where filter left out
            split.sides()[name][:] = [p for p in paths if p in present]
        if not split.train or not (split.val or split.test):
            raise ValueError(f"{spec}: leaves no training or no validation clips in {store.root}")
        return split
    raise ValueError(f"unknown split {spec!r}: use auto, official, stratified[:SEED], signer[:FOLD] or a split.json")


def check_spec(spec: str) -> None:
    """Refuse a malformed spec before any work (a file spec must exist)."""
    kind, _, arg = (spec or "auto").partition(":")
    if kind in ("auto", "official") and not arg:
        return
    if kind in ("stratified", "signer") and (not arg or arg.isdigit()):
        return
    if spec.endswith(".json"):
        if not Path(spec).is_file():
            raise FileNotFoundError(f"--split {spec}: no such split file")
        return
    raise ValueError(f"unknown split {spec!r}: use auto, official, stratified[:SEED], signer[:FOLD] or a split.json")
