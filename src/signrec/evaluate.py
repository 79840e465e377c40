"""Evaluation: metrics (scikit-learn), confusion matrices and training curves (matplotlib), Markdown reports.

Accuracy is reported two ways, because papers mix them: *per instance* (share of test clips right) and
*per gloss* (the mean over glosses of each gloss's accuracy, so rare glosses count as much as common ones).
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .io import atomic_write_json, read_csv_rows, write_csv_atomic

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


def topk_hits(probs: np.ndarray, y: np.ndarray, k: int) -> np.ndarray:
    """(n,) bool: whether the true label is among the k most probable."""
    k = min(k, probs.shape[1])
    top = np.argsort(-probs, axis=1, kind="stable")[:, :k]
    return (top == y[:, None]).any(axis=1)


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
    per_gloss = [{"gloss": g, "precision": float(p[i]), "recall": float(r[i]), "f1": float(f[i]), "support": int(s[i])}
                 for i, g in enumerate(labels)]  # fmt: skip
    cm = confusion_matrix(y, pred, labels=idx)
    return Metrics(
        n=len(y), top1=float(hit1.mean()) if len(y) else float("nan"), top5=float(hitk.mean()) if len(y) else float("nan"),
        top1_per_gloss=per_gloss_mean(hit1, y), top5_per_gloss=per_gloss_mean(hitk, y), top1_ci=bootstrap_ci(hit1),
        k=k, per_gloss=per_gloss, confusion=cm.tolist(),
    )  # fmt: skip


# ---------------------------------------------------------------------------------------------------------
# Plots


def _plt():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def plot_confusion(cm: np.ndarray, labels: list[str], path: str | os.PathLike, normalise: bool, title: str = "") -> None:
    """Confusion matrix PNG: gloss names on both axes, readable from 4 to a few hundred glosses."""
    plt = _plt()
    cm = np.asarray(cm, dtype=float)
    n = len(labels)
    if normalise:
        rows = cm.sum(axis=1, keepdims=True)
        cm = np.divide(cm, rows, out=np.zeros_like(cm), where=rows > 0)
    size = float(np.clip(1.2 + 0.28 * n, 5, 40))
    font = float(np.clip(220 / max(n, 1), 3, 11))
    fig, ax = plt.subplots(figsize=(size + 1.5, size), dpi=100 if n <= 50 else 80)
    im = ax.imshow(cm, cmap="Blues", vmin=0, vmax=1 if normalise else max(cm.max(), 1))
    ax.set_xticks(range(n), labels, rotation=90, fontsize=font)
    ax.set_yticks(range(n), labels, fontsize=font)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title or ("confusion (row-normalised)" if normalise else "confusion (counts)"))
    if n <= 30:
        for i in range(n):
            for j in range(n):
                if cm[i, j]:
                    text = f"{cm[i, j]:.2f}" if normalise else f"{int(cm[i, j])}"
                    ax.text(j, i, text, ha="center", va="center", fontsize=font,
                            color="white" if cm[i, j] > (0.5 if normalise else cm.max() / 2) else "black")  # fmt: skip
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04)
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


def plot_curves(history_csv: str | os.PathLike, path: str | os.PathLike, title: str = "") -> None:
    """Loss and accuracy per epoch, train and validation, side by side."""
    plt = _plt()
    rows = read_csv_rows(history_csv)
    epochs = [int(r["epoch"]) for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(11, 4), dpi=100)
    for ax, metric in zip(axes, ("loss", "acc")):
        for stage, style in (("train", "-"), ("val", "--")):
            values = [float(r[f"{stage}_{metric}"]) for r in rows if r.get(f"{stage}_{metric}") not in (None, "")]
            ax.plot(epochs[: len(values)], values, style, label=stage)
        ax.set_xlabel("epoch")
        ax.set_ylabel("accuracy" if metric == "acc" else "cross-entropy loss")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title or "training curves")
    fig.tight_layout()
    fig.savefig(path)
    plt.close(fig)


# ---------------------------------------------------------------------------------------------------------
# Run evaluation


@dataclass
class Evaluation:
    run: str
    framework: str
    model: str
    split: str
    metrics: Metrics
    files: dict[str, str]
    skipped: int = 0

    def summary_line(self) -> str:
        m = self.metrics
        lo, hi = m.top1_ci
        return (f"{self.framework}/{self.model}: top-1 {m.top1:.1%} (95% CI {lo:.1%}-{hi:.1%}), top-{m.k} {m.top5:.1%} "
                f"per instance; top-1 {m.top1_per_gloss:.1%}, top-{m.k} {m.top5_per_gloss:.1%} per gloss; n={m.n}")  # fmt: skip


def evaluate_run(
    run: str | os.PathLike, data: str | os.PathLike | None = None, split: str = "test", out: str | os.PathLike | None = None
) -> Evaluation:
    """Evaluate a run folder on its test split (or on every clip of `data` with split='all').

    Writes metrics.json, per_gloss.csv, confusion CSV/PNGs, curves.png and report.md into `out`
    (default RUN/eval-<split>). Model selection never used the test split: training stops on validation.
    """
    from .checkpoint import load_predictor
    from .data import load_dataset, load_split

    run = Path(run)
    predictor = load_predictor(run)
    card = predictor.card
    data = data or card.training.get("data")
    if not data:
        raise ValueError(f"{run}: the checkpoint does not name its data; pass --data")
    ds = load_dataset(data)
    if split == "all":
        samples = ds.samples
    elif split in ("test", "val", "train"):
        split_file = run / "split.json"
        if not split_file.exists():
            raise FileNotFoundError(f"{split_file}: no saved split in this run; use --split all with --data")
        samples = ds.subset(load_split(split_file)[0][split])
    else:
        raise ValueError(f"split must be test, val, train or all, got {split!r}")
    index = {g: i for i, g in enumerate(predictor.labels)}
    known = [s for s in samples if s.gloss in index]
    if not known:
        raise ValueError(f"{data}: none of its glosses are known to the model ({', '.join(predictor.labels[:10])}...)")
    probs = predictor.predict_proba([s.keypoints for s in known])
    y = np.array([index[s.gloss] for s in known])
    metrics = compute_metrics(probs, y, predictor.labels)
    out = Path(out) if out else run / f"eval-{split}"
    out.mkdir(parents=True, exist_ok=True)
    files = write_evaluation(out, metrics, predictor.labels, run / "history.csv",
                             f"{card.framework}/{card.model}", [s.path for s in known], probs, y)  # fmt: skip
    ev = Evaluation(str(run), card.framework, card.model, split, metrics, files, len(samples) - len(known))
    write_report(out / "report.md", [ev], title=f"Evaluation of {run.name} ({split})")
    ev.files["report"] = str(out / "report.md")
    return ev


def write_evaluation(
    out: Path, m: Metrics, labels: list[str], history: Path, name: str, paths: list[str], probs: np.ndarray, y: np.ndarray
) -> dict[str, str]:
    files = {
        "metrics": out / "metrics.json", "per_gloss": out / "per_gloss.csv", "confusion_csv": out / "confusion.csv",
        "confusion_png": out / "confusion.png", "confusion_norm_png": out / "confusion_normalised.png",
        "predictions": out / "predictions.csv",
    }  # fmt: skip
    atomic_write_json(files["metrics"], {k: v for k, v in m.__dict__.items() if k not in ("per_gloss", "confusion")}
                      | {"labels": labels})  # fmt: skip
    write_csv_atomic(files["per_gloss"], m.per_gloss, ["gloss", "precision", "recall", "f1", "support"])
    write_csv_atomic(files["confusion_csv"], [{"true": g, **dict(zip(labels, row))} for g, row in zip(labels, m.confusion)],
                     ["true", *labels])  # fmt: skip
    pred_rows = [{"path": p, "true": labels[t], "predicted": labels[int(pr.argmax())], "probability": f"{pr.max():.4f}"}
                 for p, t, pr in zip(paths, y, probs)]  # fmt: skip
    write_csv_atomic(files["predictions"], pred_rows, ["path", "true", "predicted", "probability"])
    plot_confusion(np.array(m.confusion), labels, files["confusion_png"], False, f"{name}: confusion (counts)")
    plot_confusion(np.array(m.confusion), labels, files["confusion_norm_png"], True, f"{name}: confusion (row-normalised)")
    if history.exists():
        files["curves"] = out / "curves.png"
        plot_curves(history, files["curves"], f"{name}: training curves")
    return {k: str(v) for k, v in files.items()}


def write_report(path: str | os.PathLike, evaluations: list[Evaluation], title: str = "Evaluation", extra: str = "") -> None:
    """A Markdown report: the side-by-side table, per-gloss tables and the pictures of each model."""
    from .io import atomic_write_text

    path = Path(path)
    rel = lambda p: os.path.relpath(p, path.parent)
    k = evaluations[0].metrics.k if evaluations else 5
    lines = [f"# {title}", "",
             ("Top-1/top-k *per instance* = share of clips right; *per gloss* = mean over glosses of each gloss's "
             "accuracy. The interval is a 95% bootstrap over test clips. Model selection used the validation split only."),
             "", f"| model | n | top-1 | 95% CI | top-{k} | top-1 per gloss | top-{k} per gloss |", "|---|---|---|---|---|---|---|"]  # fmt: skip
    for ev in evaluations:
        m = ev.metrics
        lines.append(f"| {ev.framework}/{ev.model} | {m.n} | {m.top1:.1%} | {m.top1_ci[0]:.1%}-{m.top1_ci[1]:.1%} | "
                     f"{m.top5:.1%} | {m.top1_per_gloss:.1%} | {m.top5_per_gloss:.1%} |")  # fmt: skip
    if extra:
        lines += ["", extra]
    for ev in evaluations:
        lines += ["", f"## {ev.framework}/{ev.model}", "", "| gloss | precision | recall | F1 | support |", "|---|---|---|---|---|"]
        lines += [f"| {g['gloss']} | {g['precision']:.2f} | {g['recall']:.2f} | {g['f1']:.2f} | {g['support']} |"
                  for g in ev.metrics.per_gloss]  # fmt: skip
        for key, caption in (("confusion_png", "confusion (counts)"), ("confusion_norm_png", "confusion (row-normalised)"),
                             ("curves", "training curves")):  # fmt: skip
            if key in ev.files:
                lines += ["", f"![{ev.framework} {caption}]({rel(ev.files[key])})"]
    atomic_write_text(path, "\n".join(lines) + "\n")
