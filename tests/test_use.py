"""Using a trained model: prediction on real clips, ONNX parity, Keras safe loading, live recognition."""

import json

import numpy as np
import pytest

from signrec.checkpoint import load_predictor
from signrec.cli import main
from signrec.data import load_dataset
from signrec.io import read_csv_rows
from signrec.live import NO_SIGN, LiveConfig, Stabiliser, live
from signrec.training.config import TrainConfig
from signrec.training.runner import train
from signrec.video import VideoError, count_frames


@pytest.fixture(scope="module")
def webcam(data_dir):
    return data_dir / "keypoints" / "webcam" / "akashsharma095"


@pytest.fixture(scope="module")
def torch_run(webcam, tmp_path_factory):
    out = tmp_path_factory.mktemp("torch")
    train(webcam, out, "torch", config=TrainConfig(max_epochs=3, progress=False))
    return out


@pytest.fixture(scope="module")
def keras_run(webcam, tmp_path_factory):
    out = tmp_path_factory.mktemp("keras")
    train(webcam, out, "keras", config=TrainConfig(max_epochs=2, progress=False))
    return out


def test_predict_real_clips_from_a_checkpoint_alone(torch_run, clips, tmp_path, capsys):
    ckpt = tmp_path / "only" / "model.pt"  # no dataset, no run folder: the checkpoint alone
    ckpt.parent.mkdir()
    ckpt.write_bytes((torch_run / "model.pt").read_bytes())
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    rc = main(["predict", str(ckpt), str(clips / "68011.mp4"), str(clips / "01377.mp4"), str(bad), "--json"])
    assert rc == 1  # one video failed
    results = {r["video"].rsplit("/", 1)[-1]: r for r in json.loads(capsys.readouterr().out)}
    for name, frames in (("68011.mp4", 55), ("01377.mp4", 22)):
        r = results[name]
        assert r["frames"] == frames
        assert set(r["probabilities"]) == {"hello", "iloveyou", "thanks"}
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert all(0 <= p <= 1 for p in r["probabilities"].values())
        assert [t["probability"] for t in r["top"]] == sorted((t["probability"] for t in r["top"]), reverse=True)
    assert "bad.mp4: not a readable video" in results["bad.mp4"]["error"]


def test_predict_text_output_with_keras(keras_run, clips, capsys):
    assert main(["predict", str(keras_run / "model.keras"), str(clips / "01377.mp4"), "--top-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(clips / "01377.mp4")) and line.count("%") == 2


def test_onnx_gives_the_same_probabilities(torch_run, webcam, tmp_path):
    import onnxruntime as ort

    from signrec.predict import onnx_inputs

    assert main(["export", str(torch_run), "--onnx", str(tmp_path / "m.onnx")]) == 0
    predictor = load_predictor(torch_run)
    ds = load_dataset(webcam)
    seqs = [s.keypoints[:n] for s, n in zip(ds.samples[::9], [30, 20, 7, 30, 12, 1, 30, 25, 30, 30])]
    session = ort.InferenceSession(str(tmp_path / "m.onnx"))
    onnx_probs = session.run(None, onnx_inputs(predictor, seqs))[0]
    np.testing.assert_allclose(onnx_probs, predictor.predict_proba(seqs), rtol=1e-4, atol=1e-6)


def test_keras_checkpoint_loads_in_safe_mode_only(keras_run, tmp_path):
    import zipfile

    p = load_predictor(keras_run)
    assert p.framework == "keras" and p.labels == ["hello", "iloveyou", "thanks"]
    # A .keras file with a Lambda layer (arbitrary code) must be refused by safe mode.
    from signrec.models.keras_lstm import import_keras

    keras = import_keras()
    evil = keras.Sequential([keras.Input((3,)), keras.layers.Lambda(lambda x: x * 2)])
    path = tmp_path / "evil.keras"
    evil.save(path)
    with zipfile.ZipFile(keras_run / "model.keras") as src, zipfile.ZipFile(path, "a") as dst:
        dst.writestr("signrec.json", src.read("signrec.json"))
    with pytest.raises(ValueError, match="(?i)lambda|unsafe|safe_mode"):
        load_predictor(path)


def test_stabiliser_needs_agreement_and_confidence():
    s = Stabiliser(threshold=0.7, stable=3)
    assert [s.update(g, p) for g, p in [("a", 0.9), ("a", 0.9), ("a", 0.9), ("b", 0.9), ("a", 0.95), ("a", 0.5)]] == [
        NO_SIGN, NO_SIGN, "a", NO_SIGN, NO_SIGN, NO_SIGN]  # fmt: skip


def test_live_on_a_real_clip_writes_annotated_video_and_log(torch_run, clips, tmp_path, capsys):
    out = tmp_path / "annotated.mp4"
    rc = main(["live", str(torch_run), "--source", str(clips / "68012.mp4"), "--output", str(out), "--window", "30"])
    assert rc == 0
    assert count_frames(out) == count_frames(clips / "68012.mp4") == 113
    log = read_csv_rows(out.with_suffix(".csv"))
    assert len(log) == (113 - 30) // 2 + 1
    assert {r["top_gloss"] for r in log} <= {"hello", "iloveyou", "thanks"}
    assert all(r["shown"] in {"hello", "iloveyou", "thanks", NO_SIGN} for r in log)
    assert "113 frames" in capsys.readouterr().out


def test_live_draws_on_the_frames(torch_run, clips, tmp_path):
    from signrec.video import iter_frames

    out = tmp_path / "a.mp4"
    live(torch_run, str(clips / "01377.mp4"), out, LiveConfig(window=10, max_frames=15))
    original = list(iter_frames(clips / "01377.mp4"))[:15]
    drawn = list(iter_frames(out))
    assert len(drawn) == 15
    top_bar = np.abs(drawn[5][:20].astype(int) - original[5][:20].astype(int)).mean()
    assert top_bar > 20  # the prediction bar is drawn over the top of the frame


def test_missing_camera_is_a_clear_error(torch_run):
    with pytest.raises(VideoError, match="camera 7: cannot be opened"):
        live(torch_run, 7, None)


def test_every_command_has_help_with_an_example(capsys):
    from signrec.cli import COMMANDS

    for name in COMMANDS:
        with pytest.raises(SystemExit) as e:
            main([name, "--help"])
        assert e.value.code == 0
        assert "example:" in capsys.readouterr().out


def test_live_reports_an_error_from_the_model_stage_and_leaves_no_partial_video(torch_run, clips, tmp_path):
    from signrec.checkpoint import load_predictor

    predictor = load_predictor(torch_run)

    def broken(seqs):
        raise RuntimeError("model exploded")

    predictor.predict_proba = broken
    out = tmp_path / "a.mp4"
    with pytest.raises(RuntimeError, match="model exploded"):
        live(predictor, str(clips / "68012.mp4"), out, LiveConfig(window=5))
    assert not out.exists()
    assert not any(p.name.endswith(".mp4") for p in tmp_path.iterdir())
