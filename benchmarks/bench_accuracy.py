"""Accuracy on the real protocols of ../shared/data/README.md, for the reference models and the best recipe.

    python benchmarks/bench_accuracy.py [--protocol 1 2 3 4 5] [--seeds 3] [--recipes ref-tanh ref-relu best]
                                        [--work work/bench-accuracy]

1. wlasl12 video, end to end: the 115 clips are extracted with signrec (cached in WORK/wlasl12-keypoints), then
   (a) WLASL's own split, train vs val+test, and (b) the five signer-disjoint folds. Top-1 and top-5.
2. WLASL words, keypoints: wlasl-a (before, drink, computer) + wlasl-b (book, bed, thank you), stratified
   5-fold cross-validation, with each seed its own fold assignment.
3. Webcam, signer-independent: leave one signer out over the signers who recorded all three signs (hello,
   thanks, iloveyou).
4. Hundreds of signs: keypoints/wlasl300-hands, WLASL100 (rows with wlasl100=1) and WLASL300 (all rows), the
   official train split for training and the official val split for early stopping and the figures (the
   official test split is withheld); plus a signer-disjoint estimate on WLASL300 (signer folds of train+val), and
   WLASL100 with validation taken from the official train split and the figures on the official val (what a
   refit on training + validation clips buys, measured on clips neither part saw: `--only inner100`), and the
   same on WLASL300 (`--only inner300`).
5. New people and cameras: train on the webcam signers, test on the 21 GISLR phone signers (hello, thanks), and
   the other way round; validation is signer-disjoint within the training source.

Every task trains on its training clips only: a stratified 15% of them (signer-disjoint in 5) is the validation
split for early stopping, unless the protocol says otherwise; the test clips are never looked at before the
final evaluation. Each finished task is saved as JSON under WORK, keyed by a fingerprint of the recipe, data and
split, so an interrupted run resumes and a changed recipe is never mixed up with an old result. Prints a Markdown
table of mean and spread (std over folds and seeds).
"""

from __future__ import annotations

import argparse
import itertools
import json
import shutil
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
import numpy as np
from common import machine, markdown_table, require_data, shared_store

from signrec.evaluate import SIGNER_MIN_CLIPS, per_signer, score, topk_hits
from signrec.io import atomic_write_json
from signrec.predict import load_predictor
from signrec.presets import BEST_AUGMENT, BEST_PREPROCESS, best, reference
from signrec.splits import Split, filter_store, make_split
from signrec.store import KeypointStore, import_keypoints, open_store
from signrec.training.runner import VALIDATED_NAME, fingerprint, resolved, train
from signrec.transforms import Augment, mirror

# The reference is trained as specified (Adam, lr 1e-3, batch 32, early stopping on validation loss) but capped
# at 300 epochs with patience 40 here, so that the whole table fits in a few CPU hours.
REFERENCE_EPOCHS, REFERENCE_PATIENCE = 300, 40
RECIPES = {
    "ref-tanh": lambda: reference("tanh").with_config(max_epochs=REFERENCE_EPOCHS, patience=REFERENCE_PATIENCE),
    "ref-relu": lambda: reference("relu").with_config(max_epochs=REFERENCE_EPOCHS, patience=REFERENCE_PATIENCE),
    "best": best,
}
# The best recipe's augmentation without hand placement, as every release before this one trained
NO_PLACE = replace(BEST_AUGMENT, hand_place=0.0)
# The best recipe of the previous release: this one without hand placement
# The best recipe's features before each hand's place in the frame was added (hands-only keypoints; with a body
# nothing changed): what the recipes named after earlier releases read
BEFORE_IMAGE_PLACE = replace(BEST_PREPROCESS, image_place=False)
PREVIOUS = replace(best(), preprocess=BEFORE_IMAGE_PLACE, augment=NO_PLACE)
# The best recipe of the release before (z read, 100 epochs of cosine), what the no-depth rows below were measured
# against; they are defined from it, so that their commands still give the figures of BENCHMARKS.md
LAST_RELEASE = replace(PREVIOUS, preprocess=replace(BEFORE_IMAGE_PLACE, depth=True)).with_config(schedule="cosine",
                                                                                                max_epochs=100)
NO_DEPTH = replace(BEFORE_IMAGE_PLACE, depth=False)
# length times 0.5-1.5 and, half the time, a window of 50-100% of the clip (GISLR's phone clips span 16-20 frames
# from the first hand to the last, the webcam tutorial's 30)
TEMPO = replace(NO_PLACE, stretch=0.5, crop=0.5)
# What each change buys (`--recipes` to run them): the best recipe with one part taken away or swapped.
ABLATIONS = {
    "best-no-augment": lambda: replace(best(), augment=None),
    "best-no-body-frame": lambda: replace(best(), preprocess=replace(BEST_PREPROCESS, normalize="none")),
    "best-no-hand-view-motion": lambda: replace(best(), preprocess=replace(BEST_PREPROCESS, hand_view=False,
                                                                           motion=False)),
    "best-with-lstm": lambda: replace(best(), model="lstm", model_options={}),
    "best-with-bigru": lambda: replace(best(), model="bigru", model_options={}),
    # the augmentation of earlier versions: mirror, rotate 10, scale 0.1, stretch 0.2, drop 0.1
    "best-plain-augment": lambda: replace(best(), augment=Augment()),
    # without the hand pose (each hand turned and sized about its wrist) and time-crop augmentations
    "best-no-hand-pose": lambda: replace(best(), augment=replace(BEST_AUGMENT, hand_rotate=0, hand_scale=0, crop=0,
                                                                 one_hand=0)),
    # without two-handed clips also seen signed with one hand (the hand that moves less dropped) half the time
    "best-no-one-hand": lambda: replace(best(), augment=replace(BEST_AUGMENT, one_hand=0.0)),
    # ... and more often (0.8 of the symmetric two-handed clips instead of 0.5)
    "best-one-hand-0.8": lambda: replace(best(), augment=replace(BEST_AUGMENT, one_hand=0.8)),
    # x and y only: every z zeroed before the features are made (MediaPipe's z is a one-camera guess)
    "best-no-depth": lambda: replace(LAST_RELEASE, preprocess=NO_DEPTH),
    "best-last-release": lambda: LAST_RELEASE,
    # faster and shorter signs (TEMPO)
    "best-tempo": lambda: replace(LAST_RELEASE, augment=TEMPO),
    # x and y only with the tempo augmentation, or with the one-handed form 0.8 of the time
    "best-no-depth-tempo": lambda: replace(LAST_RELEASE, preprocess=NO_DEPTH, augment=TEMPO),
    "best-no-depth-one-hand-0.8": lambda: replace(LAST_RELEASE, preprocess=NO_DEPTH,
                                                  augment=replace(NO_PLACE, one_hand=0.8)),
    # x and y only, trained until validation says (the plateau schedule, capped at 300 epochs) instead of 100
    # epochs of cosine
    "best-no-depth-plateau": lambda: replace(LAST_RELEASE, preprocess=NO_DEPTH).with_config(schedule="plateau",
                                                                                            max_epochs=300),
    # the previous release's best (this one without hand placement), and it with z read again, or with 100 epochs
    # of cosine
    "best-previous": lambda: PREVIOUS,
    "best-with-depth": lambda: replace(PREVIOUS, preprocess=replace(BEFORE_IMAGE_PLACE, depth=True)),
    "best-cosine": lambda: PREVIOUS.with_config(schedule="cosine", max_epochs=100),
    # x and y only, both hands placed up to 0.3 shoulder widths elsewhere (hello at the forehead or the mouth)
    "best-no-depth-hand-place": lambda: replace(LAST_RELEASE, preprocess=NO_DEPTH,
                                                augment=replace(NO_PLACE, hand_place=0.3)),
    # the previous release's best with both hands placed up to 0.3, 0.6 or 1.0 shoulder widths elsewhere
    "best-hand-place": lambda: replace(PREVIOUS, augment=replace(NO_PLACE, hand_place=0.3)),
    "best-hand-place-0.6": lambda: replace(PREVIOUS, augment=replace(NO_PLACE, hand_place=0.6)),
    "best-hand-place-1.0": lambda: replace(PREVIOUS, augment=replace(NO_PLACE, hand_place=1.0)),
    # the previous release's best with each hand's bone directions and finger bends
    "best-bones": lambda: replace(PREVIOUS, preprocess=replace(BEFORE_IMAGE_PLACE, bones=True)),
    # the last release's best: this one without each hand's place in the frame (hands-only keypoints)
    "best-no-image-place": lambda: replace(best(), preprocess=BEFORE_IMAGE_PLACE),
    # ... and with it, by that name (what this release's best reads; the results saved under this name)
    "best-image-place": best,
    # three members (seeds 0, 1, 2) averaged
    "best-ens3": lambda: best().with_config(ensemble=3),
    # two members, or one and its refit on training + validation clips (another seed), averaged
    "best-ens2": lambda: best().with_config(ensemble=2),
    "best-refit": lambda: best().with_config(refit=True),
    # ... the refit replaying the validated run's whole schedule, its decay included
    "best-refit-whole": lambda: best().with_config(refit=True, refit_whole=True),
    # dropout 0.8 before the output layer (the Kaggle ASL-signs winner's), instead of the blocks' 0.3
    "best-head-drop-0.8": lambda: replace(best(), model_options={**best().model_options, "head_dropout": 0.8}),
    # mixup: each batch mixed with itself reordered, weights from Beta(0.4, 0.4), the loss alike
    "best-mixup-0.4": lambda: best().with_config(mixup=0.4),
    # ... and refitted on training + validation clips (WLASL100's default refit, with mixup; --only inner100 scores it
    # on clips neither model saw)
    "best-mixup-0.4-refit": lambda: best().with_config(mixup=0.4, refit=True),
    # ... with the validated model's training capped at 25 minutes (its refit then trains as many epochs): a pair
    # inside the hour on WLASL300 (--only inner300 scores it on clips neither model saw)
    "best-mixup-0.4-refit-cap25": lambda: best().with_config(mixup=0.4, refit=True, max_minutes=25),
    # ... trained in float32 (as before Release 16, which trains in bfloat16 mixed precision where the CPU computes it)
    "best-mixup-0.4-refit-cap25-fp32": lambda: best().with_config(mixup=0.4, refit=True, max_minutes=25, precision="32"),
}
INVARIANT = Augment(mirror=0.5, rotate=15, scale=0.2, shear=0.15, shift=0.05, arms=0.15, stretch=0.4, drop=0.1,
                    hand_drop=0.3, no_visibility=0.5, jitter=0.003)  # fmt: skip
# What each augmentation for new people and cameras buys (protocol 5): the best recipe plus one, or all of them.
INVARIANCE = {
    "best+invariant": lambda: replace(best(), augment=INVARIANT),
    "best+stretch": lambda: replace(best(), augment=replace(Augment(), stretch=0.4)),
    "best+arms": lambda: replace(best(), augment=replace(Augment(), arms=0.15)),
    "best+shear-scale": lambda: replace(best(), augment=replace(Augment(), shear=0.15, scale=0.2, rotate=15)),
    "best+hand-drop": lambda: replace(best(), augment=replace(Augment(), hand_drop=0.3)),
    "best+no-visibility": lambda: replace(best(), augment=replace(Augment(), no_visibility=0.5)),
    "best+aspect-aug": lambda: replace(best(), augment=replace(Augment(), aspect=1.8)),
    "best+aspect-norm": lambda: replace(best(), preprocess=replace(BEST_PREPROCESS, aspect=True)),
    "best+duration": lambda: replace(best(), preprocess=replace(BEST_PREPROCESS, resample=32, resample_all=True)),
    "best+invariant2": lambda: replace(best(), preprocess=replace(BEST_PREPROCESS, aspect=True, resample=32,
                                                                  resample_all=True), augment=INVARIANT2),
    "best+invariant2-no-duration": lambda: replace(best(), preprocess=replace(BEST_PREPROCESS, aspect=True),
                                                   augment=INVARIANT2),
}
INVARIANT2 = replace(INVARIANT, aspect=1.3, no_visibility=0.0)
RECIPES.update(ABLATIONS)
RECIPES.update(INVARIANCE)
MAIN_RECIPES = ["ref-tanh", "ref-relu", "best"]


@dataclass
class Task:
    name: str  # "<kind>-seed<k>-<what>"; kind groups the rows of the table
    store: KeypointStore  # training data
    split: Split  # train and val paths of `store` (and test paths, when the test clips are in `store`)
    seed: int
    test_store: KeypointStore | None = None  # test clips from another store (cross-dataset)

    @property
    def kind(self) -> str:
        return self.name.split("-seed")[0]

    def test(self) -> tuple[KeypointStore, list]:
        if self.test_store is not None:
            return self.test_store, self.test_store.clips
        side = self.split.test or self.split.val
        return self.store, self.store.subset(side)


def _val_split(store: KeypointStore, pool: list[str], test: list[str], seed: int, how: str) -> Split:
    """A stratified 15% of the training pool for validation (at least one per gloss with 3+ clips)."""
    rng = np.random.default_rng(seed + 1000)
    by_gloss: dict[str, list[str]] = {}
    for p in pool:
        by_gloss.setdefault(store.get(p).gloss, []).append(p)
    train, val = [], []
    for g in sorted(by_gloss):
        group = by_gloss[g]
        order = rng.permutation(len(group))
        n_val = max(1, round(0.15 * len(group))) if len(group) >= 3 else 0
        val += [group[i] for i in order[:n_val]]
        train += [group[i] for i in order[n_val:]]
    return Split(sorted(train), sorted(val), sorted(test), how)


def stratified_folds(store: KeypointStore, k: int, seed: int, unit=lambda c: c.path) -> list[list[str]]:
    """k folds of clip paths, each gloss spread evenly; clips sharing a unit (the same footage) stay together."""
    rng = np.random.default_rng(seed)
    folds: list[list[str]] = [[] for _ in range(k)]
    units: dict[tuple[str, str], list[str]] = {}
    for c in store.clips:
        units.setdefault((c.gloss, unit(c)), []).append(c.path)
    by_gloss: dict[str, list[list[str]]] = {}
    for (g, _), paths in units.items():
        by_gloss.setdefault(g, []).append(paths)
    offset = 0
    for g in sorted(by_gloss):
        group = by_gloss[g]
        for n, i in enumerate(rng.permutation(len(group))):
            folds[(n + offset) % k].extend(group[i])
        offset += len(group)
    return folds


def protocol1(data: Path, seeds: int, work: Path) -> list[Task]:
    from signrec.extract import extract

    kp = work / "wlasl12-keypoints"
    summary = extract(data / "videos" / "wlasl12", kp, progress=True)  # wlasl12.csv beside it: split, signers
    print(summary.report(), file=sys.stderr)
    store = open_store(kp)
    tasks = []
    for seed in range(seeds):
        train_pool = [c.path for c in store.clips if c.split == "train"]
        test = [c.path for c in store.clips if c.split in ("val", "test")]
        tasks.append(Task(f"1 (WLASL split)-seed{seed}-official", store, _val_split(store, train_pool, test, seed, "official"), seed))
        for fold in range(5):
            test = [c.path for c in store.clips if c.meta.get("signer_fold") == str(fold)]
            pool = [c.path for c in store.clips if c.meta.get("signer_fold") != str(fold)]
            tasks.append(Task(f"1 (signer-disjoint folds)-seed{seed}-signers{fold}", store,
                              _val_split(store, pool, test, seed, f"signer fold {fold}"), seed))  # fmt: skip
    return tasks


def protocol2(data: Path, seeds: int, work: Path) -> list[Task]:
    target = work / "stores" / "p2"
    for sub in ("wlasl-a", "wlasl-b"):
        import_keypoints(data / "keypoints" / sub, target, progress=False)
    chosen = {"wlasl-a": ("before", "drink", "computer"), "wlasl-b": ("book", "bed", "thank you")}
    store = open_store(target).select(lambda c: c.gloss in chosen[c.meta["dataset"]])
    tasks = []
    for seed in range(seeds):
        folds = stratified_folds(store, 5, seed)
        for k in range(5):
            pool = [p for j, f in enumerate(folds) if j != k for p in f]
            tasks.append(Task(f"2 (5-fold CV)-seed{seed}-fold{k}", store, _val_split(store, pool, folds[k], seed, f"fold {k}"), seed))
    return tasks


def protocol3(data: Path, seeds: int, work: Path) -> list[Task]:
    store = shared_store(data / "keypoints" / "webcam", work, "webcam")
    signers = sorted({c.signer for c in store.clips if c.gloss == "iloveyou"})
    store = store.select(lambda c: c.signer in signers)
    tasks = []
    for seed in range(seeds):
        for who in signers:
            pool = [c.path for c in store.clips if c.signer != who]
            test = [c.path for c in store.clips if c.signer == who]
            tasks.append(Task(f"3 (leave one signer out, 3 signs)-seed{seed}-without-{who}", store,
                              _val_split(store, pool, test, seed, f"without {who}"), seed))  # fmt: skip
    return tasks


def protocol4(data: Path, seeds: int, work: Path) -> list[Task]:
    store = shared_store(data / "keypoints" / "wlasl300-hands", work, "wlasl300-hands")
    w100 = filter_store(store, "wlasl100=1")
    tasks = []
    for seed in range(seeds):
        tasks.append(Task(f"4 (WLASL100, official val)-seed{seed}-w100", w100, make_split(w100, "official"), seed))
        tasks.append(Task(f"4 (WLASL300, official val)-seed{seed}-w300", store, make_split(store, "official"), seed))
    for name, data_set in (("100", w100), ("300", store)):  # what a refit buys: validation taken from the training
        # clips, scored on the official val
        train_pool = [c.path for c in data_set.clips if c.split == "train"]
        official_val = [c.path for c in data_set.clips if c.split == "val"]
        for seed in range(seeds):
            tasks.append(Task(f"4 (WLASL{name}, val from train, scored on official val)-seed{seed}-inner{name}", data_set,
                              _val_split(data_set, train_pool, official_val, seed, "official train: 85% train, 15% val"),
                              seed))  # fmt: skip
    for fold in range(2):  # signer-disjoint: train and val pooled, people dealt into 5 folds
        tasks.append(Task(f"4 (WLASL300, signer-disjoint)-seed0-signers{fold}", store, make_split(store, f"signer:{fold}"), 0))
    return tasks


def _val_only(split: Split) -> Split:
    """A signer-disjoint split with its test people moved into training (the test set is another source)."""
    return Split(sorted(split.train + split.test), split.val, [], split.how + ", test people trained on")


def protocol5(data: Path, seeds: int, work: Path) -> list[Task]:
    webcam = shared_store(data / "keypoints" / "webcam", work, "webcam")
    gislr = shared_store(data / "keypoints" / "gislr-hello-thankyou", work, "gislr", aliases={"thankyou": "thanks"})
    tasks = []
    for seed in range(seeds):
        tasks.append(Task(f"5 (webcam -> gislr)-seed{seed}-w2g", webcam, _val_only(make_split(webcam, "signer:0")), seed,
                          test_store=gislr))  # fmt: skip
        tasks.append(Task(f"5 (gislr -> webcam)-seed{seed}-g2w", gislr, _val_only(make_split(gislr, "signer:0")), seed,
                          test_store=webcam.select(lambda c: c.gloss in ("hello", "thanks"))))  # fmt: skip
    return tasks


PROTOCOLS = {"1": protocol1, "2": protocol2, "3": protocol3, "4": protocol4, "5": protocol5}


def by_signer(clips: list, probs: np.ndarray, y: np.ndarray) -> dict[str, float]:
    """Top-1 per person with SIGNER_MIN_CLIPS clips or more (`evaluate.per_signer`)."""
    rows = per_signer([c.signer for c in clips], probs, y)
    return {r["signer"]: r["top1"] for r in rows if r["clips"] >= SIGNER_MIN_CLIPS}


def run_task(task: Task, recipe_name: str, work: Path) -> dict:
    recipe = resolved(RECIPES[recipe_name]().with_config(seed=task.seed, progress=False))  # the key as the run's
    if recipe.config.refit and task.test_store is None and not task.split.test:
        raise SystemExit(f"{recipe_name} on {task.name}: a refit learns the validation clips, which this task scores "
                         f"on; measure it where the test clips are apart (--only inner100 or inner300)")  # fmt: skip
    if task.test_store is not None:  # read only what both sources have (GISLR has no face), as evaluate insists
        common = tuple(p for p in task.store.parts if p in task.test_store.parts)
        recipe = replace(recipe, preprocess=replace(recipe.preprocess, parts=common))
    test_store, test_clips = task.test()
    key = fingerprint("torch", recipe, task.store, task.split)["id"] + (test_store.fingerprint() if task.test_store else "")
    done = work / "results" / f"{recipe_name}--{task.name}.json"
    if done.exists():
        saved = json.loads(done.read_text())
        if saved.get("fingerprint") == key:  # a result of this very recipe, data and split: reuse it
            return saved
    with tempfile.TemporaryDirectory() as tmp:
        t0 = time.perf_counter()
        result = train(task.store, Path(tmp) / "run", recipe, "torch", task.split)
        seconds = time.perf_counter() - t0
        predictor = load_predictor(Path(tmp) / "run")
        predictor.check_parts(test_store.parts, test_store.root)
        known = [c for c in test_clips if c.gloss in predictor.labels]
        clips = [test_store.read(c) for c in known]
        raw = predictor.predict_proba(clips, calibrated=False)
        y = np.array([predictor.labels.index(c.gloss) for c in known])
        m, probs = score(raw, y, predictor)
        # each clip and its mirror image, probabilities averaged (a measurement: prediction does not do it)
        both = (raw + predictor.predict_proba([mirror(x) for x in clips], calibrated=False)) / 2
        mirror_tta = {"top1": float(topk_hits(both, y, 1).mean()), "top5": float(topk_hits(both, y, m.k).mean()),
                      "per_signer": by_signer(known, both, y)}  # fmt: skip
        validated = {}
        if (Path(tmp) / "run" / VALIDATED_NAME).exists():  # a refit: the validated model alone, on the same clips
            alone = load_predictor(Path(tmp) / "run" / VALIDATED_NAME).predict_proba(clips, calibrated=False)
            validated = {"top1": float(topk_hits(alone, y, 1).mean()), "top5": float(topk_hits(alone, y, m.k).mean())}
    signers = by_signer(known, probs, y)
    out = {"recipe": recipe_name, "task": task.name, "n_test": len(known), "top1": m.top1, "top5": m.top5, "k": m.k,
           "epochs": result.epochs, "best_epoch": result.best_epoch, "seconds": seconds, "val_acc": result.val_acc,
           "per_gloss": m.per_gloss, "per_signer": signers, "confusion": m.confusion, "ece": m.ece,
           "ece_uncalibrated": m.ece_uncalibrated, "threshold": m.threshold, "coverage": m.coverage,
           "answered_top1": m.answered_top1, "mirror_tta": mirror_tta, "validated": validated, "fingerprint": key,
           "clips": [c.path for c in known], "y": y.tolist(), "raw": np.round(raw, 5).tolist()}  # fmt: skip
    atomic_write_json(done, out)
    return out


def seeds_averaged(results: list[dict], size: int | None = None) -> str:
    """Top-1 / top-5 of the runs' probabilities averaged (an ensemble of the seeds, as `--ensemble N` trains one),
    when they scored the same clips; empty otherwise (the folds of leave-one-out, results saved without them: the
    labels alone can agree by chance, when two folds' people signed each gloss as often). With `size`, the mean over
    every `size` of the runs averaged (empty unless there are more runs than that)."""
    if len(results) < 2 or any("clips" not in r for r in results) or any(r["clips"] != results[0]["clips"]
                                                                          for r in results):  # fmt: skip
        return ""
    if size is not None and len(results) <= size:
        return ""
    y, k, raw = np.array(results[0]["y"]), results[0]["k"], [np.array(r["raw"]) for r in results]
    groups = [raw] if size is None else list(itertools.combinations(raw, size))
    hits = [[topk_hits(np.mean(g, axis=0), y, n).mean() for n in (1, k)] for g in groups]
    top1, topk = np.mean(hits, axis=0)
    return f"{100 * top1:.1f} / {100 * topk:.1f}"


def summarise(results: list[dict]) -> list[object]:
    t1 = [r["top1"] for r in results]
    t5 = [r["top5"] for r in results]
    sd = lambda v: statistics.stdev(v) if len(v) > 1 else 0.0
    worst = [min(r["per_signer"].values()) for r in results if r.get("per_signer")]
    scored = [r for r in results if "ece" in r]  # results saved before calibration was recorded have none
    ece = (f"{statistics.mean(r['ece'] for r in scored):.3f} ({statistics.mean(r['ece_uncalibrated'] for r in scored):.3f})"
           if scored else "")  # fmt: skip
    return [f"{100 * statistics.mean(t1):.1f} ± {100 * sd(t1):.1f}", f"{100 * statistics.mean(t5):.1f} ± {100 * sd(t5):.1f}",
            f"{100 * min(worst):.0f}" if worst else "", ece, seeds_averaged(results), seeds_averaged(results, 2),
            len(results),
            f"{statistics.mean(r['epochs'] for r in results):.0f}", f"{sum(r['seconds'] for r in results) / 60:.1f}"]  # fmt: skip


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--protocol", nargs="+", default=["2", "3", "1"], choices=list(PROTOCOLS))
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--recipes", nargs="+", default=MAIN_RECIPES, choices=list(RECIPES))
    ap.add_argument("--work", default="work/bench-accuracy")
    ap.add_argument("--fresh", action="store_true", help="forget saved results")
    ap.add_argument("--only", help="run only the tasks whose name contains this")
    args = ap.parse_args()
    data = require_data()
    work = Path(args.work)
    if args.fresh and (work / "results").exists():
        shutil.rmtree(work / "results")
    rows = []
    for proto in args.protocol:
        tasks = [t for t in PROTOCOLS[proto](data, args.seeds, work) if not args.only or args.only in t.name]
        for recipe_name in args.recipes:
            results: dict[str, list[dict]] = {}
            for task in tasks:
                r = run_task(task, recipe_name, work)
                results.setdefault(task.kind, []).append(r)
                alone = (f"; the validated model alone {r['validated']['top1']:.3f} / {r['validated']['top5']:.3f}"
                         if r.get("validated") else "")  # fmt: skip
                print(f"{recipe_name} {task.name}: top-1 {r['top1']:.3f} top-{r['k']} {r['top5']:.3f} "
                      f"({r['epochs']} epochs, {r['seconds']:.0f} s){alone}", file=sys.stderr, flush=True)  # fmt: skip
            for kind, rs in results.items():
                rows.append([kind, recipe_name, *summarise(rs)])
    print(f"machine: {machine()}; seeds {args.seeds}")
    print(markdown_table(["protocol", "recipe", "top-1 % (mean ± sd)", "top-5 % (mean ± sd)",
                          "worst test person %", "ECE calibrated (raw)", "seeds averaged top-1 / top-5 %",
                          "two seeds averaged (mean over every two) top-1 / top-5 %", "runs",
                          "epochs", "train minutes"], rows))  # fmt: skip


if __name__ == "__main__":
    main()
