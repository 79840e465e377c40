"""Metrics against hand-checked cases, bootstrap intervals, plots that are really drawn."""

import numpy as np
import pytest

from signrec.evaluate import bootstrap_ci, compute_metrics, plot_confusion, plot_curves, topk_hits


def test_metrics_on_a_hand_checked_case():
    labels = ["a", "b", "c"]
    y = np.array([0, 0, 0, 1, 2])
    probs = np.array([
        [0.7, 0.2, 0.1],  # a, right
        [0.6, 0.3, 0.1],  # a, right
        [0.1, 0.5, 0.4],  # a -> b; a is third: wrong even in top-2
        [0.2, 0.7, 0.1],  # b, right
        [0.5, 0.1, 0.4],  # c -> a; c second
    ])  # fmt: skip
    m = compute_metrics(probs, y, labels)
    assert m.top1 == pytest.approx(3 / 5)
    assert m.k == 3 and m.top5 == 1.0  # fewer than 5 glosses: top-3 covers everything
    assert topk_hits(probs, y, 2).tolist() == [True, True, False, True, True]
    assert m.top1_per_gloss == pytest.approx((2 / 3 + 1 + 0) / 3)  # mean of per-gloss accuracy
    per = {g["gloss"]: g for g in m.per_gloss}
    assert per["a"]["precision"] == pytest.approx(2 / 3) and per["a"]["recall"] == pytest.approx(2 / 3)
    assert per["b"]["precision"] == pytest.approx(1 / 2) and per["b"]["recall"] == 1.0
    assert per["c"]["f1"] == 0.0 and per["c"]["support"] == 1
    assert m.confusion == [[2, 1, 0], [0, 1, 0], [1, 0, 0]]


def test_bootstrap_interval_contains_the_estimate():
    hits = np.array([1] * 17 + [0] * 8, dtype=float)
    lo, hi = bootstrap_ci(hits)
    assert lo < hits.mean() < hi
    assert 0.45 < lo < 0.6 and 0.8 < hi < 0.95  # about ±0.18 for n=25 at 68%
    assert bootstrap_ci(np.ones(10)) == (1.0, 1.0)


def _image(path):
    import matplotlib.image

    return matplotlib.image.imread(path)


@pytest.mark.parametrize("n", [4, 100])
def test_confusion_png_is_drawn_and_scales(tmp_path, n):
    rng = np.random.default_rng(0)
    cm = rng.integers(0, 5, (n, n)) + np.eye(n, dtype=int) * 10
    labels = [f"gloss{i}" for i in range(n)]
    path = tmp_path / "cm.png"
    plot_confusion(cm, labels, path, normalise=True)
    img = _image(path)
    assert img.std() > 0.05  # not blank
    h, w = img.shape[:2]
    if n == 4:
        assert (h, w) == (500, 650)
    else:  # grows with the number of glosses: at least 20 pixels per row and column
        assert h >= 20 * n and w >= 20 * n


def test_curves_png(tmp_path):
    hist = tmp_path / "history.csv"
    hist.write_text("epoch,train_loss,train_acc,val_loss,val_acc,seconds\n1,1.2,0.3,1.3,0.2,1\n2,0.8,0.6,1.0,0.5,1\n")
    plot_curves(hist, tmp_path / "curves.png")
    img = _image(tmp_path / "curves.png")
    assert img.shape[:2] == (400, 1100) and img.std() > 0.05
