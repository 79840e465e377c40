"""`signrec train`: store -> split -> model -> self-describing checkpoint in a run folder.

A run folder holds split.json, history.csv, the checkpoint (model.pt or model.keras, with its card) and
run.json, which records a fingerprint of the settings, the data and the split. Training into a folder that
holds a run with the same fingerprint reuses it when it finished and resumes it when it was interrupted; a run
with a different fingerprint is never reused silently: it is an error unless `force` replaces it.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import statistics
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np

from ..calibration import calibrate
from ..checkpoint import KERAS_NAME, TORCH_NAME, Card, save_keras, save_torch
from ..io import atomic_write_json, read_csv_rows
from ..models import build_model, keep_classes, make_config
from ..presets import Recipe
from ..splits import SPLIT_NAME, Split, answer_and_learn, make_split
from ..store import KeypointStore, open_store
from . import ranks
from .config import TrainConfig, resolve_precision
from .stop import Interrupted, SecondaryRank

FRAMEWORKS = ("torch", "keras")
RUN_NAME = "run.json"
# What a run folder may hold; `force` removes these (and nothing else) before training anew.
MEMBERS = "members"  # an ensemble's members, each a run folder of its own: members/seed-<N> (refit-seed-<N>)
VALIDATED_NAME = "validated.pt"  # with refit: the models that never saw the validation clips, which its figures are of
RUN_FILES = (RUN_NAME, SPLIT_NAME, "history.csv", TORCH_NAME, KERAS_NAME, "last.keras", "keras", "lightning", "tensorboard",
             MEMBERS, VALIDATED_NAME)  # fmt: skip


MEMBER_NAME = re.compile(r"(refit-)?seed-(\d+)")  # what `member_folder` names


def member_folder(out: Path, seed: int, refit: bool = False) -> Path:
    """An ensemble member's run folder: OUT/members/seed-<N>, or refit-seed-<N> for a refit."""
    return out / MEMBERS / f"{'refit-' if refit else ''}seed-{seed}"


def histories(folder: str | os.PathLike, members: list[str] | None = None) -> list[tuple[str, Path]]:
    """A run's training history: its own `history.csv`, or an ensemble's, each member's that has a row (named by its
    folder; the validated models first, then the refits). `members`: the member folders the model is made of (its
    card's); without them, every folder below `members/` named as a member is."""
    folder = Path(folder)
    if (folder / "history.csv").exists():
        found = [("", folder / "history.csv")]
    else:
        names = members if members is not None else [d.name for d in (folder / MEMBERS).glob("*")]
        numbered = [(m, int(m[2])) for m in map(MEMBER_NAME.fullmatch, names) if m]
        order = sorted(numbered, key=lambda t: (t[0][1] is not None, t[1]))
        found = [(m[0], folder / MEMBERS / m[0] / "history.csv") for m, _ in order]
    return [(name, h) for name, h in found if h.exists() and read_csv_rows(h)]


class RunConflict(ValueError):
    """The run folder holds a run made with other settings or data."""


@dataclass
class TrainResult:
    run: str
    checkpoint: str
    framework: str
    model: str
    parameters: int
    epochs: int
    best_epoch: int
    seconds_per_epoch: float
    seconds: float
    val_acc: float
    split: str
    stopped: str = ""
    status: str = "finished"  # finished or interrupted
    fingerprint: str = ""
    reused: bool = False
    threads: dict = field(default_factory=dict)
    members: list = field(default_factory=list)  # an ensemble's members: [{seed, run, val_acc, epochs}, ...]
    plan: dict = field(default_factory=dict)  # epochs and learning-rate decay validation chose (what a refit replays)
    precision: str = "32"  # the arithmetic training used (TrainConfig.precision resolved on the machine)

    def line(self) -> str:
        how = "reused (same settings and data)" if self.reused else f"stopped by {self.stopped}"
        if self.members:
            each = ", ".join("refit" if m.get("refit") else f"{m['val_acc']:.1%}" for m in self.members)
            whose = " of the validated models" if any(m.get("refit") for m in self.members) else ""
            return (f"{self.framework}/{self.model} of {len(self.members)}: {self.parameters:,} parameters, "
                    f"{self.epochs} epochs in all, val accuracy{whose} {self.val_acc:.1%} (members: {each}); {how}")  # fmt: skip
        val = "no validation (a refit)" if math.isnan(self.val_acc) else f"val accuracy {self.val_acc:.1%}"
        return (f"{self.framework}/{self.model}: {self.parameters:,} parameters, {self.epochs} epochs (best "
                f"{self.best_epoch}), {val}, {self.seconds_per_epoch:.2f} s/epoch; {how}")  # fmt: skip


def refit_plan(validated: TrainResult, whole: bool) -> dict:
    """What a refit of `validated` replays: its rates up to the epoch it kept, or (`whole`) every epoch it trained,
    the plateau schedule's decay included."""
    return {**validated.plan, "epochs": validated.epochs} if whole else dict(validated.plan)


def count_parameters(model: object) -> int:
    if hasattr(model, "count_params"):
        return int(model.count_params())
    return sum(p.numel() for p in model.parameters())  # type: ignore[attr-defined]


def fingerprint(framework: str, recipe: Recipe, store: KeypointStore, split: Split,
                answers: list[str] | None = None, replay: dict | None = None) -> dict:  # fmt: skip
    """What a run is keyed by: settings, data and split, each hashed (and the glosses it answers among, when it
    learns from more; the validated run's plan, when it replays one)."""
    made = recipe.settings()
    if made["preprocess"].get("image_place") and not recipe.preprocess.for_parts(store.parts).image_place:
        del made["preprocess"]["image_place"]  # data with a body: the model is what it was without the switch
    settings = json.dumps({"framework": framework, **made, **({"answers": answers} if answers else {}),
                           **({"replay": replay} if replay else {})}, sort_keys=True, default=str)  # fmt: skip
    parts = {"settings": hashlib.sha256(settings.encode()).hexdigest()[:16], "data": store.fingerprint(),
             "split": split.fingerprint()}  # fmt: skip
    return {**parts, "id": hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:16],
            "detail": json.loads(settings)}  # fmt: skip


def read_run(out: str | os.PathLike) -> dict | None:
    path = Path(out) / RUN_NAME
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        return None


def _differences(old: dict, new: dict) -> str:
    """What changed between two fingerprints, in words."""
    changed = []
    if old.get("data") != new["data"]:
        changed.append("the data")
    if old.get("split") != new["split"]:
        changed.append("the split")
    a, b = old.get("detail", {}), new["detail"]

    def walk(x: object, y: object, where: str) -> None:
        if isinstance(x, dict) and isinstance(y, dict):
            for k in sorted(set(x) | set(y)):
                walk(x.get(k), y.get(k), f"{where}.{k}" if where else k)
        elif x != y:
            changed.append(f"{where.split('.')[-1]} {x} -> {y}")

    walk(a, b, "")
    return ", ".join(changed[:8]) or "the settings"


def check_run_folder(out: Path, fp: dict, force: bool) -> str:
    """`new`, `reuse` or `resume` for a run folder; a different run there is an error unless `force`."""
    old = read_run(out)
    if old is None:
        return "new"
    if old.get("fingerprint", {}).get("id") == fp["id"]:
        return "reuse" if old.get("status") == "finished" else "resume"
    if not force:
        raise RunConflict(f"{out} holds a run made differently ({_differences(old.get('fingerprint', {}), fp)}); "
                          f"use another --out, or --force to replace it")  # fmt: skip
    for name in RUN_FILES:
        p = out / name
        if p.is_dir():
            shutil.rmtree(p)
        elif p.exists():
            p.unlink()
    return "new"


def on_accelerator() -> bool:
    """Whether Lightning's "auto" accelerator trains a torch model on a GPU here (CUDA or Apple's MPS)."""
    import torch

    return torch.cuda.is_available() or torch.backends.mps.is_available()


def resolved(recipe: Recipe) -> Recipe:
    """`recipe` with its precision as this machine trains its model ("auto" resolved): what a run's fingerprint
    holds, so that a run trained in one arithmetic is neither reused nor resumed in the other."""
    return recipe.with_config(precision=resolve_precision(recipe.config.precision, recipe.model, on_accelerator()))


def _number(x: object) -> float:
    return float("nan") if x is None else float(x)  # type: ignore[arg-type]


def _result_from(run: dict) -> TrainResult:
    fields = {k: v for k, v in run.items() if k in TrainResult.__dataclass_fields__}
    fields["fingerprint"] = run.get("fingerprint", {}).get("id", "")
    return TrainResult(**fields)


def validation_probs(net: object, card: Card, framework: str, store: KeypointStore, clips: list) -> tuple[np.ndarray, np.ndarray]:
    """The model's own probabilities on `clips` and their targets."""
    from ..predict import Predictor

    predictor = Predictor(net, card, framework)
    index = {g: i for i, g in enumerate(card.labels)}
    probs = np.concatenate([predictor.predict_proba([store.read(c) for c in clips[i : i + 256]], calibrated=False)
                            for i in range(0, len(clips), 256)])  # fmt: skip
    return probs, np.array([index[c.gloss] for c in clips])


def train(
    data: str | os.PathLike | KeypointStore,
    out: str | os.PathLike,
    recipe: Recipe,
    framework: str = "torch",
    split: str | Split = "auto",
    where: list[str] | str | None = None,
    force: bool = False,
    log=print,
    extra_glosses: bool = False,
    replay: dict | None = None,
) -> TrainResult:
    """Train one model on a store (path or opened) and write a run folder; see the module docstring.

    `where` keeps the clips that match it. With `extra_glosses` the model also learns from the clips of the
    glosses `where` leaves out (all of `data`, split as a whole), which gives its shared layers more to learn
    from; the saved model answers only among the glosses `where` keeps (`models.keep_classes`), and its
    validation figures and calibration are on their clips.

    Raises `training.lightning.Interrupted` when a signal stopped training, after the best model so far has been
    saved as a usable run (the same call resumes it).

    With `config.devices`/`num_nodes` above 1 (PyTorch only) every process runs this; rank 0 alone checks and
    writes the run folder (split, history, checkpoint, card, run.json), the others wait for it to start the run,
    train their share and raise `SecondaryRank` when done.

    `replay` (internal: how a refit member trains) is a validated run's plan; the split's validation clips are then
    in its training side and nothing is validated (see `lightning.fit`)."""
    if framework not in FRAMEWORKS:
        raise ValueError(f"unknown framework {framework!r}; known: {', '.join(FRAMEWORKS)}")
    recipe = resolved(recipe)
    if framework == "keras":
        from .keras_train import check_config

        check_config(recipe.config)
    if framework == "keras" and recipe.model != "lstm":
        raise ValueError(f"the Keras baseline is the reference LSTM only; model {recipe.model!r} needs --framework torch")
    out = Path(out)
    if extra_glosses and framework != "torch":
        raise ValueError("extra glosses are for --framework torch")
    store, learn_from = answer_and_learn(open_store(data), where, extra_glosses)
    answers = None
    if learn_from is not None:
        answers, store = store.glosses, learn_from
        log(f"learning from {len(store)} clips of {len(store.glosses)} glosses of {store.root}; the model answers "
            f"among the {len(answers)} that {where} keeps")  # fmt: skip
    elif extra_glosses:
        log(f"no extra glosses: {where} keeps every gloss of {store.root}")
    labels = store.glosses
    if len(labels) < 2:
        raise ValueError(f"{store.root}: need at least two glosses to train a classifier, found {labels}")
    config: TrainConfig = recipe.config
    primary = ranks.is_primary()
    if framework == "keras" and (config.devices > 1 or config.num_nodes > 1 or not primary):
        raise ValueError("the Keras baseline trains in one process; --devices, --num-nodes and distributed launchers "
                         "are for --framework torch")  # fmt: skip
    if (config.ensemble > 1 or config.refit) and (framework != "torch" or config.devices > 1 or config.num_nodes > 1
                                                  or not primary):  # fmt: skip
        raise ValueError("an ensemble (or a refit) is trained member by member in one process with --framework torch; "
                         "train members on several devices with --seed N runs of their own")  # fmt: skip
    chosen = split if isinstance(split, Split) else make_split(store, split, config.seed)
    if answers and not replay and not any(c.gloss in answers for c in store.subset(chosen.val)):
        raise ValueError(f"{store.root}: the split {chosen.how} has no validation clip of the glosses the model "
                         f"answers among ({', '.join(answers[:5])}...), so nothing could choose or calibrate it")  # fmt: skip
    fp = fingerprint(framework, recipe, store, chosen, answers, replay)
    if primary:
        state = check_run_folder(out, fp, force)
    else:  # another process of a distributed run: rank 0 checks and prepares the folder, this one follows
        run = ranks.wait_for_run(lambda: read_run(out), fp["id"], str(out / RUN_NAME))
        state = "reuse" if run["status"] == "finished" else "resume" if run.get("resume") else "new"
    if state == "reuse":
        return _result_from({**read_run(out), "reused": True})  # type: ignore[dict-item]
    if primary:
        out.mkdir(parents=True, exist_ok=True)
        chosen.save(out / SPLIT_NAME)
    if config.ensemble > 1 or config.refit:
        return _train_ensemble(store, out, recipe, chosen, fp, where, log, answers, force)
    pre = recipe.preprocess.for_parts(store.parts)
    train_clips, val_clips = store.subset(chosen.train), store.subset(chosen.val)
    if not train_clips or not (val_clips or replay):
        raise ValueError(f"{store.root}: the split {chosen.how} leaves {len(train_clips)} training and "
                         f"{len(val_clips)} validation clips; both must have some")  # fmt: skip
    frames = [c.frames for c in train_clips]
    if pre.max_frames is None and pre.is_reference:  # the reference pads to the longest training sequence
        # (a refit to its validated twin's: the models it is averaged with read clips as that one does)
        pre = type(pre)(**{**pre.to_dict(), "max_frames": (replay or {}).get("max_frames") or max(frames)})
    index = {g: i for i, g in enumerate(labels)}
    targets = lambda clips: np.array([index[c.gloss] for c in clips], dtype=np.int64)
    opts = {"num_classes": len(labels), "input_size": pre.num_features, **recipe.model_options}
    model_config = make_config(recipe.model, **opts)
    if primary:
        atomic_write_json(out / RUN_NAME, {"status": "running", "resume": state == "resume", "fingerprint": fp,
                                           "run": str(out)})  # fmt: skip
        if state == "resume":
            log(f"resuming the interrupted run in {out}")
    t0 = time.perf_counter()
    train_xy, val_xy = (train_clips, targets(train_clips)), (val_clips, targets(val_clips))
    if framework == "torch":
        from .lightning import fit, seed

        fixed = pre.max_frames if getattr(model_config, "read", "") == "final" else None
        seed(config.seed)  # the initial weights are the seed's, not whatever the random state was
        net, history, summary = fit(build_model(recipe.model, model_config), store, train_xy, val_xy, config, out, pre,
                                    recipe.augment, pre.padding, fixed, resume=state == "resume", replay=replay)  # fmt: skip
        if summary["rank"] != 0:
            raise SecondaryRank(summary["rank"])
        ckpt = out / TORCH_NAME
    else:
        from .keras_train import fit as keras_fit

        net, history, summary = keras_fit(model_config, store, train_xy, val_xy, config, out, pre, pre.max_frames,
                                          pre.padding, recipe.augment, resume=state == "resume")  # fmt: skip
        ckpt = out / KERAS_NAME
    seconds = time.perf_counter() - t0
    best = history.best
    interrupted = summary.get("signal") is not None
    learnt = {}
    if answers:  # the answers' rows of the output layer; validation on their clips
        net, model_config = keep_classes(net, recipe.model, model_config, [labels.index(g) for g in answers])
        learnt = {"learnt_glosses": len(labels), "val_acc_all_glosses": best.get("val_acc")}
        kept = set(answers)
        labels, val_clips = answers, [c for c in val_clips if c.gloss in kept]
    card = Card(
        framework=framework, model=recipe.model, model_config=asdict(model_config), labels=labels,
        preprocess=pre.to_dict(),
        training={**config.to_dict(), **summary, "recipe": recipe.name, "split": chosen.how, "data": str(store.root),
                  "where": where, "val_acc": best.get("val_acc"), "frames_median": float(statistics.median(frames)),
                  "frames_max": max(frames), "augment": recipe.augment.to_dict() if recipe.augment else None,
                  "status": "interrupted" if interrupted else "finished", **learnt},
    )  # fmt: skip
    if replay:  # nothing left to validate or calibrate on: the ensemble it joins is calibrated
        card.training.update(val_acc=None, refit_of=replay)
    else:
        probs, y = validation_probs(net, card, framework, store, val_clips)
        card.calibration = calibrate(probs, y).to_dict()
        if answers:
            card.training["val_acc"] = float((probs.argmax(1) == y).mean())
    (save_torch if framework == "torch" else save_keras)(ckpt, net, card)
    result = TrainResult(
        run=str(out), checkpoint=str(ckpt), framework=framework, model=recipe.model, parameters=count_parameters(net),
        epochs=summary["epochs"], best_epoch=summary["best_epoch"], seconds_per_epoch=summary["seconds_per_epoch"],
        seconds=seconds, val_acc=_number(card.training.get("val_acc")), split=chosen.how,
        stopped=summary["stopped"], status=card.training["status"], fingerprint=fp["id"],
        threads=summary.get("threads", {}), plan={**summary.get("plan", {}), "max_frames": pre.max_frames},
        precision=config.precision,
    )  # fmt: skip
    atomic_write_json(out / RUN_NAME, {**asdict(result), "fingerprint": fp, "card": asdict(card)})
    if interrupted:
        kept = (f"the model of the last whole epoch ({result.epochs} of a refit's {replay['epochs']})" if replay else
                f"the best model so far (epoch {result.best_epoch}, val accuracy {result.val_acc:.1%})")  # fmt: skip
        raise Interrupted(summary["signal"], f"training stopped by {summary['stopped']} after {result.epochs} epochs; "
                          f"{kept} is saved in {ckpt}. Run the same command again to resume.")  # fmt: skip
    return result


def _train_ensemble(store: KeypointStore, out: Path, recipe: Recipe, chosen: Split, fp: dict, where: object,
                    log, answers: list[str] | None = None, force: bool = False) -> TrainResult:  # fmt: skip
    """`config.ensemble` models trained one after another with seeds seed, seed + 1, ... on the same split, each a
    run of its own in OUT/members/seed-<N> (so an interrupted ensemble resumes where it stopped), then one
    checkpoint whose prediction is their averaged probabilities, calibrated on validation as a single model is.

    With `config.refit` each of them is followed by a refit (OUT/members/refit-seed-<N + size>): a model of the
    next free seed trained on the training and the validation clips together, for the epochs and with the
    learning rates that validation chose for it, and the checkpoint averages all of them. The validated models
    alone are saved as OUT/validated.pt: the validation figures, the calibration (temperature and "unknown"
    threshold) and `evaluate --split val` are theirs, since the refits saw the validation clips."""
    from ..checkpoint import load_torch
    from ..models.ensemble import Ensemble

    config = recipe.config
    atomic_write_json(out / RUN_NAME, {"status": "running", "fingerprint": fp, "run": str(out)})
    t0 = time.perf_counter()
    member_recipe = lambda seed: recipe.with_config(seed=seed, ensemble=1, refit=False)
    both = Split(sorted(chosen.train + chosen.val), [], chosen.test, f"{chosen.how}, validation clips trained on")
    # a time cap bounds each refit too, in proportion to its clips (an epoch of all of them against one of the
    # training clips), and the refit compresses its plan to end within it, decay included (fit's replay)
    cap = config.max_minutes * len(both.train) / len(chosen.train) if config.max_minutes else None
    refit_recipe = lambda seed: recipe.with_config(seed=seed, ensemble=1, refit=False, max_minutes=cap)
    # `force` replaces a member made differently (one left by an earlier signrec in an interrupted ensemble) as it
    # does a whole run; members made alike are reused or resumed all the same
    learn = {"where": where if answers else None, "log": log, "extra_glosses": bool(answers), "force": force}
    results, refits = [], []
    for i in range(config.ensemble):
        seed = config.seed + i
        log(f"ensemble member {i + 1} of {config.ensemble} (seed {seed}) in {member_folder(out, seed)}")
        r = train(store, member_folder(out, seed), member_recipe(seed), "torch", chosen, **learn)  # type: ignore[arg-type]
        log(r.line())
        results.append(r)
        if config.refit:
            if not r.plan.get("epochs"):
                raise RunConflict(f"{r.run} was trained by an earlier signrec, which did not record how long validation "
                                  f"let it train, so it cannot be refitted; use --force to train it again")  # fmt: skip
            twin, plan = seed + config.ensemble, refit_plan(r, config.refit_whole)
            within = f", within {cap:.1f} min" if cap else ""
            log(f"refit of seed {seed} on its training and validation clips (seed {twin}, {plan['epochs']} epochs"
                f"{within}) in {member_folder(out, twin, refit=True)}")  # fmt: skip
            refits.append(train(store, member_folder(out, twin, refit=True), refit_recipe(twin), "torch", both,
                                replay=plan, **learn))  # type: ignore[arg-type]
            log(refits[-1].line())
    validated = [load_torch(r.checkpoint) for r in results]
    first = validated[0][1]
    combine = lambda nets: nets[0] if len(nets) == 1 else Ensemble.of(nets, first.model, first.model_config)
    net = combine([n for n, _ in validated] + [load_torch(r.checkpoint)[0] for r in refits])
    members = [{"seed": config.seed + i, "run": r.run, "val_acc": r.val_acc, "epochs": r.epochs,
                "best_epoch": r.best_epoch} for i, r in enumerate(results)]  # fmt: skip
    members += [{"seed": config.seed + config.ensemble + i, "run": r.run, "val_acc": None, "epochs": r.epochs,
                 "best_epoch": r.best_epoch, "refit": True} for i, r in enumerate(refits)]  # fmt: skip
    own = {k: v for k, v in first.training.items() if k != "val_acc_all_glosses"}  # a member's, not the ensemble's
    card = Card(framework="torch", model="ensemble", model_config=asdict(net.config), labels=first.labels,
                preprocess=first.preprocess,
                training={**own, **config.to_dict(), "where": where, "members": members, "status": "finished"})  # fmt: skip
    known = set(first.labels)
    val = [c for c in store.subset(chosen.val) if c.gloss in known]
    checked = combine([n for n, _ in validated])  # what validation may judge: the models that never saw it
    checked_card = replace(card, model=first.model if len(validated) == 1 else "ensemble",
                           model_config=asdict(checked.config),
                           training={**card.training, "members": members[: len(results)]})  # fmt: skip
    probs, y = validation_probs(checked, checked_card, "torch", store, val)
    card.training["val_acc"] = checked_card.training["val_acc"] = float((probs.argmax(1) == y).mean())
    card.calibration = checked_card.calibration = calibrate(probs, y).to_dict()
    if refits:  # a temperature and threshold fitted on the validated models alone (the refits saw these clips);
        # the average is a little less sure of itself, so its answers above the threshold are if anything righter
        card.calibration = {**checked_card.calibration, "fitted_on": VALIDATED_NAME}
    if refits:
        card.training["validated"] = VALIDATED_NAME
        save_torch(out / VALIDATED_NAME, checked, checked_card)
    ckpt = out / TORCH_NAME
    save_torch(ckpt, net, card)
    everyone = results + refits
    result = TrainResult(
        run=str(out), checkpoint=str(ckpt), framework="torch", model=card.model, parameters=count_parameters(net),
        epochs=sum(r.epochs for r in everyone), best_epoch=0,
        seconds_per_epoch=statistics.mean(r.seconds_per_epoch for r in everyone), seconds=time.perf_counter() - t0,
        val_acc=card.training["val_acc"], split=chosen.how,
        stopped="validation (each validated member)" + "".join(f"; refit: {r.stopped}" for r in refits),
        fingerprint=fp["id"], threads=results[0].threads, members=members, precision=results[0].precision,
    )  # fmt: skip
    atomic_write_json(out / RUN_NAME, {**asdict(result), "fingerprint": fp, "card": asdict(card)})
    return result
