"""Training both frameworks on real keypoints, checkpoints, comparison, bad data files."""

import pickle

import numpy as np
import pytest
import torch

from signrec.checkpoint import CheckpointError, load_predictor, load_torch
from signrec.cli import main
from signrec.data import load_dataset, load_split
from signrec.io import KeypointFileError, read_csv_rows
from signrec.training.config import TrainConfig
from signrec.training.runner import train

EPOCHS = 30


@pytest.fixture(scope="module")
def webcam_signer(data_dir):
    """Real webcam keypoints of one signer: hello, iloveyou, thanks, 30 clips each, 30 frames."""
    return data_dir / "keypoints" / "webcam" / "akashsharma095"


def _test_accuracy(run, data):
    predictor = load_predictor(run)
    ds = load_dataset(data)
    test = ds.subset(load_split(run / "split.json")[0]["test"])
    probs = predictor.predict_proba([s.keypoints for s in test])
    y = np.array([predictor.labels.index(s.gloss) for s in test])
    return (probs.argmax(1) == y).mean(), probs


@pytest.fixture(scope="module")
def torch_run(webcam_signer, tmp_path_factory):
    out = tmp_path_factory.mktemp("torch_run")
    return out, train(webcam_signer, out, "torch", config=TrainConfig(max_epochs=EPOCHS, progress=False))


@pytest.fixture(scope="module")
def keras_run(webcam_signer, tmp_path_factory, torch_run):
    out = tmp_path_factory.mktemp("keras_run")
    r = train(webcam_signer, out, "keras", config=TrainConfig(max_epochs=EPOCHS, progress=False),
              split_file=torch_run[0] / "split.json")  # fmt: skip
    return out, r


@pytest.mark.slow
@pytest.mark.parametrize("which", ["torch_run", "keras_run"])
def test_training_learns_on_real_keypoints(which, request, webcam_signer):
    run, result = request.getfixturevalue(which)
    acc, probs = _test_accuracy(run, webcam_signer)
    assert acc >= 0.7, f"{result.framework}: held-out accuracy {acc:.2f} (chance 0.33)"
    np.testing.assert_allclose(probs.sum(1), 1, rtol=1e-5)
    assert result.parameters == 596_708 - 33  # 3 glosses: the reference minus one output unit (32 weights + bias)
    history = read_csv_rows(run / "history.csv")
    assert 1 <= len(history) <= EPOCHS and float(history[-1]["train_loss"]) < float(history[0]["train_loss"])


def test_both_frameworks_use_the_same_split(torch_run, keras_run):
    assert load_split(torch_run[0] / "split.json") == load_split(keras_run[0] / "split.json")
    split = load_split(torch_run[0] / "split.json")[0]
    assert not set(split["train"]) & set(split["test"]) and not set(split["val"]) & set(split["test"])


def test_checkpoint_describes_itself_and_round_trips(torch_run, keras_run, webcam_signer):
    ds = load_dataset(webcam_signer)
    xs = [s.keypoints for s in ds.samples[:10]]
    for run, _ in (torch_run, keras_run):
        a, b = load_predictor(run), load_predictor(run)
        assert a.labels == ["hello", "iloveyou", "thanks"]
        assert a.card.layout == "holistic-1662-v1" and a.preprocess.max_frames == 30
        np.testing.assert_array_equal(a.predict_proba(xs), b.predict_proba(xs))
    # The Lightning path saved the best (lowest validation loss) weights, not the last ones.
    _model, card = load_torch(torch_run[0] / "model.pt")
    assert card.training["best_epoch"] == int(np.argmin([float(r["val_loss"]) for r in read_csv_rows(torch_run[0] / "history.csv")])) + 1


def test_loading_a_malicious_checkpoint_runs_no_code(tmp_path):
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (open, (str(marker), "w"))

    path = tmp_path / "model.pt"
    with open(path, "wb") as f:
        pickle.dump({"state_dict": Evil()}, f)
    with pytest.raises(CheckpointError, match="model.pt"):
        load_torch(path)
    assert not marker.exists()


def test_corrupt_or_wrong_shape_file_is_named(tmp_path, webcam_signer):
    for gloss in ("hello", "thanks"):
        (tmp_path / gloss).mkdir()
        for i, src in enumerate(sorted((webcam_signer / gloss).glob("*.npy"))[:3]):
            np.save(tmp_path / gloss / f"{i}.npy", np.load(src))
    np.save(tmp_path / "thanks" / "wrong.npy", np.zeros((30, 258), np.float32))
    with pytest.raises(KeypointFileError, match=r"thanks/wrong.npy: expected keypoints of shape \(frames, 1662\)"):
        load_dataset(tmp_path)
    (tmp_path / "thanks" / "wrong.npy").unlink()
    (tmp_path / "hello" / "broken.npy").write_bytes(b"\x93NUMPY garbage")
    with pytest.raises(KeypointFileError, match="hello/broken.npy"):
        load_dataset(tmp_path)
    (tmp_path / "hello" / "broken.npy").unlink()
    np.save(tmp_path / "hello" / "pickled.npy", np.array([{"a": 1}], dtype=object), allow_pickle=True)
    with pytest.raises(KeypointFileError, match="hello/pickled.npy"):
        load_dataset(tmp_path)


def test_cli_train_and_compare(webcam_signer, tmp_path, capsys):
    assert main(["compare", str(webcam_signer), "--out", str(tmp_path), "--max-epochs", "3", "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "torch" in out and "keras" in out and "596,7" not in out
    rows = read_csv_rows(tmp_path / "comparison.csv")
    assert [r["framework"] for r in rows] == ["torch", "keras"]
    assert rows[0]["parameters"] == rows[1]["parameters"]
    report = (tmp_path / "report.md").read_text()
    assert "torch/lstm" in report and "keras/lstm" in report and "confusion" in report
    assert (tmp_path / "torch" / "eval-test" / "confusion.png").exists()


def test_seed_faithful_read_trains_through_the_cli(webcam_signer, tmp_path, capsys):
    rc = main(["train", str(webcam_signer), "--out", str(tmp_path), "--max-epochs", "2", "--read", "final",
               "--activation", "relu", "--no-progress"])  # fmt: skip
    assert rc == 0 and "596,6" in capsys.readouterr().out
    p = load_predictor(tmp_path)
    assert p.card.model_config["read"] == "final" and p.card.model_config["activation"] == "relu"
    short = torch.zeros(10, 1662).numpy()
    assert p.predict_proba([short]).shape == (1, 3)
