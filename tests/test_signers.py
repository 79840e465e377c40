"""New signers and cameras: validation on people not in training, several sources in one run, gloss aliases."""

import pytest

from signrec.cli import main
from signrec.predict import load_predictor
from signrec.splits import Split
from signrec.store import open_store


@pytest.mark.slow
def test_run_validates_on_new_people_and_trains_on_several_sources(data_dir, tmp_path, capsys, monkeypatch):
    """Issue 15: with a signer column, validation used to come from the training people (accuracy 1.000 from the
    start, no signal for model selection)."""
    out = tmp_path / "job"
    args = ["run", "--keypoints", str(data_dir / "keypoints" / "webcam"), "--keypoints",
            str(data_dir / "keypoints" / "gislr-hello-thankyou"), "--alias", "thankyou=thanks", "--models", "best",
            "--max-epochs", "1", "--out", str(out), "--no-progress"]  # fmt: skip
    from signrec import pipeline

    monkeypatch.setattr(pipeline, "SMALL_SET_MAX_CLIPS", 100)  # more training clips: no refit nor mixup by default
    assert main(args) == 0
    assert "best model: no refit, no mixup (" in capsys.readouterr().out
    assert not (out / "runs" / "best" / "validated.pt").exists()
    assert load_predictor(out / "runs" / "best").card.training["mixup"] == 0
    store = open_store(out / "keypoints")
    assert store.glosses == ["hello", "iloveyou", "thanks"] and len(store.signers) == 26  # 5 webcam + 21 GISLR people
    assert store.parts == ("pose", "left_hand", "right_hand")  # GISLR has no face: the model reads what both have
    split = Split.load(out / "split.json")
    people = {side: {store.get(p).signer for p in paths} for side, paths in split.sides().items()}
    assert split.how.startswith("signer-disjoint") and people["val"] and people["test"]
    assert not people["train"] & (people["val"] | people["test"])
    report = (out / "report.md").read_text()
    assert "signer-disjoint" in report and "signers in training and in val/test: 0 (none: signer-disjoint)" in report
    assert load_predictor(out / "runs" / "best").parts == ("pose", "left_hand", "right_hand")
