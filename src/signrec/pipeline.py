"""Jobs made of several stages: `run` (data -> keypoints -> models -> one report) and `compare` (both reference
models on one split, side by side).

A job opens its keypoint store once and hands it down: the split, every training run and every evaluation read
the same store. Each stage is keyed by what made it, so a rerun reuses or resumes what is the same and refuses,
with a clear message, what would silently mix two different jobs.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from .evaluate import Evaluation, evaluate_run, write_report
from .io import write_csv_atomic
from .presets import Recipe, best, reference
from .splits import SPLIT_NAME, Split, answer_and_learn, filter_store, make_split
from .store import KeypointStore, NotAStoreError, open_or_import, open_store
from .training import ranks
from .training.config import (
    MIXUP_ALPHA,
    MIXUP_CAPPED_MAX_CLIPS,
    MIXUP_LARGE_SET_MINUTES,
    MIXUP_MAX_CLIPS_A_SIGN,
    REFIT_LARGE_SET_MINUTES,
    SMALL_SET_ENSEMBLE,
    SMALL_SET_MAX_CLIPS,
    SMALL_SET_MINUTES,
    TrainConfig,
)
from .training.runner import RunConflict, TrainResult, train
from .training.stop import SecondaryRank

RUN_MODELS = ("reference-torch", "reference-keras", "best")


@dataclass
class Comparison:
    results: list[TrainResult]
    evaluations: list[Evaluation]
    table: str
    report: str


def markdown_table(rows: list[dict], fields: list[str]) -> str:
    lines = ["| " + " | ".join(fields) + " |", "|" + "---|" * len(fields)]
    return "\n".join(lines + ["| " + " | ".join(str(r[k]) for k in fields) + " |" for r in rows])


def job_split(store: KeypointStore, out: Path, spec: str, seed: int, force: bool,
              write: bool = True) -> tuple[Split, str]:  # fmt: skip
    """The job's one split, saved as OUT/split.json (unless not `write`: another process of a distributed run);
    an existing different one is an error unless `force`."""
    split = make_split(store, spec, seed)
    path = out / SPLIT_NAME
    if path.exists():
        old = Split.load(path)
        if old.fingerprint() == split.fingerprint():
            return split, "reused"
        if not force:
            raise RunConflict(f"{out} holds a job with another split ({old.how}; now {split.how}, or other data); "
                              f"use another --out, or --force to replace it")  # fmt: skip
    if write:
        split.save(path)
    return split, "done"


def _row(name: str, recipe: Recipe, r: TrainResult, ev: Evaluation) -> dict:
    side = "test" if ev.split == "test" else "val"
    return {"model": name, "recipe": recipe.name, "framework": r.framework, "parameters": f"{r.parameters:,}",
            "val_acc": f"{r.val_acc:.3f}", f"{side}_top1": f"{ev.metrics.top1:.3f}",
            f"{side}_top{ev.metrics.k}": f"{ev.metrics.top5:.3f}", "epochs": r.epochs, "best_epoch": _best_epoch(r),
            "stopped": r.stopped or "-", "mixup": f"{recipe.config.mixup:g}" if recipe.config.mixup else "-",
            "train_precision": r.precision, "train_seconds": f"{r.seconds:.1f}"}  # fmt: skip


def _best_epoch(r: TrainResult) -> int | str:
    """The kept epoch; an ensemble's is each validated member's (a refit keeps the last epoch of its plan)."""
    if not r.members:
        return r.best_epoch
    return ", ".join(str(m["best_epoch"]) for m in r.members if not m.get("refit"))


def _refit_note(name: str, r: TrainResult) -> str:
    refits = [m for m in r.members if m.get("refit")]
    if not refits:
        return ""
    return (f"\n\n`{name}` averages {len(r.members) - len(refits)} validated model(s) and {len(refits)} refit(s) on "
            f"the training and validation clips, for the epochs validation chose (`runs/{name}/members/`). Its "
            f"val_acc and any validation figures are of the validated model(s) alone (`runs/{name}/validated.pt`), "
            f"which never saw those clips; test figures are of the whole model (`runs/{name}/model.pt`).")


def _train_and_evaluate(store: KeypointStore, out: Path, jobs: list[tuple[str, Recipe, str]], split: Split,
                        force: bool, log, name_recipes: bool = True, learn_from: KeypointStore | None = None,
                        where: list[str] | None = None) -> tuple[list[dict], list[Evaluation], list[TrainResult], dict]:  # fmt: skip
    """Train and evaluate each job on `store`; with `learn_from` (the whole data, of which `store` is the part
    `where` keeps) the models also learn from the other glosses and answer among `store`'s."""
    stages, rows, evaluations, results = {}, [], [], []
    fit = {"data": learn_from, "where": where, "extra_glosses": True} if learn_from is not None else {"data": store}
    side = split.eval_side
    primary = ranks.is_primary()
    for name, recipe, framework in jobs:
        run_dir = out / "runs" / name
        if not primary:  # another process of distributed training: it joins the torch runs, nothing else
            if framework == "torch":
                train(out=run_dir, recipe=recipe, framework=framework, split=split, force=force, log=log, **fit)
            continue
        log(f"training {name} ({recipe.name}, {framework})")
        result = train(out=run_dir, recipe=recipe, framework=framework, split=split, force=force, log=log, **fit)
        stages[f"train {name}"] = "reused" if result.reused else "done"
        if not result.reused:
            log(result.line())
        ev = evaluate_run(run_dir, store, side)
        stages[f"evaluate {name}"] = "done"
        if name_recipes:  # the report names the recipe, not only the architecture
            ev.model = f"{name}: {recipe.name}"
        evaluations.append(ev)
        results.append(result)
        rows.append(_row(name, recipe, result, ev))
    if not primary:
        raise SecondaryRank(ranks.env_rank())
    return rows, evaluations, results, stages


def describe_job(store: KeypointStore, split: Split, where: list[str] | None, command: str,
                 learn_from: KeypointStore | None = None) -> str:  # fmt: skip
    """The report's opening: which data, which clips, which split, which command."""
    lines = [f"- **Data:** `{store.root}`: {len(store)} clips of {len(store.glosses)} glosses"
             + (f" from {len(store.signers)} signers" if store.signers else "")
             + f"; keypoint parts: {'+'.join(store.parts)}."]  # fmt: skip
    if where:
        lines.append(f"- **Filter:** {', '.join(where)}.")
    if learn_from is not None:
        lines.append(f"- **Extra glosses:** the models learnt from {len(learn_from)} clips of "
                     f"{len(learn_from.glosses)} glosses (the filter's clips and every clip of the glosses it leaves "
                     f"out) and answer among the {len(store.glosses)} of the filter; the figures are on the "
                     f"filter's clips.")  # fmt: skip
    split_of = store if learn_from is None else learn_from
    lines.append("- **Split:** " + split.describe(split_of).replace("\n", "<br>"))
    if not split.test:
        lines.append("- **No test split** in this data: the figures below are on the **validation** clips, which "
                     "also chose the model (early stopping), so they are optimistic.")  # fmt: skip
    if command:
        lines.append(f"- **Command:** `{command}`")
    return "\n".join(lines)


def compare(
    data: str | os.PathLike | KeypointStore,
    out: str | os.PathLike,
    config: TrainConfig | None = None,
    activation: str = "tanh",
    frameworks: tuple[str, ...] = ("torch", "keras"),
    split: str = "auto",
    where: list[str] | None = None,
    force: bool = False,
    command: str = "",
    log=print,
) -> Comparison:
    """Train the PyTorch and the Keras reference LSTM on the same split; write comparison.csv and report.md."""
    out = Path(out)
    store = filter_store(open_store(data), where)
    recipe = reference(activation)
    if config is not None:
        recipe = Recipe(recipe.name, recipe.model, recipe.model_options, recipe.preprocess, None, config)
    out.mkdir(parents=True, exist_ok=True)
    chosen, _ = job_split(store, out, split, recipe.config.seed, force)
    jobs = [(fw, recipe, fw) for fw in frameworks]
    rows, evaluations, results, _ = _train_and_evaluate(store, out, jobs, chosen, force, log, name_recipes=False)
    fields = list(rows[0])
    write_csv_atomic(out / "comparison.csv", rows, fields)
    table = markdown_table(rows, fields)
    write_report(out / "report.md", evaluations, title=f"PyTorch vs Keras reference LSTM on {store.root.name}",
                 extra="## Training\n\n" + table, intro=describe_job(store, chosen, where, command))  # fmt: skip
    return Comparison(results, evaluations, table, str(out / "report.md"))


# --- the whole job ---------------------------------------------------------------------------------------------


@dataclass
class RunSummary:
    out: str
    report: str
    stages: dict[str, str]  # stage -> "done" or "reused"
    table: str
    evaluations: list[Evaluation] = field(default_factory=list)


def _store_of_rank_zero(sources: list[Path], out: Path, aliases: dict[str, str] | None) -> KeypointStore:
    """The store `open_or_import` chose on rank 0, opened without importing anything."""
    if len(sources) == 1 and not aliases:
        try:
            return open_store(sources[0])
        except NotAStoreError:
            pass
    return open_store(out / "keypoints")


def recipes_for(models: tuple[str, ...], seed: int, progress: bool, max_epochs: int | None,
                max_minutes: float | None, threads: int | None, devices: int = 1, strategy: str = "auto",
                num_nodes: int = 1, ensemble: int = 1, refit: bool = False,
                mixup: float = 0.0, precision: str | None = None) -> list[tuple[str, Recipe, str]]:  # fmt: skip
    """The (name, recipe, framework) of each model `run` trains, with the job's caps applied; the PyTorch models
    train on `devices` (the Keras baseline always in one process); `ensemble` members for the best model, each
    with a refit on training and validation clips when `refit`, trained with `mixup` (0: without) and in
    `precision` (None: the recipe's; the reference models always in float32, as the Keras baseline)."""
    unknown = [m for m in models if m not in RUN_MODELS]
    if unknown:
        raise ValueError(f"unknown models {unknown}; known: {', '.join(RUN_MODELS)}")
    made = {"reference-torch": (reference("tanh"), "torch"), "reference-keras": (reference("tanh"), "keras"),
            "best": (best().with_config(ensemble=ensemble, refit=refit, mixup=mixup,
                                        **({"precision": precision} if precision else {})), "torch")}  # fmt: skip
    caps = {k: v for k, v in (("max_epochs", max_epochs), ("max_minutes", max_minutes)) if v}
    placed = {"devices": devices, "strategy": strategy, "num_nodes": num_nodes}
    return [(m, made[m][0].with_config(seed=seed, progress=progress, threads=threads, **caps,
                                       **(placed if made[m][1] == "torch" else {})), made[m][1])
            for m in models]  # fmt: skip


def _small_set_defaults(jobs: list[tuple[str, Recipe, str]], store: KeypointStore, train: list[str],
                        refit: bool | None, mixup: float | None, one_process: bool, log,
                        ensemble: int | None) -> list[tuple[str, Recipe, str]]:  # fmt: skip
    """`jobs` with the best model's refit, mixup and ensemble as the command set them, or, where it left them to
    signrec (None), decided from the `train` clips of `store`: the refit for at most SMALL_SET_MAX_CLIPS clips in
    `one_process`, mixup for at most MIXUP_MAX_CLIPS_A_SIGN a sign and MIXUP_CAPPED_MAX_CLIPS clips, and with it on
    more than SMALL_SET_MAX_CLIPS clips the refit too (in `one_process`) and a cap on the validated model's training
    unless the command gave one: REFIT_LARGE_SET_MINUTES with a refit, MIXUP_LARGE_SET_MINUTES without; on at most
    SMALL_SET_MAX_CLIPS clips with both the refit and the mixup chosen here, SMALL_SET_ENSEMBLE validated models and
    their refits, capped at SMALL_SET_MINUTES unless the command gave a cap (the reasons: training/config.py).
    Every process of a run decides alike; rank 0 says what it chose (`log`; None on the others)."""
    if not any(name == "best" for name, _, _ in jobs):
        return jobs
    small = len(train) <= SMALL_SET_MAX_CLIPS
    a_sign = len(train) / max(1, len({store.get(p).gloss for p in train}))
    chosen = mixup is None
    capped_range = len(train) <= MIXUP_CAPPED_MAX_CLIPS
    mixup = (MIXUP_ALPHA if a_sign <= MIXUP_MAX_CLIPS_A_SIGN and capped_range else 0.0) if chosen else mixup
    capped = bool(chosen and mixup and not small)  # a larger set with the mixup chosen here: a pair inside the hour
    refit = (small or capped) and one_process if refit is None else refit
    more_pairs = bool(ensemble is None and chosen and mixup and small and refit and one_process)
    given = next(r.config.max_minutes for n, r, _ in jobs if n == "best")
    if given is not None or not (capped or more_pairs):
        minutes = given
    else:  # a pair (larger set) or pairs (small set) inside the hour
        minutes = SMALL_SET_MINUTES if more_pairs else REFIT_LARGE_SET_MINUTES if refit else MIXUP_LARGE_SET_MINUTES
    chosen_ensemble = {"ensemble": SMALL_SET_ENSEMBLE} if more_pairs else {}
    if log is not None:
        _say_defaults(log, len(train), a_sign, refit, mixup, one_process, more_pairs, minutes, given)
    return [(n, r.with_config(refit=refit, mixup=mixup, max_minutes=minutes, **chosen_ensemble) if n == "best" else r,
             fw) for n, r, fw in jobs]  # fmt: skip


def _say_defaults(log, clips: int, a_sign: float, refit: bool, mixup: float, one_process: bool, more_pairs: bool,
                  minutes: float | None, given: float | None) -> None:  # fmt: skip
    """What `_small_set_defaults` chose for the best model on `clips` training clips (`a_sign` a sign), and why."""
    log(f"best model: {'a refit on training + validation clips too' if refit else 'no refit'}, "
        f"{f'mixup {mixup:g}' if mixup else 'no mixup'} ({clips} training clips, "
        f"{'at most' if clips <= SMALL_SET_MAX_CLIPS else 'more than'} {SMALL_SET_MAX_CLIPS}{'' if one_process else ', several processes'}"
        f"; {a_sign:.1f} a sign, {'at most' if a_sign <= MIXUP_MAX_CLIPS_A_SIGN else 'more than'} "
        f"{MIXUP_MAX_CLIPS_A_SIGN}{'' if clips <= MIXUP_CAPPED_MAX_CLIPS else f'; more than {MIXUP_CAPPED_MAX_CLIPS} clips'}"
        f"; --refit/--no-refit and --mixup decide)")  # fmt: skip
    if more_pairs:
        cap = (f"each validated model's training capped at {minutes:g} min (--max-minutes)" if given is not None
               else f"each validated model's training capped at {minutes:g} min and its refit's in proportion to "
               f"its clips, so that the {2 * SMALL_SET_ENSEMBLE} end within the hour on a slow day too; the "
               f"rate's decay starts in time to end by then (--max-minutes sets another cap)")  # fmt: skip
        log(f"best model: {SMALL_SET_ENSEMBLE} validated models and their refits, all averaged (--ensemble 1: one "
            f"pair; --ensemble N: N pairs, with no cap unless --max-minutes gives one), {cap}")  # fmt: skip
    elif minutes != given:
        pair = (f" and its refit as many epochs, capped in proportion to its clips, so that the two end within "
                f"the hour (--no-refit: one model, capped at {MIXUP_LARGE_SET_MINUTES:g} min)" if refit else "")  # fmt: skip
        log(f"best model: training capped at {minutes:g} min a model{pair}, as mixup on a set this size trains "
            f"2-3 times the epochs; the rate's decay starts in time to end by then (--max-minutes sets another "
            f"cap, --mixup 0 trains without mixup or cap)")  # fmt: skip


def run(
    out: str | os.PathLike,
    videos: str | os.PathLike | None = None,
    keypoints: list[str | os.PathLike] | str | os.PathLike | None = None,
    glosses: list[str] | None = None,
    top: int | None = None,
    metadata: str | os.PathLike | None = None,
    local: str | os.PathLike | None = None,
    models: tuple[str, ...] = RUN_MODELS,
    max_epochs: int | None = None,
    max_minutes: float | None = None,
    ensemble: int | None = None,
    refit: bool | None = None,
    workers: int | None = None,
    seed: int = 0,
    split: str = "auto",
    where: list[str] | None = None,
    aliases: dict[str, str] | None = None,
    threads: int | None = None,
    force: bool = False,
    progress: bool = True,
    command: str = "",
    log=print,
    scheduler: str | None = None,
    devices: int = 1,
    strategy: str = "auto",
    num_nodes: int = 1,
    extra_glosses: bool = False,
    mixup: float | None = None,
    precision: str | None = None,
) -> RunSummary:
    """From glosses (WLASL), a folder of clips or folders of keypoints to one report folder.

    Stages, each reusing what an earlier run of the same command produced: data (WLASL fetch into OUT/videos),
    keypoints (extraction or import into OUT/keypoints), split (OUT/split.json, shared by every model), one
    training run per model in OUT/runs/<model>, evaluation on the test split (the validation split when the
    data has no test split, and the report says so), and OUT/report.md. Interrupted, it finishes the job when
    run again; run again with other settings, it stops unless `force`.

    `scheduler` extracts on Dask (see `signrec.extract`); `devices`/`strategy`/`num_nodes` train the PyTorch
    models on several devices. With `strategy="ddp"` on one machine Lightning starts the other processes as copies
    of this command: they skip the data stages, join each PyTorch training run and leave; rank 0 does the rest.
    Under torchrun or srun (several machines), extract and train with their own commands instead.

    `extra_glosses` (with `where`): the models also learn from the glosses `where` leaves out, one split over all
    the data, and answer among the ones it keeps (see `training.runner.train`); the figures are on those.

    `refit`: once validation has chosen how long the best model trains, a second one trains on the training and
    validation clips together for as long, and the two answer together (see `training.runner`); the report's
    validation figures are of the validated model(s) alone. It about doubles the best model's training time; by
    default (None) it is on when one process trains and the split trains on at most SMALL_SET_MAX_CLIPS clips, or
    on more with the mixup chosen by default (below).

    `mixup`: the best model trains with mixup of this Beta alpha (`TrainConfig.mixup`; 0: without); by default
    (None) MIXUP_ALPHA when the split trains on at most MIXUP_MAX_CLIPS_A_SIGN clips a sign on average and at most
    MIXUP_CAPPED_MAX_CLIPS clips, else without. On a split of more than SMALL_SET_MAX_CLIPS training clips the
    mixup chosen so comes with a cap on the validated model's training, unless `max_minutes` sets one (mixup trains
    2-3 times the epochs; the plateau schedule starts its decay in time to end within it): REFIT_LARGE_SET_MINUTES
    with the refit (its default there in one process), so that it and the refit end within the hour, else
    MIXUP_LARGE_SET_MINUTES.

    `ensemble`: the best model's validated models (`TrainConfig.ensemble`), each with its refit when there is one;
    by default (None) SMALL_SET_ENSEMBLE where the split trains on at most SMALL_SET_MAX_CLIPS clips and both the
    refit and the mixup chosen by default are on, each validated model's training then capped at SMALL_SET_MINUTES
    unless `max_minutes` sets a cap, so that they end within the hour; else 1.

    `precision`: the best model's arithmetic in training (`TrainConfig.precision`; None: its recipe's, "auto").
    """
    from . import wlasl
    from .extract import extract

    out = Path(out)
    sources = [Path(k) for k in ([keypoints] if isinstance(keypoints, (str, os.PathLike)) else keypoints or [])]
    if sum(x is not None for x in (videos,)) + bool(sources) + (glosses is not None or top is not None) != 1:
        raise ValueError("give exactly one of: --glosses/--top (WLASL), --videos DIR, --keypoints DIR")
    if ranks.launched_externally():
        raise ValueError("signrec run starts its own training processes (--devices N --strategy ddp on one machine); "
                         "under torchrun or srun, extract with `signrec extract` and train with `signrec train` "
                         "(docs/cluster.md)")  # fmt: skip
    jobs = recipes_for(models, seed, progress, max_epochs, max_minutes, threads, devices, strategy, num_nodes,
                       1 if ensemble is None else ensemble, bool(refit), mixup or 0.0, precision)  # fmt: skip
    keras = [name for name, _, framework in jobs if framework == "keras"]
    if extra_glosses and keras:
        raise ValueError(f"extra glosses are for the PyTorch models; {', '.join(keras)} is Keras: choose "
                         f"--models without it (e.g. --models best)")  # fmt: skip
    stages: dict[str, str] = {}
    if not ranks.is_primary():  # a training process Lightning started: rank 0 has made the data already
        store = _store_of_rank_zero(sources, out, aliases) if sources else open_store(out / "keypoints")
        store, learn_from = answer_and_learn(store, where, extra_glosses)
        learning = store if learn_from is None else learn_from  # the clips the split deals out
        chosen, _ = job_split(learning, out, split, seed, force, write=False)
        jobs = _small_set_defaults(jobs, learning, chosen.train, refit, mixup,
                                   devices == 1 and num_nodes == 1, None, ensemble)
        _train_and_evaluate(store, out, jobs, chosen, force, log, learn_from=learn_from, where=where)  # raises SecondaryRank
    out.mkdir(parents=True, exist_ok=True)
    if glosses is not None or top is not None:
        instances = wlasl.select(wlasl.load_metadata(metadata or wlasl.default_metadata()), glosses, top)
        fetched = wlasl.fetch(instances, out / "videos", local=local, progress=progress)
        log(fetched.report())
        stages["data"] = "reused" if fetched.ok == 0 and fetched.skipped else "done"
        videos = out / "videos"
    if videos is not None:
        summary = extract(videos, out / "keypoints", workers=workers, progress=progress, scheduler=scheduler,
                          metadata=metadata if glosses is None and top is None else None)  # fmt: skip
        log(summary.report())
        stages["keypoints"] = "reused" if summary.done == 0 else "done"
        store = open_store(out / "keypoints")
    else:
        store, stages["keypoints"] = open_or_import(sources, out / "keypoints", aliases, progress, log)
    store, learn_from = answer_and_learn(store, where, extra_glosses)
    learning = store if learn_from is None else learn_from  # the clips the split deals out
    chosen, stages["split"] = job_split(learning, out, split, seed, force)
    log(chosen.describe(learning))
    jobs = _small_set_defaults(jobs, learning, chosen.train, refit, mixup,
                               devices == 1 and num_nodes == 1, log, ensemble)
    rows, evaluations, results, trained = _train_and_evaluate(store, out, jobs, chosen, force, log,
                                                              learn_from=learn_from, where=where)  # fmt: skip
    stages.update(trained)
    fields = list(dict.fromkeys(k for r in rows for k in r))
    write_csv_atomic(out / "comparison.csv", rows, fields)
    table = markdown_table([{k: r.get(k, "") for k in fields} for r in rows], fields)
    write_report(out / "report.md", evaluations, title=f"signrec run on {store.root.name}",
                 intro=describe_job(store, chosen, where, command, learn_from),
                 extra="## Models\n\n" + table + "\n\nCheckpoints: `runs/<model>/model.pt` or `model.keras`."
                 + "".join(_refit_note(name, r) for (name, _, _), r in zip(jobs, results, strict=True)))  # fmt: skip
    stages["report"] = "done"
    return RunSummary(str(out), str(out / "report.md"), stages, table, evaluations)
