"""Calibration: temperature scaling, calibration error, the "unknown" threshold, and where they show."""

import json

import numpy as np
import pytest

from signrec.calibration import (
    UNKNOWN,
    calibrate,
    choose_threshold,
    expected_calibration_error,
    fit_temperature,
    risk_coverage,
    with_temperature,
)
from signrec.cli import main
from signrec.predict import load_predictor
from signrec.presets import best
from signrec.training.runner import train


def _overconfident(n=2000, classes=4, seed=0):
    """Labels right 70% of the time, but the model always says 97%."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, classes, n)
    pred = np.where(rng.random(n) < 0.7, y, (y + rng.integers(1, classes, n)) % classes)
    probs = np.full((n, classes), 0.01)
    probs[np.arange(n), pred] = 0.97
    return probs, y


def test_temperature_scaling_fixes_overconfidence_without_changing_the_answers():
    probs, y = _overconfident()
    t = fit_temperature(probs, y)
    after = with_temperature(probs, t)
    assert t > 1.5  # softened
    assert (after.argmax(1) == probs.argmax(1)).all()
    np.testing.assert_allclose(after.sum(1), 1, atol=1e-5)
    before_ece, after_ece = expected_calibration_error(probs, y), expected_calibration_error(after, y)
    assert before_ece == pytest.approx(0.27, abs=0.03) and after_ece < 0.03
    assert after.max(1).mean() == pytest.approx(0.7, abs=0.03)  # confidence now matches accuracy


def test_a_validation_set_without_a_mistake_does_not_make_the_model_certain():
    """14 validation clips all right, at raw confidences of 0.4-0.6 (a young model on an easy signer). The
    likelihood alone is best at T -> 0, which made every answer ~100% sure on 14 clips (CI: a 2-epoch model said
    hello at p >= 0.999). Fourteen right of fourteen supports about 15/16 = 94%, not certainty."""
    rng = np.random.default_rng(0)
    n, classes = 14, 3
    y = np.arange(n) % classes
    probs = rng.uniform(0.2, 0.3, (n, classes))
    probs[np.arange(n), y] = rng.uniform(0.4, 0.6, n)
    probs /= probs.sum(1, keepdims=True)
    after = with_temperature(probs, fit_temperature(probs, y))
    assert (after.argmax(1) == y).all()
    assert after.max(1).mean() == pytest.approx((n + 1) / (n + 2), abs=0.02)
    # one mistake in 14 is not certainty either, and lowers the confidence further
    y_wrong = y.copy()
    y_wrong[0] = (y[0] + 1) % classes
    assert with_temperature(probs, fit_temperature(probs, y_wrong)).max(1).mean() < after.max(1).mean()


def test_the_threshold_is_the_lowest_that_keeps_the_answered_accurate():
    probs = np.array([[0.9, 0.1], [0.8, 0.2], [0.7, 0.3], [0.6, 0.4], [0.55, 0.45]])
    y = np.array([0, 0, 0, 1, 0])  # the 0.6 one is wrong
    curve = risk_coverage(probs, y)
    assert [round(p["accuracy"], 2) for p in curve] == [1.0, 1.0, 1.0, 0.75, 0.8]
    assert choose_threshold(probs, y, target=0.95) == 0.7  # answer the three it gets right
    assert choose_threshold(probs, y, target=0.75) == 0.0  # 80% over all: answer everything
    c = calibrate(probs, y, target=0.95)
    assert c.clips == 5 and 0 < c.coverage < 1


@pytest.mark.slow
def test_a_trained_run_is_calibrated_on_validation_and_says_unknown_below_its_threshold(data_dir, tmp_path, capsys):
    webcam = data_dir / "keypoints" / "webcam" / "akashsharma095"
    train(webcam, tmp_path / "run", best().with_config(max_epochs=2, progress=False))
    p = load_predictor(tmp_path / "run")
    cal = p.card.calibration
    assert cal["temperature"] > 0 and cal["clips"] == 14 and 0 <= cal["threshold"] < 1  # the 14 validation clips
    clip = webcam / "hello" / "000.npy"
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "run"), str(clip), "--json", "--threshold", "0.999"]) == 0
    (r,) = json.loads(capsys.readouterr().out)
    assert r["answer"] == UNKNOWN and r["top"][0]["probability"] < 0.999
    assert main(["predict", str(tmp_path / "run"), str(clip), "--json", "--threshold", "0"]) == 0
    assert json.loads(capsys.readouterr().out)[0]["answer"] == r["top"][0]["gloss"]
    raw = p.predict_proba([np.load(clip)], calibrated=False)
    np.testing.assert_allclose(p.predict_proba([np.load(clip)]), with_temperature(raw, cal["temperature"]), atol=1e-6)
    assert main(["evaluate", str(tmp_path / "run"), "--split", "val"]) == 0
    report = (tmp_path / "run" / "eval-akashsharma095-val" / "report.md").read_text()
    assert "calibration error" in report and "coverage.png" in report
    assert (tmp_path / "run" / "eval-akashsharma095-val" / "coverage.png").stat().st_size > 10_000
