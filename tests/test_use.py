"""Using a trained model: prediction on real clips and keypoint files, ONNX parity through the command line,
Keras safe loading, the sliding window and live recognition."""

import json
import subprocess
import sys

import numpy as np
import pytest

from signrec.cli import main
from signrec.io import read_csv_rows
from signrec.live import LiveConfig, live
from signrec.predict import NO_SIGN, SlidingWindow, Stabiliser, default_window, load_predictor
from signrec.presets import reference
from signrec.store import open_store
from signrec.training.runner import train
from signrec.video import VideoError, count_frames

# MediaPipe on real clips, servers, clusters or subprocesses: `make test-fast` leaves them out
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def webcam(data_dir):
    return data_dir / "keypoints" / "webcam" / "akashsharma095"


@pytest.fixture(scope="module")
def torch_run(webcam, tmp_path_factory):
    out = tmp_path_factory.mktemp("torch")
    train(webcam, out, reference().with_config(max_epochs=3, progress=False))
    return out


@pytest.fixture(scope="module")
def keras_run(webcam, tmp_path_factory):
    out = tmp_path_factory.mktemp("keras")
    train(webcam, out, reference().with_config(max_epochs=2, progress=False), "keras")
    return out


def test_predict_real_clips_from_a_checkpoint_alone(torch_run, clips, tmp_path, capsys):
    ckpt = tmp_path / "only" / "model.pt"  # no dataset, no run folder: the checkpoint alone
    ckpt.parent.mkdir()
    ckpt.write_bytes((torch_run / "model.pt").read_bytes())
    bad = tmp_path / "bad.mp4"
    bad.write_text("not a video")
    rc = main(["predict", str(ckpt), str(clips / "68011.mp4"), str(clips / "01377.mp4"), str(bad), "--json"])
    captured = capsys.readouterr()
    assert rc == 1  # one video failed
    results = {r["input"].rsplit("/", 1)[-1]: r for r in json.loads(captured.out)}
    for name, frames in (("68011.mp4", 55), ("01377.mp4", 22)):
        r = results[name]
        assert r["frames"] == frames
        assert set(r["probabilities"]) == {"hello", "iloveyou", "thanks"}
        assert sum(r["probabilities"].values()) == pytest.approx(1, abs=1e-5)
        assert all(0 <= p <= 1 for p in r["probabilities"].values())
        assert [t["probability"] for t in r["top"]] == sorted((t["probability"] for t in r["top"]), reverse=True)
        assert r["found"]["pose"] > 0.5
    assert "bad.mp4: not a readable video" in results["bad.mp4"]["error"]


def test_predict_is_quiet_unless_verbose(torch_run, clips):
    """Issue 13.8: MediaPipe's and absl's own lines used to flood predict's output."""
    cmd = [sys.executable, "-m", "signrec.cli", "predict", str(torch_run), str(clips / "01377.mp4")]
    quiet = subprocess.run(cmd, capture_output=True, text=True, timeout=300, check=False)
    assert quiet.returncode == 0 and "01377.mp4 (22 frames)" in quiet.stdout
    assert quiet.stderr.strip() == "", quiet.stderr
    loud = subprocess.run([*cmd, "--verbose"], capture_output=True, text=True, timeout=300, check=False)
    assert loud.returncode == 0 and ("TensorFlow Lite" in loud.stderr or "W0000" in loud.stderr or "I0000" in loud.stderr)


def test_predict_text_output_with_keras(keras_run, clips, capsys):
    assert main(["predict", str(keras_run / "model.keras"), str(clips / "01377.mp4"), "--top-k", "2"]) == 0
    line = capsys.readouterr().out.strip()
    assert line.startswith(str(clips / "01377.mp4")) and line.count("%") == 2


@pytest.mark.parametrize("switches", [["--features", "compact"], ["--recipe", "best", "--resample", "0"]])
def test_onnx_and_checkpoint_agree_on_any_length_through_the_cli(switches, webcam, data_dir, tmp_path, capsys):
    """Issue 11.3: with no padded length and no resampling (an LSTM on compact features, the best recipe without
    resampling) the ONNX export used to cut every clip to 64 frames (0.005 and 0.055 apart at 100 and 300 frames
    on the old main); `predict` now also takes .onnx and keypoint files."""
    run = tmp_path / "run"
    assert main(["train", str(webcam), *switches, "--out", str(run), "--max-epochs", "1", "--no-progress"]) == 0
    card = load_predictor(run).card
    assert card.preprocess["max_frames"] is None and card.preprocess["resample"] is None
    assert main(["export", str(run), "--onnx", str(tmp_path / "m.onnx")]) == 0
    # real frames of real clips, strung together to 10, 100 and 300 frames
    store = open_store(data_dir / "keypoints" / "wlasl-b")
    frames = np.concatenate([store.read(c) for c in store.clips[:8]])
    files = []
    for n in (10, 100, 300):
        np.save(tmp_path / f"clip{n}.npy", frames[:n])
        files.append(str(tmp_path / f"clip{n}.npy"))
    capsys.readouterr()
    assert main(["predict", str(run), *files, "--json"]) == 0
    from_checkpoint = json.loads(capsys.readouterr().out)
    assert main(["predict", str(tmp_path / "m.onnx"), *files, "--json"]) == 0
    from_onnx = json.loads(capsys.readouterr().out)
    for a, b in zip(from_checkpoint, from_onnx, strict=True):
        assert a["frames"] == b["frames"] and a["frames"] in (10, 100, 300)
        for g in a["probabilities"]:
            assert a["probabilities"][g] == pytest.approx(b["probabilities"][g], abs=1e-4)


def test_a_relu_lstm_exports_at_a_fixed_length_and_says_so_beyond_it(webcam, data_dir, tmp_path, capsys):
    run = tmp_path / "relu"
    assert main(["train", str(webcam), "--features", "compact", "--activation", "relu", "--out", str(run),
                 "--max-epochs", "1", "--no-progress"]) == 0  # fmt: skip
    assert main(["export", str(run), "--onnx", str(tmp_path / "m.onnx")]) == 0
    assert load_predictor(tmp_path / "m.onnx").card.export == {"onnx_frames": 30}  # the longest training clip
    frames = np.concatenate([np.load(data_dir / "keypoints" / "wlasl-b" / "book" / f"{i:03d}.npy") for i in range(2)])
    np.save(tmp_path / "short.npy", frames[:30])
    np.save(tmp_path / "long.npy", frames[:31])
    capsys.readouterr()
    assert main(["predict", str(tmp_path / "m.onnx"), str(tmp_path / "short.npy"), str(tmp_path / "long.npy")]) == 1
    out = capsys.readouterr().out
    assert "short.npy (30 frames)" in out and "long.npy: ERROR" in out and "31 frames is longer than this ONNX model's fixed 30" in out


def test_onnx_prediction_needs_no_torch(torch_run, clips, tmp_path):
    assert main(["export", str(torch_run), "--onnx", str(tmp_path / "m.onnx")]) == 0
    code = ("import sys; from signrec.predict import predict_files; "
            f"r = predict_files({str(tmp_path / 'm.onnx')!r}, [{str(clips / '01377.mp4')!r}]); "
            "print(r[0].top[0][0], 'torch' in sys.modules)")  # fmt: skip
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False)
    assert out.returncode == 0, out.stderr
    gloss, torch_loaded = out.stdout.split()
    assert gloss in ("hello", "iloveyou", "thanks") and torch_loaded == "False"


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


def test_window_is_a_typical_clip_and_predictions_start_at_half_of_it(torch_run, keras_run):
    """Issue 13.6: the reference's window was its longest training clip, so short signing never got a prediction."""
    p = load_predictor(torch_run)
    p.card.training["frames_median"] = 40  # as if the typical training clip were 40 frames
    p.card.training["frames_max"] = 128
    p.preprocess.max_frames = 128
    w = SlidingWindow(p, stride=1)
    assert default_window(p) == 40 == w.window and w.min_frames == 20
    rows = np.zeros((25, 1662), np.float32)
    steps = [w.push(r) for r in rows]
    assert all(s is None for s in steps[:19]) and steps[19] is not None and steps[19].frame == 20
    short = SlidingWindow(p, stride=1)
    for r in rows[:10]:
        short.push(r)
    assert short.predictions == 0 and "needs 20" in short.status()
    assert default_window(load_predictor(keras_run)) == 30  # webcam clips are 30 frames


def test_live_on_a_real_clip_writes_annotated_video_and_log(torch_run, clips, tmp_path, capsys):
    out = tmp_path / "annotated.mp4"
    rc = main(["live", str(torch_run), "--source", str(clips / "68012.mp4"), "--output", str(out), "--window", "30"])
    assert rc == 0
    assert count_frames(out) == count_frames(clips / "68012.mp4") == 113
    log = read_csv_rows(out.with_suffix(".csv"))
    assert [int(r["frame"]) for r in log] == list(range(16, 114, 2))  # from half a window (15) on, every other frame
    assert {r["top_gloss"] for r in log} <= {"hello", "iloveyou", "thanks"}
    assert all(r["shown"] in {"hello", "iloveyou", "thanks", NO_SIGN} for r in log)
    printed = capsys.readouterr().out
    assert "113 frames" in printed and "window 30 frames" in printed


def test_live_says_when_the_clip_is_too_short_for_the_model(torch_run, clips, tmp_path):
    r = live(torch_run, str(clips / "01377.mp4"), tmp_path / "a.mp4", LiveConfig(window=100))
    assert r.predictions == 0 and "only 22 frames so far: the model needs 50" in r.warning


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


def test_live_reports_an_error_from_the_model_stage_and_leaves_no_partial_video(torch_run, clips, tmp_path):
    predictor = load_predictor(torch_run)

    def broken(seqs):
        raise RuntimeError("model exploded")

    predictor.predict_proba = broken
    out = tmp_path / "a.mp4"
    with pytest.raises(RuntimeError, match="model exploded"):
        live(predictor, str(clips / "68012.mp4"), out, LiveConfig(window=5))
    assert not out.exists()
    assert not any(p.name.endswith(".mp4") for p in tmp_path.iterdir())
