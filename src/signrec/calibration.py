"""Probabilities that mean what they say, and knowing when not to answer.

- Temperature scaling (Guo et al., 2017): one number T, fitted on the validation clips by minimising their
  negative log-likelihood, divides the logits; it changes how confident the model is, never which gloss wins.
  The fit counts each clip's label as right with probability 1 - 1/(n + 2) (Laplace's rule of succession for n
  clips): on a validation set without a mistake the likelihood alone is best at T -> 0, every answer certain,
  which n clips cannot show; this way n right of n gives a confidence of about (n + 1)/(n + 2). On hundreds of
  clips the correction is negligible.
- Expected calibration error (ECE): the gap between confidence and accuracy, averaged over confidence bins.
- A confidence threshold chosen on validation below which `predict` and `live` answer "unknown", and the
  accuracy-against-coverage curve that shows what such a threshold costs and buys.

Everything works on probabilities, so it applies the same to PyTorch, Keras and ONNX models.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

ECE_BINS = 15
TARGET_ACCURACY = 0.95  # the accuracy wanted among the clips the model answers
UNKNOWN = "unknown"


def with_temperature(probs: np.ndarray, temperature: float) -> np.ndarray:
    """Probabilities as if the logits had been divided by `temperature` (softmax(log p / T))."""
    if temperature == 1.0:
        return probs
    logits = np.log(np.clip(probs, 1e-12, 1.0)) / temperature
    logits -= logits.max(axis=1, keepdims=True)
    e = np.exp(logits)
    return (e / e.sum(axis=1, keepdims=True)).astype(np.float32)


def smoothed_nll(probs: np.ndarray, y: np.ndarray) -> float:
    """Negative log-likelihood of `y` when each label is right with probability 1 - 1/(n + 2), wrong otherwise."""
    eps = 1.0 / (len(y) + 2)
    p = np.clip(probs[np.arange(len(y)), y].astype(np.float64), 1e-12, 1 - 1e-12)
    return float(-((1 - eps) * np.log(p) + eps * np.log1p(-p)).mean())


def fit_temperature(probs: np.ndarray, y: np.ndarray, lo: float = 0.05, hi: float = 20.0) -> float:
    """The temperature that minimises `smoothed_nll` of `y` (golden-section search on log T)."""
    if len(y) == 0:
        return 1.0
    f = lambda log_t: smoothed_nll(with_temperature(probs, float(np.exp(log_t))), y)
    a, b = np.log(lo), np.log(hi)
    g = (np.sqrt(5) - 1) / 2
    c, d = b - g * (b - a), a + g * (b - a)
    for _ in range(60):
        if f(c) < f(d):
            b, d = d, c
            c = b - g * (b - a)
        else:
            a, c = c, d
            d = a + g * (b - a)
    return float(np.exp((a + b) / 2))


def expected_calibration_error(probs: np.ndarray, y: np.ndarray, bins: int = ECE_BINS) -> float:
    """Mean |accuracy - confidence| over equal-width confidence bins, weighted by the clips in each."""
    if len(y) == 0:
        return float("nan")
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == y
    edges = np.linspace(0, 1, bins + 1)
    which = np.clip(np.digitize(conf, edges[1:-1], right=True), 0, bins - 1)
    total = 0.0
    for b in range(bins):
        inside = which == b
        if inside.any():
            total += inside.mean() * abs(right[inside].mean() - conf[inside].mean())
    return float(total)


def risk_coverage(probs: np.ndarray, y: np.ndarray) -> list[dict]:
    """For each possible threshold (the clips' confidences, high to low): coverage and accuracy of the answered."""
    conf = probs.max(axis=1)
    right = probs.argmax(axis=1) == y
    order = np.argsort(-conf, kind="stable")
    hits = np.cumsum(right[order])
    n = np.arange(1, len(y) + 1)
    return [{"threshold": float(conf[order][i]), "coverage": float(n[i] / len(y)), "accuracy": float(hits[i] / n[i])}
            for i in range(len(y))]  # fmt: skip


def choose_threshold(probs: np.ndarray, y: np.ndarray, target: float = TARGET_ACCURACY) -> float:
    """The lowest confidence threshold at which the answered validation clips are at least `target` accurate
    (so the most clips are answered); 0 when every answer is good enough, the top confidence when none is."""
    curve = risk_coverage(probs, y)
    good = [p for p in curve if p["accuracy"] >= target]
    if not good:
        return float(curve[0]["threshold"]) if curve else 0.0
    best = max(good, key=lambda p: (p["coverage"], -p["threshold"]))
    return 0.0 if best["coverage"] == 1.0 else best["threshold"]


@dataclass
class Calibration:
    temperature: float = 1.0
    threshold: float = 0.0  # answer "unknown" below this calibrated confidence
    target: float = TARGET_ACCURACY
    ece_before: float = float("nan")
    ece_after: float = float("nan")
    coverage: float = 1.0  # share of validation clips answered at the threshold
    clips: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def calibrate(probs: np.ndarray, y: np.ndarray, target: float = TARGET_ACCURACY) -> Calibration:
    """Fit the temperature and the threshold on validation probabilities."""
    t = fit_temperature(probs, y)
    after = with_temperature(probs, t)
    threshold = choose_threshold(after, y, target)
    coverage = float((after.max(axis=1) >= threshold).mean()) if len(y) else 1.0
    return Calibration(t, threshold, target, expected_calibration_error(probs, y), expected_calibration_error(after, y),
                       coverage, len(y))  # fmt: skip
