"""Evaluation: metrics (scikit-learn), confusion matrices and training curves (matplotlib), Markdown reports.

Accuracy is reported two ways, because papers mix them: *per instance* (share of clips right) and *per gloss*
(the mean over glosses of each gloss's accuracy, so rare glosses count as much as common ones). A report always
says which clips were scored (data, split side, filter), whether they are test or validation clips, and warns
when any of them were in the model's training split.
"""

from __future__ import annotations

import os
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from .calibration import expected_calibration_error, with_temperature
from .io import atomic_write_json, count, read_csv_rows, write_csv_atomic
from .store import KeypointStore, keypoints_digest, open_or_import, open_store

if TYPE_CHECKING:
    from .predict import Predictor

BOOTSTRAP_SAMPLES = 2000


@dataclass
class Metrics:
    n: int
    top1: float
    top5: float
    top1_per_gloss: float
    top5_per_gloss: float
    top1_ci: tuple[float, float]
    k: int  # the "5" of top-5, smaller when there are fewer glosses
    per_gloss: list[dict] = field(default_factory=list)  # gloss, precision, recall, f1, support
    confusion: list[list[int]] = field(default_factory=list)
    ece: float = float("nan")  # expected calibration error of the probabilities scored
    ece_uncalibrated: float = float("nan")  # the same before temperature scaling
    threshold: float = 0.0  # the model's "unknown" threshold
    coverage: float = 1.0  # share of clips answered at that threshold
    answered_top1: float = float("nan")  # top-1 among the answered clips


def topk_hits(probs: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """(n,) bool: whether the true label is among the k most probable."""
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return (top == y[:, None]).any(axis=1)


SIGNER_MIN_CLIPS = 5  # a person's figures on fewer clips are a coin, not a figure: listed, not tabled
NO_SIGNER = "(no signer)"  # the clips whose signer is not known, together: not a person


def per_signer(signers: list[str], probs: np.ndarray, y: np.ndarray, k: int = 5) -> list[dict]:
    """Top-1 and top-k of each person's clips (the clips without a signer together, as NO_SIGNER), the lowest top-1
    first (the most clips first among equals)."""
    hits1, hitsk = topk_hits(probs, y, 1), topk_hits(probs, y, k)
    people: dict[str, list[int]] = {}
    for i, s in enumerate(signers):
        people.setdefault(s or NO_SIGNER, []).append(i)
    rows = [{"signer": s, "clips": len(idx), "top1": float(hits1[idx].mean()), "topk": float(hitsk[idx].mean())}
            for s, idx in people.items()]  # fmt: skip
    return sorted(rows, key=lambda r: (r["top1"], -r["clips"], r["signer"]))


def per_gloss_mean(hits: np.ndarray, y: np.ndarray) -> float:
    """Mean over the glosses present in `y` of each gloss's share of hits."""
    classes = np.unique(y)
    return float(np.mean([hits[y == c].mean() for c in classes])) if len(classes) else float("nan")


def bootstrap_ci(hits: np.ndarray, samples: int = BOOTSTRAP_SAMPLES, seed: int = 0, level: float = 0.95) -> tuple[float, float]:
    """Percentile bootstrap interval for the mean of `hits` (resampling test clips with replacement)."""
    if len(hits) == 0:
        return (float("nan"), float("nan"))
    rng = np.random.default_rng(seed)
    means = hits[rng.integers(0, len(hits), size=(samples, len(hits)))].mean(axis=1)
    lo, hi = np.quantile(means, [(1 - level) / 2, 1 - (1 - level) / 2])
    return float(lo), float(hi)


def compute_metrics(probs: np.ndarray, y: np.ndarray, labels: list[str]) -> Metrics:
    """All metrics for `(n, classes)` probabilities against integer labels `y`."""
    from sklearn.metrics import confusion_matrix, precision_recall_fscore_support

    y = np.asarray(y)
    pred = probs.argmax(axis=1)
    k = min(5, len(labels))
    hit1, hitk = topk_hits(probs, y, 1), topk_hits(probs, y, k)
    idx = list(range(len(labels)))
    p, r, f, s = precision_recall_fscore_support(y, pred, labels=idx, zero_division=0)
    predicted = np.bincount(pred, minlength=len(labels))
    # a figure with nothing to count is undefined (None), not 0: recall without clips of the gloss, precision when
    # it was never predicted, F1 with neither (with hundreds of glosses, many are not among the clips scored)
    per_gloss = [{"gloss": g, "precision": float(p[i]) if predicted[i] else None, "recall": float(r[i]) if s[i] else None,
                  "f1": float(f[i]) if s[i] or predicted[i] else None, "support": int(s[i]), "predicted": int(predicted[i])}
                 for i, g in enumerate(labels)]  # fmt: skip
    cm = confusion_matrix(y, pred, labels=idx)
    return Metrics(
        n=len(y), top1=float(hit1.mean()) if len(y) else float("nan"), top5=float(hitk.mean()) if len(y) else float("nan"),
        top1_per_gloss=per_gloss_mean(hit1, y), top5_per_gloss=per_gloss_mean(hitk, y), top1_ci=bootstrap_ci(hit1),
        k=k, per_gloss=per_gloss, confusion=cm.tolist(),
    )  # fmt: skip


def score(raw: np.ndarray, y: np.ndarray, predictor: Predictor) -> tuple[Metrics, np.ndarray]:
    """The metrics of a model's own (uncalibrated) probabilities `raw` once calibrated as it is, with the
    calibration error before and after and what its "unknown" threshold answers; and the calibrated probabilities."""
    probs = with_temperature(raw, predictor.temperature)
    metrics = compute_metrics(probs, y, predictor.labels)
    answered = probs.max(axis=1) >= predictor.threshold
    metrics.ece, metrics.ece_uncalibrated = expected_calibration_error(probs, y), expected_calibration_error(raw, y)
    metrics.threshold, metrics.coverage = predictor.threshold, float(answered.mean())
    metrics.answered_top1 = float((probs.argmax(1) == y)[answered].mean()) if answered.any() else float("nan")
    return metrics, probs


def top_confusions(cm: np.ndarray | list, labels: list[str], n: int = 15) -> list[dict]:
    """The most frequent (true, predicted) pairs off the diagonal, most first."""
    cm = np.asarray(cm)
    off = [(int(cm[i, j]), i, j) for i in range(len(labels)) for j in range(len(labels)) if i != j and cm[i, j]]
    off.sort(key=lambda t: (-t[0], labels[t[1]], labels[t[2]]))
    support = cm.sum(axis=1)
    return [{"true": labels[i], "predicted": labels[j], "count": c, "share": c / max(int(support[i]), 1)}
            for c, i, j in off[:n]]  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Plots

LABELLED_UP_TO = 40  # glosses; beyond this a confusion matrix cannot name every row legibly


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray, labels: list[str], path: str | os.PathLike, normalise: bool, title: str = "") -> None:
    """Confusion matrix PNG (see `confusion_figure`)."""
    plt = _plt()
    fig = confusion_figure(cm, labels, normalise, title)
    fig.savefig(path)
    plt.close(fig)


def confusion_figure(cm: np.ndarray, labels: list[str], normalise: bool, title: str = ""):
    """A confusion matrix with a colour bar. Up to 40 glosses every row and column is named; beyond that the
    matrix shows the pattern (rows ordered as the labels, every k-th one named) and the report lists the
    confusions themselves."""
    plt = _plt()
    cm = np.asarray(cm, dtype=float)
    n = len(labels)
    if normalise:
        rows = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = float(np.clip(1.2 + 0.28 * n, 5, 40))
    longest = max((len(g) for g in labels), default=1)
    margin = min(3.0, 0.09 * longest + 0.6) if n <= LABELLED_UP_TO else 1.2
    fig, ax = plt.subplots(figsize=(size + 1.5 + margin, size + margin), dpi=100 if n <= 50 else 80)
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalise else max(cm.max(), 1), interpolation="nearest")
    if n <= LABELLED_UP_TO:
        font = float(np.clip(220 / max(n, 1), 6, 11))
        ax.set_xticks(range(n), labels, rotation=90, fontsize=font)
        ax.set_yticks(range(n), labels, fontsize=font)
    else:
        step = int(np.ceil(n / 40))
        ticks = list(range(0, n, step))
        ax.set_xticks(ticks, [labels[i] for i in ticks], rotation=90, fontsize=7)
        ax.set_yticks(ticks, [labels[i] for i in ticks], fontsize=7)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("confusion (row-normalised)" if normalise else "confusion (counts)"))
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    text = f"{cm[i, j]:.2f}" if normalise else f"{int(cm[i, j])}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=float(np.clip(220 / max(n, 1), 6, 11)),
                            color="white" if cm[i, j] > (0.5 if normalise else cm.max() / 2) else "black")  # fmt: skip
    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    bar.set_label("share of the true gloss's clips" if normalise else "clips")
    fig.tight_layout()
    return fig


def plot_recall(per_gloss: list[dict], path: str | os.PathLike, title: str = "", worst: int = 40) -> None:
    """The large-vocabulary view of `recall_figure`, as a PNG."""
    plt = _plt()
    fig = recall_figure(per_gloss, title, worst)
    fig.savefig(path)
    plt.close(fig)


def recall_figure(per_gloss: list[dict], title: str = "", worst: int = 40):
    """Recall of every gloss with clips, sorted (left), and the `worst` glosses below 1 by name, each bar with its
    clips right (right)."""
    plt = _plt()
    rows = sorted((g for g in per_gloss if g["support"]), key=lambda g: (g["recall"], g["gloss"]))
    recall = [g["recall"] for g in rows]
    shown = [g for g in rows if g["recall"] < 1][:worst]
    fig, (a, b) = plt.subplots(1, 2, figsize=(13, max(4.5, 0.22 * len(shown) + 1)), dpi=100,
                               gridspec_kw={"width_ratios": [1.2, 1]})  # fmt: skip
    a.plot(range(1, len(recall) + 1), recall, drawstyle="steps-mid")
    a.set_xlabel("glosses, sorted by recall")
    a.set_ylabel("recall (share of its clips right)")
    a.set_ylim(-0.02, 1.02)
    a.grid(alpha=0.3)
    a.set_title(f"{sum(r == 0 for r in recall)} of {len(recall)} glosses never right, {sum(r == 1 for r in recall)} always")
    b.barh(range(len(shown)), [g["recall"] for g in shown], color="tab:red")
    b.set_yticks(range(len(shown)), [f"{g['gloss']} ({g['support']})" for g in shown], fontsize=8)
    for i, g in enumerate(shown):  # a gloss never right has no bar to see: its count says it
        b.text(g["recall"] + 0.01, i, f"{round(g['recall'] * g['support'])}/{g['support']}", va="center", fontsize=7)
    b.invert_yaxis()
    b.set_xlim(0, 1.1)
    b.set_xlabel("recall")
    b.set_title(f"the {len(shown)} hardest glosses (clips)" if shown else "every gloss always right")
    fig.suptitle(title or "recall per gloss")
    fig.tight_layout()
    return fig


def plot_coverage(probs: np.ndarray, y: np.ndarray, threshold: float, path: str | os.PathLike, title: str = "") -> None:
    """Accuracy of the answered clips against the share answered, as the confidence threshold rises; the
    model's "unknown" threshold is marked."""
    from .calibration import risk_coverage

    plt = _plt()
    curve = risk_coverage(probs, y)
    fig, ax = plt.subplots(figsize=(6, 4.2), dpi=100)
    ax.plot([p["coverage"] for p in curve], [p["accuracy"] for p in curve], drawstyle="steps-post")
    answered = (probs.max(axis=1) >= threshold).mean() if len(y) else 1.0
    ax.axvline(answered, color="grey", linestyle=":", label=f"threshold {threshold:.2f}: {answered:.0%} answered")
    ax.set_xlabel("share of clips answered (coverage)")
    ax.set_ylabel("top-1 accuracy of the answered")
    ax.set_xlim(0, 1.02)
    ax.set_ylim(0, 1.02)
    ax.grid(alpha=0.3)
    ax.legend(loc="lower left")
    ax.set_title(title or "accuracy against coverage")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_curves(histories: str | os.PathLike | list[tuple[str, Path]], path: str | os.PathLike, title: str = "") -> None:
    """Training curves PNG (see `curves_figure`)."""
    plt = _plt()
    fig = curves_figure(histories, title)
    fig.savefig(path)
    plt.close(fig)


def curves_figure(histories: str | os.PathLike | list[tuple[str, Path]], title: str = ""):
    """Loss and accuracy per epoch, train and validation, side by side; the best epoch (lowest validation loss,
    the model kept) is marked, and epochs are whole numbers. `histories`: one `history.csv`, or `(name, csv)` pairs
    (an ensemble's members, each in a colour of its own and named once in the legend, the line styles said in the
    title: solid training, dashed validation, dotted best epoch; a refit has no validation)."""
    from matplotlib.ticker import MaxNLocator

    plt = _plt()
    runs = [("", Path(histories))] if isinstance(histories, (str, os.PathLike)) else histories
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for i, (name, csv) in enumerate(runs):
        rows = read_csv_rows(csv)
        epochs = [int(r["epoch"]) for r in rows]
        val_loss = [float(r["val_loss"]) if r.get("val_loss") not in (None, "") else np.inf for r in rows]
        best = epochs[int(np.argmin(val_loss))] if np.isfinite(val_loss).any() else None
        colour = {"color": f"C{i}"} if len(runs) > 1 else {}
        prefix = f"{name} " if name else ""
        for ax, metric in zip(axes, ("loss", "acc"), strict=True):
            for stage, style in (("train", "-"), ("val", "--")):
                pts = [(e, float(r[f"{stage}_{metric}"])) for e, r in zip(epochs, rows, strict=True)
                       if r.get(f"{stage}_{metric}") not in (None, "")]  # fmt: skip
                if pts:
                    label = (name if stage == "train" else "_") if len(runs) > 1 else stage
                    ax.plot(*zip(*pts, strict=True), style, label=label, **colour)
            if best is not None:
                label = f"{prefix}best epoch ({best})" if len(runs) == 1 else "_"
                ax.axvline(best, color=colour.get("color", "grey"), linestyle=":", label=label)
    for ax, metric in zip(axes, ("loss", "acc"), strict=True):
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "cross-entropy loss")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8 if len(runs) > 1 else None)
    styles = "\n(solid: training, dashed: validation, dotted: the validated models' best epochs)" if len(runs) > 1 else ""
    fig.suptitle((title or "training curves") + styles)
    fig.tight_layout()
    return fig


# ---------------------------------------------------------------------------------------------------------
# Run evaluation


@dataclass
class Evaluation:
    run: str
    framework: str
    model: str
    split: str  # test, val, train or all
    metrics: Metrics
    files: dict[str, str]
    data: str = ""
    scored: str = ""  # which clips, in words
    skipped: int = 0  # clips of glosses the model does not know
    unknown: dict[str, int] = field(default_factory=dict)  # gloss -> clips skipped
    in_training: int = 0  # scored clips that were in the model's training split
    warnings: list[str] = field(default_factory=list)
    confusions: list[dict] = field(default_factory=list)
    signers: list[dict] = field(default_factory=list)  # `per_signer`, when the clips name two people or more

    def summary_line(self) -> str:
        m = self.metrics
        lo, hi = m.top1_ci
        return (f"{self.framework}/{self.model} on {self.scored}: top-1 {m.top1:.1%} (95% CI {lo:.1%}-{hi:.1%}), "
                f"top-{m.k} {m.top5:.1%} per instance; top-1 {m.top1_per_gloss:.1%}, top-{m.k} "
                f"{m.top5_per_gloss:.1%} per gloss; n={m.n}")  # fmt: skip


SIDE_WORDS = {"test": "test", "val": "validation", "train": "training"}
CHUNK = 256  # clips read and scored at a time


def _predict_store(predictor, store, clips, digests: list[str] | None = None) -> np.ndarray:
    """The model's own (uncalibrated) probabilities for store clips, read a chunk at a time (and, into `digests`
    when given, each clip's `keypoints_digest`)."""
    out = []
    for i in range(0, len(clips), CHUNK):
        chunk = [store.read(c) for c in clips[i : i + CHUNK]]
        if digests is not None:
            digests += [keypoints_digest(x) for x in chunk]
        out.append(predictor.predict_proba(chunk, calibrated=False))
    return np.concatenate(out) if out else np.zeros((0, len(predictor.labels)), np.float32)


def _origins(digests: list[str] | None, frames: set[int], data: str | os.PathLike | None, seen: set[str],
             chose: set[str]) -> list[str] | None:  # fmt: skip
    """For clips of other data known by their `keypoints_digest`s (and numbers of `frames`): the path of each among
    the clips `seen` or `chose` of the store `data` (the one a model trained on, or was chosen on) with the same
    keypoints, a clip seen first; "" for none. Only clips of those lengths are read. None when that store cannot be
    opened here (or nothing was to be looked up)."""
    try:
        trained_on = open_store(data) if data and digests is not None else None
    except (OSError, ValueError):
        trained_on = None
    if trained_on is None:
        return None
    paths_of: dict[str, str] = {}
    for c in trained_on.clips:
        if c.frames in frames and (c.path in seen or c.path in chose):
            d = keypoints_digest(trained_on.read(c))
            if paths_of.get(d) not in seen:  # the same keypoints twice: training says more than choosing
                paths_of[d] = c.path
    return [paths_of.get(d, "") for d in digests]


def evaluate_run(
    run: str | os.PathLike,
    data: str | os.PathLike | KeypointStore | None = None,
    split: str = "test",
    out: str | os.PathLike | None = None,
    where: list[str] | str | None = None,
    progress: bool = True,
    log=print,
) -> Evaluation:
    """Evaluate a run (folder or checkpoint file) on a side of its split, or on every clip of `data`.

    Writes metrics.json, per_gloss.csv, predictions.csv (the clips scored), confusion CSV/PNGs, recall and
    training-curve PNGs and report.md into `out` (default: beside the checkpoint, `eval-<data>-<split>`). `data`
    that is not a store (a folder with an index.csv, as `run --keypoints` takes) is imported into a temporary store,
    for this evaluation alone.
    Clips of glosses the model does not know are skipped and listed; clips that were in the model's training
    split are counted and warned about, in other folders too (known by their keypoints).
    """
    from .checkpoint import run_folder
    from .predict import load_predictor
    from .splits import SPLIT_NAME, Split, filter_store
    from .training.runner import histories

    if split not in ("test", "val", "train", "all"):
        raise ValueError(f"split must be test, val, train or all, got {split!r}")
    folder = run_folder(run)
    predictor = load_predictor(run)
    card = predictor.card
    validated = card.training.get("validated")  # a refit run: its refits trained on the validation clips too
    refit = bool(validated) and split == "val"
    if refit:  # judge the models that did not see them (see training.runner)
        predictor = load_predictor(folder / validated)
        card = predictor.card
    data = data if data is not None else card.training.get("data")
    if not data:
        raise ValueError(f"{run}: the checkpoint does not name its data; pass --data")
    root = data.root if isinstance(data, KeypointStore) else Path(data)
    # another checkpoint than the run's own model (validated.pt, an ONNX export) is named in the folder and the title
    file = Path(run).name if Path(run).is_file() and Path(run).name not in ("model.pt", "model.keras") else ""
    tag = file.removesuffix(".pt").replace(".", "-") + "-" if file else ""  # validated-, model-onnx-
    out = Path(out) if out else folder / f"eval-{tag}{root.name}-{split}"
    split_file = folder / SPLIT_NAME
    trained = Split.load(split_file) if split_file.exists() else None
    same_data = Path(card.training.get("data") or "").resolve() == root.resolve()
    if split != "all":
        if trained is None:
            raise FileNotFoundError(f"{split_file}: no saved split in this run; use --split all with --data")
        if not same_data:
            raise ValueError(f"{root} is not the data {folder} was trained on ({card.training.get('data')}); "
                             f"its split names clips of that data: use --split all")  # fmt: skip
    # a folder that is not a store (one with an index.csv, as `run --keypoints` takes) is imported for this
    # evaluation alone, into a temporary store: nothing of another folder, or of this one as it was, is scored
    scratch = None if isinstance(data, KeypointStore) else tempfile.TemporaryDirectory(prefix="signrec-eval-")
    opened = data if scratch is None else open_or_import([root], Path(scratch.name) / root.name, None, progress, log)[0]
    imported = scratch is not None and Path(scratch.name) in opened.root.parents
    store = filter_store(opened, where)
    predictor.check_parts(store.parts, store.root)
    if split == "all":
        clips = store.clips
    else:
        present = {c.path for c in store.clips}
        clips = store.subset([p for p in trained.side(split) if p in present])
        if not clips:
            raise ValueError(f"{folder}: the {split} split is empty" + (" (the data has no test split; "
                             "use --split val)" if split == "test" else ""))  # fmt: skip
    index = {g: i for i, g in enumerate(predictor.labels)}
    known = [c for c in clips if c.gloss in index]
    unknown = dict(sorted(Counter(c.gloss for c in clips if c.gloss not in index).items()))
    if not known:
        raise ValueError(f"{store.root}: none of its glosses ({', '.join(sorted(unknown)[:8])}...) are known to the "
                         f"model ({', '.join(predictor.labels[:8])}...)")  # fmt: skip
    # the clips the scored model trained on (a refit's: the validation clips too), and those that chose it
    seen = (set(trained.train) | (set(trained.val) if validated and not refit else set())) if trained else set()
    chose = set(trained.val) - seen if trained else set()
    digests: list[str] | None = None if same_data or not seen else []  # elsewhere, clips are known by their keypoints
    raw = _predict_store(predictor, store, known, digests)
    if scratch is not None:
        scratch.cleanup()
    origin = ([c.path for c in known] if same_data
              else _origins(digests, {c.frames for c in known}, card.training.get("data"), seen, chose))  # fmt: skip
    in_training, choosing = (sum(p in seen for p in origin), sum(p in chose for p in origin)) if origin else (0, 0)
    y = np.array([index[c.gloss] for c in known])
    metrics, probs = score(raw, y, predictor)
    out.mkdir(parents=True, exist_ok=True)
    where_text = f" where {where if isinstance(where, str) else ','.join(where)}" if where else ""
    if split == "all":
        source = f"{root} (imported for this evaluation)" if imported else store.root
        scored = f"all {len(known)} clips of {source}{where_text}"
    else:
        scored = f"the {len(known)} {SIDE_WORDS[split]} clips of {store.root}{where_text} (the run's {split} split)"
    warnings_ = []
    if unknown:
        warnings_.append(f"skipped {count(sum(unknown.values()), 'clip')} of {count(len(unknown), 'gloss', 'glosses')} "
                         "the model does not know: "
                         + ", ".join(f"{g} ({n})" for g, n in list(unknown.items())[:20]) + (" ..." if len(unknown) > 20 else ""))  # fmt: skip
    if split == "all" and store.failed and not where:  # refused by an import, no person found by extraction
        paths = [r.get("path", "?") for r in store.failed]
        warnings_.append(f"{count(len(paths), 'clip')} of {store.root} failed when it was made (its manifest says why), "
                         f"not scored: {', '.join(paths[:5])}{' ...' if len(paths) > 5 else ''}")  # fmt: skip
    if not same_data and (trained is None or origin is None):
        why = (f"no {SPLIT_NAME} beside the checkpoint" if trained is None else f"its training data "
               f"({card.training['data']}) is not there" if card.training.get("data") else "the checkpoint does not "
               "name its training data")  # fmt: skip
        warnings_.append(f"not checked for clips the model trained on: {why}")
    if in_training and split != "train":
        warnings_.append(f"{in_training} of the {len(known)} scored clips were in the model's training split: "
                         f"these figures overstate accuracy on new clips")  # fmt: skip
    if split == "val":
        warnings_.append("validation clips chose the model (early stopping): the figures are optimistic")
    elif choosing:
        warnings_.append(f"{choosing} of the {len(known)} scored clips were the validation clips that chose the model "
                         f"(early stopping): these figures are optimistic")  # fmt: skip
    if refit:
        warnings_.append(f"these figures are of the validated models ({validated}); the run's model "
                         f"averages them with refits trained on the validation clips too, which they cannot judge")  # fmt: skip
    ev = Evaluation(str(folder), card.framework, card.model, split, metrics, {}, str(store.root), scored,
                    sum(unknown.values()), unknown, in_training, warnings_,
                    top_confusions(metrics.confusion, predictor.labels))  # fmt: skip
    people = per_signer([c.signer for c in known], probs, y, metrics.k)
    ev.signers = people if len([r for r in people if r["signer"] != NO_SIGNER]) > 1 else []
    made_of = [Path(m["run"]).name for m in card.training["members"]] if card.training.get("members") else None
    ev.files = write_evaluation(out, metrics, predictor.labels, histories(folder, made_of), f"{card.framework}/{card.model}",
                                [c.path for c in known], probs, y, ev.signers)  # fmt: skip
    ev.files["coverage_png"] = str(out / "coverage.png")
    plot_coverage(probs, y, predictor.threshold, ev.files["coverage_png"], f"{card.framework}/{card.model}: accuracy against coverage")
    write_report(out / "report.md", [ev], title=f"Evaluation of {folder.name}{'/' + file if file else ''} on {root.name} ({split})")
    ev.files["report"] = str(out / "report.md")
    return ev


def write_evaluation(
    out: Path, m: Metrics, labels: list[str], history: list[tuple[str, Path]], name: str, paths: list[str],
    probs: np.ndarray, y: np.ndarray, signers: list[dict] | None = None,
) -> dict[str, str]:
    files = {
        "metrics": out / "metrics.json", "per_gloss": out / "per_gloss.csv", "confusion_csv": out / "confusion.csv",
        "confusion_png": out / "confusion.png", "confusion_norm_png": out / "confusion_normalised.png",
        "predictions": out / "predictions.csv", "recall_png": out / "recall.png",
    }  # fmt: skip
    atomic_write_json(files["metrics"], {k: v for k, v in m.__dict__.items() if k not in ("per_gloss", "confusion")}
                      | {"labels": labels})  # fmt: skip
    write_csv_atomic(files["per_gloss"], m.per_gloss, ["gloss", "precision", "recall", "f1", "support", "predicted"])
    write_csv_atomic(files["confusion_csv"], [{"true": g, **dict(zip(labels, row, strict=True))}
                                              for g, row in zip(labels, m.confusion, strict=True)], ["true", *labels])  # fmt: skip
    k = min(5, len(labels))
    pred_rows = []
    for p, t, pr in zip(paths, y, probs, strict=True):
        order = np.argsort(-pr, kind="stable")[:k]
        pred_rows.append({"path": p, "true": labels[t], "predicted": labels[int(order[0])], "probability": f"{pr.max():.4f}",
                          f"top{k}": " ".join(labels[i] for i in order), "correct": int(order[0] == t)})  # fmt: skip
    write_csv_atomic(files["predictions"], pred_rows, ["path", "true", "predicted", "probability", "correct", f"top{k}"])
    (out / "per_signer.csv").unlink(missing_ok=True)  # an earlier evaluation's, into this folder
    (out / "curves.png").unlink(missing_ok=True)
    if signers:
        files["per_signer"] = out / "per_signer.csv"
        write_csv_atomic(files["per_signer"], [{"signer": r["signer"], "clips": r["clips"], "top1": f"{r['top1']:.4f}",
                                                f"top{k}": f"{r['topk']:.4f}"} for r in signers],
                         ["signer", "clips", "top1", f"top{k}"])  # fmt: skip
    cm, names, which = np.array(m.confusion), labels, ""
    if len(labels) > LABELLED_UP_TO:  # a large vocabulary: the glosses among these clips or predicted (the CSV: all)
        play = np.flatnonzero((cm.sum(axis=0) > 0) | (cm.sum(axis=1) > 0))
        if len(play) < len(labels):
            cm, names = cm[np.ix_(play, play)], [labels[i] for i in play]
            which = f", the {len(play)} of {len(labels)} glosses among these clips or predicted"
    plot_confusion(cm, names, files["confusion_png"], False, f"{name}: confusion (counts{which})")
    plot_confusion(cm, names, files["confusion_norm_png"], True, f"{name}: confusion (row-normalised{which})")
    plot_recall(m.per_gloss, files["recall_png"], f"{name}: recall per gloss")
    if history:  # a run's own, or an ensemble's members'
        files["curves"] = out / "curves.png"
        plot_curves(history, files["curves"], f"{name}: training curves" + (" of its members" if len(history) > 1 else ""))
    return {k: str(v) for k, v in files.items()}


def write_report(path: str | os.PathLike, evaluations: list[Evaluation], title: str = "Evaluation", extra: str = "",
                 intro: str = "") -> None:  # fmt: skip
    """A Markdown report: what was scored, the side-by-side table, top confusions, per-gloss tables, pictures."""
    from .io import atomic_write_text

    path = Path(path)
    rel = lambda p: os.path.relpath(p, path.parent)
    k = evaluations[0].metrics.k if evaluations else 5
    lines = [f"# {title}", ""]
    if intro:
        lines += [intro, ""]
    lines += [("Top-1/top-k *per instance* = share of clips right; *per gloss* = mean over glosses of each gloss's "
              "accuracy. The interval is a 95% bootstrap over the clips scored. Model selection (early stopping) "
              "used the validation split only."), ""]  # fmt: skip
    for ev in evaluations:
        lines.append(f"- **{ev.framework}/{ev.model}** scored {ev.scored} (listed in "
                     f"`{rel(ev.files['predictions'])}`)." if ev.files.get("predictions") else f"- {ev.scored}")  # fmt: skip
        lines += [f"  - **warning:** {w}" for w in ev.warnings]
    lines += ["", (f"| model | clips | top-1 | 95% CI | top-{k} | top-1 per gloss | top-{k} per gloss | calibration error "
              "(before) | answered at threshold | top-1 of answered |"), "|---|---|---|---|---|---|---|---|---|---|"]  # fmt: skip
    for ev in evaluations:
        m = ev.metrics
        lines.append(f"| {ev.framework}/{ev.model} ({ev.split}) | {m.n} | {m.top1:.1%} | {m.top1_ci[0]:.1%}-{m.top1_ci[1]:.1%} | "
                     f"{m.top5:.1%} | {m.top1_per_gloss:.1%} | {m.top5_per_gloss:.1%} | {m.ece:.3f} ({m.ece_uncalibrated:.3f}) | "
                     f"{m.coverage:.0%} (p >= {m.threshold:.2f}) | {m.answered_top1:.1%} |")  # fmt: skip
    lines += ["", ("Calibration error: expected calibration error (15 bins) after temperature scaling fitted on the "
              "validation clips (before it, in brackets). Below the threshold, chosen on validation so that the "
              "answered clips are 95% right, `predict` and `live` answer \"unknown\".")]  # fmt: skip
    if extra:
        lines += ["", extra]
    for ev in evaluations:
        lines += ["", f"## {ev.framework}/{ev.model}", ""]
        if ev.confusions:
            lines += ["Most confused pairs (true -> predicted):", "", "| true | predicted | clips | share of true |",
                      "|---|---|---|---|"]  # fmt: skip
            lines += [f"| {c['true']} | {c['predicted']} | {c['count']} | {c['share']:.0%} |" for c in ev.confusions]
            lines.append("")
        elif ev.metrics.n:
            lines += ["Most confused pairs: none (every clip's answer was right).", ""]
        lines += _per_signer_lines(ev.signers, ev.metrics.k)
        lines += _per_gloss_table(ev.metrics.per_gloss)
        for key, caption in (("confusion_png", "confusion (counts)"), ("confusion_norm_png", "confusion (row-normalised)"),
                             ("recall_png", "recall per gloss"), ("coverage_png", "accuracy against coverage"),
                             ("curves", "training curves")):  # fmt: skip
            if key in ev.files:
                lines += ["", f"![{ev.framework} {caption}]({rel(ev.files[key])})"]
    atomic_write_text(path, "\n".join(lines) + "\n")


def _per_signer_lines(signers: list[dict], k: int) -> list[str]:
    """The report's per-person table: those with at least SIGNER_MIN_CLIPS clips, the lowest top-1 first; a count of
    the others (all of them in per_signer.csv)."""
    if not signers:
        return []
    tabled = [r for r in signers if r["clips"] >= SIGNER_MIN_CLIPS]
    persons = [r for r in signers if r["signer"] != NO_SIGNER]
    people = count(len(persons), "person", "people")
    if not tabled:
        return [f"Per signer: {people}, none with {SIGNER_MIN_CLIPS} clips or more (per_signer.csv).", ""]
    lines = [f"Per signer ({people}; those with at least {SIGNER_MIN_CLIPS} clips, the lowest top-1 first):", ""]
    lines += [f"| signer | clips | top-1 | top-{k} |", "|---|---|---|---|"]
    lines += [f"| {r['signer']} | {r['clips']} | {r['top1']:.1%} | {r['topk']:.1%} |" for r in tabled]
    lines.append("")
    fewer = [r for r in persons if r["clips"] < SIGNER_MIN_CLIPS]
    if fewer:
        lines += [f"{count(len(fewer), 'other person', 'other people')} with fewer clips (per_signer.csv).", ""]
    return lines


def _per_gloss_table(per_gloss: list[dict]) -> list[str]:
    """The report's per-gloss lines: "-" for a figure with nothing to count; past LABELLED_UP_TO glosses only those
    among the clips or predicted, and a count of the others."""
    shown = per_gloss if len(per_gloss) <= LABELLED_UP_TO else [g for g in per_gloss if g["support"] or g["predicted"]]
    cell = lambda v: "-" if v is None else f"{v:.2f}"
    lines = ["| gloss | precision | recall | F1 | support | predicted |", "|---|---|---|---|---|---|"]
    lines += [f"| {g['gloss']} | {cell(g['precision'])} | {cell(g['recall'])} | {cell(g['f1'])} | {g['support']} | "
              f"{g['predicted']} |" for g in shown]  # fmt: skip
    if len(shown) < len(per_gloss):
        others = len(per_gloss) - len(shown)
        lines += ["", f"{others} other glosses of the model neither among these clips nor predicted (per_gloss.csv)."]
    return lines
