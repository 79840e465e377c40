"""Preprocessing, augmentation, the stronger models, the best recipe and `signrec run`, on real data."""

from __future__ import annotations

import json
from dataclasses import replace
from pathlib import Path

import numpy as np
import pytest

from conftest import link_tree
from signrec import layout
from signrec.batching import pad
from signrec.cli import main
from signrec.io import read_csv_rows
from signrec.predict import load_predictor
from signrec.transforms import (
    COMPACT_INDEX,
    Augment,
    Preprocess,
    drop_frames,
    hand_relative,
    mirror,
    normalize_body,
    rotate_scale,
    time_stretch,
)

LEFT, RIGHT, FACE = (layout.COMPONENTS[p].slice for p in ("left_hand", "right_hand", "face"))


@pytest.fixture(scope="module")
def seq(data_dir):
    """A real WLASL sequence (book) with pose, face and both hands in some frames."""
    x = np.load(data_dir / "keypoints" / "wlasl-b" / "book" / "000.npy")
    assert layout.presence(x).any(axis=0).all()
    return x


def _move(frames, dx, dy, s):
    """The whole sequence shifted by (dx, dy) and scaled by s (x, y and z), as a camera change would."""
    out = frames.copy()
    present = layout.presence(frames)
    for i, p in enumerate(layout.PARTS):
        block = layout.part(out, p)
        rows = present[:, i]
        block[rows, :, 0] = block[rows, :, 0] * s + dx
        block[rows, :, 1] = block[rows, :, 1] * s + dy
        block[rows, :, 2] = block[rows, :, 2] * s
    return out


def test_mirror_twice_is_the_identity_and_swaps_the_hands(seq):
    m = mirror(seq)
    np.testing.assert_allclose(mirror(m), seq, atol=1e-6)
    right = seq[:, RIGHT].reshape(len(seq), 21, 3)
    got_left = m[:, LEFT].reshape(len(seq), 21, 3)
    has = right.any(axis=(1, 2))
    np.testing.assert_allclose(got_left[has, :, 0], 1 - right[has, :, 0], atol=1e-6)  # x flipped
    np.testing.assert_array_equal(got_left[has, :, 1:], right[has, :, 1:])
    assert not got_left[~has].any()  # a missing right hand becomes a missing left hand
    pose, mpose = layout.part(seq, "pose"), layout.part(m, "pose")
    np.testing.assert_allclose(mpose[:, layout.POSE_LEFT_WRIST, 0], 1 - pose[:, layout.POSE_RIGHT_WRIST, 0], atol=1e-6)
    assert m.shape == seq.shape and m.dtype == np.float32


def test_body_relative_coordinates_ignore_where_the_signer_stands(seq):
    moved = _move(seq, 0.13, -0.07, 1.4)
    np.testing.assert_allclose(normalize_body(moved), normalize_body(seq), atol=1e-4)
    np.testing.assert_allclose(hand_relative(moved), hand_relative(seq), atol=1e-4)
    pre = Preprocess(features="compact", normalize="body", hand_view=True, motion=True, flags=True)
    np.testing.assert_allclose(pre(moved), pre(seq), atol=1e-4)
    raw = Preprocess(features="compact")  # without normalisation the position shows
    assert np.abs(raw(moved) - raw(seq)).max() > 0.05
    # missing parts stay missing (zeros)
    assert np.array_equal(layout.presence(normalize_body(seq)), layout.presence(seq))


def test_each_feature_switch_adds_what_it_says(seq):
    base = Preprocess(features="compact", normalize="body")
    assert base(seq).shape == (len(seq), len(COMPACT_INDEX) * 3) == (len(seq), 276)
    for switch, extra in (("hand_view", 126), ("hand_shape", 84), ("bones", 2 * 75), ("motion", 276), ("flags", 4)):
        p = Preprocess(features="compact", normalize="body", **{switch: True})
        assert p(seq).shape == (len(seq), 276 + extra) == (len(seq), p.num_features)
    flags = Preprocess(features="compact", flags=True)(seq)[:, -4:]
    np.testing.assert_array_equal(flags, layout.presence(seq).astype(np.float32))
    motion = Preprocess(features="compact", normalize="body", motion=True)(seq)[:, 276:]
    assert not motion[0].any()  # no motion before the first frame
    assert Preprocess(resample=16)(seq).shape == (16, 1662)
    assert Preprocess()(seq).shape == seq.shape  # the reference input is untouched
    np.testing.assert_array_equal(Preprocess()(seq), seq)


def test_augmentations_keep_the_layout_and_do_what_they_say(seq):
    rng = np.random.default_rng(0)
    assert time_stretch(seq, 1.5).shape == (round(len(seq) * 1.5), 1662)
    dropped = drop_frames(seq, 0.3, rng)
    assert len(seq) // 2 <= len(dropped) < len(seq)
    turned = rotate_scale(seq, 90, 1.0, 1.0)
    assert np.array_equal(layout.presence(turned), layout.presence(seq))  # missing parts stay missing
    a = normalize_body(turned)[:, layout.COMPONENTS["pose"].slice].reshape(len(seq), 33, 4)
    b = normalize_body(seq)[:, layout.COMPONENTS["pose"].slice].reshape(len(seq), 33, 4)
    present = layout.presence(seq)[:, 0]
    # a quarter turn about the body: (x, y) -> (-y, x), measured in body coordinates
    np.testing.assert_allclose(a[present, :, 0], -b[present, :, 1], atol=1e-3)
    np.testing.assert_array_equal(Augment.off()(seq, rng), seq)
    out = Augment()(seq, rng)
    assert out.shape[1] == 1662 and out.dtype == np.float32 and np.isfinite(out).all()


@pytest.mark.slow
def test_best_recipe_trains_through_the_cli_and_predicts(data_dir, tmp_path, capsys):
    data = data_dir / "keypoints" / "webcam" / "akashsharma095"
    rc = main(["train", str(data), "--recipe", "best", "--out", str(tmp_path / "best"), "--max-epochs", "3",
               "--no-progress"])  # fmt: skip
    assert rc == 0
    predictor = load_predictor(tmp_path / "best")
    assert predictor.card.model == "convformer" and predictor.preprocess.features == "compact"
    assert predictor.card.training["augment"]["mirror"] == 0.5 and predictor.card.training["schedule"] == "plateau"
    probs = predictor.predict_proba([np.load(data / "hello" / "000.npy"), np.load(data / "thanks" / "001.npy")[:17]])
    assert probs.shape == (2, 3) and np.allclose(probs.sum(1), 1, atol=1e-5)
    # a switch turned off is recorded in the checkpoint
    rc = main(["train", str(data), "--recipe", "best", "--no-augment", "--no-motion", "--out", str(tmp_path / "b2"),
               "--max-epochs", "1", "--no-progress"])  # fmt: skip
    card = load_predictor(tmp_path / "b2").card
    assert rc == 0 and card.training["augment"] is None and card.preprocess["motion"] is False


def _small_video_folder(data_dir, root):
    """Two glosses x three of the shortest real wlasl12 clips."""
    rows = read_csv_rows(data_dir / "videos" / "wlasl12.csv")
    files = {}
    for gloss in ("drink", "help"):
        mine = sorted((r for r in rows if r["gloss"] == gloss), key=lambda r: int(r["frames"]))[:3]
        for r in mine:
            files[f"{gloss}/{r['wlasl_video_id']}.mp4"] = data_dir / "videos" / "wlasl12" / gloss / f"{r['wlasl_video_id']}.mp4"
    return link_tree(root, files)


@pytest.mark.slow
def test_run_does_the_whole_job_and_reuses_its_stages(data_dir, tmp_path, capsys):
    videos = _small_video_folder(data_dir, tmp_path / "videos")
    out = tmp_path / "job"
    args = ["run", "--videos", str(videos), "--out", str(out), "--max-epochs", "2", "--no-progress", "--workers", "2"]
    assert main(args) == 0
    first = capsys.readouterr().out
    assert "keypoints (done)" in first and "train best (done)" in first
    report = (out / "report.md").read_text()
    for model in ("reference-torch", "reference-keras", "best"):
        assert model in report
        assert (out / "runs" / model / "eval-keypoints-test" / "confusion.png").exists()
    assert "Command:" in report and "**Split:**" in report and "Data:" in report
    assert (out / "runs" / "reference-torch" / "model.pt").exists() and (out / "runs" / "reference-keras" / "model.keras").exists()
    rows = read_csv_rows(out / "comparison.csv")
    assert [r["model"] for r in rows] == ["reference-torch", "reference-keras", "best"]
    assert rows[0]["parameters"] == rows[1]["parameters"]  # same architecture, same count in both frameworks
    best_card = load_predictor(out / "runs" / "best").card  # a few clips: two pairs, mixed up, by default
    assert best_card.training["validated"] == "validated.pt"
    assert [m.get("refit", False) for m in best_card.training["members"]] == [False, False, True, True]
    assert best_card.training["mixup"] == 0.4 and [r["mixup"] for r in rows] == ["-", "-", "0.4"]
    from signrec.training.config import resolve_precision
    from signrec.training.runner import on_accelerator

    # the best model's arithmetic as this machine resolves auto
    assert [r["train_precision"] for r in rows] == ["32", "32", resolve_precision("auto", "convformer", on_accelerator())]
    assert "a refit on training + validation clips too, mixup 0.4 (" in first and "runs/best/validated.pt" in report
    assert "best model: 2 validated models and their refits, all averaged" in first
    split = json.loads((out / "split.json").read_text())
    mtime = (out / "runs" / "best" / "model.pt").stat().st_mtime_ns
    assert main(args) == 0
    second = capsys.readouterr().out
    assert "keypoints (reused)" in second and "split (reused)" in second and "train best (reused)" in second
    assert (out / "runs" / "best" / "model.pt").stat().st_mtime_ns == mtime
    assert json.loads((out / "split.json").read_text()) == split


@pytest.mark.slow
def test_best_model_exports_to_onnx_with_the_same_probabilities(data_dir, tmp_path):
    import onnxruntime as ort

    from signrec.export import export_onnx

    data = data_dir / "keypoints" / "webcam" / "akashsharma095"
    assert main(["train", str(data), "--recipe", "best", "--out", str(tmp_path / "best"), "--max-epochs", "1",
                 "--no-progress"]) == 0  # fmt: skip
    predictor = load_predictor(tmp_path / "best")
    onnx_path = export_onnx(tmp_path / "best", tmp_path / "best.onnx")
    seqs = [np.load(data / "hello" / "003.npy"), np.load(data / "iloveyou" / "004.npy")[:20]]
    x, mask = pad([predictor.preprocess(q) for q in seqs])
    got = ort.InferenceSession(str(onnx_path)).run(None, {"x": x, "mask": mask})[0]
    np.testing.assert_allclose(got, predictor.predict_proba(seqs, calibrated=False), atol=1e-5)  # the model's own
    from_onnx = load_predictor(onnx_path)
    assert from_onnx.backend == "onnx" and from_onnx.temperature == predictor.temperature  # the card travels
    np.testing.assert_allclose(from_onnx.predict_proba(seqs), predictor.predict_proba(seqs), atol=1e-5)


def test_fill_gaps_interpolates_short_hand_dropouts_only(seq):
    from signrec.transforms import fill_gaps

    right = layout.COMPONENTS["right_hand"].slice
    found = np.flatnonzero(seq[:, right].any(axis=1))
    run = next(i for i in found if {i + 1, i + 2, i + 3, i + 4} <= set(found))  # five frames in a row with it
    holed = seq.copy()
    holed[run + 1 : run + 4, right] = 0  # Holistic lost the hand for three frames
    filled = fill_gaps(holed, 3)
    w = np.array([1, 2, 3])[:, None] / 4
    np.testing.assert_allclose(filled[run + 1 : run + 4, right], (1 - w) * seq[run, right] + w * seq[run + 4, right],
                               atol=1e-6)  # fmt: skip
    np.testing.assert_array_equal(fill_gaps(holed, 2)[run + 1 : run + 4, right], 0)  # a longer gap stays missing
    body = layout.COMPONENTS["left_hand"].start
    np.testing.assert_array_equal(fill_gaps(seq, 3)[:, :body], seq[:, :body])  # pose and face untouched


def test_the_invariance_augmentations_do_what_they_say(seq):
    """Issue 15: body proportions, camera tilt, lost hands, sources without pose visibility, noise."""
    from signrec.transforms import drop_hand_span, move_arms

    rng = np.random.default_rng(0)
    present = layout.presence(seq)
    longer = move_arms(seq, {"left_hand": 1.2, "right_hand": 1.0})
    left = layout.part(seq, "left_hand")
    moved = layout.part(longer, "left_hand")
    both = present[:, 2]
    np.testing.assert_allclose(moved[both, :, :2] - moved[both, :1, :2], left[both, :, :2] - left[both, :1, :2],
                               atol=1e-5)  # the hand's shape is kept  # fmt: skip
    assert np.abs(moved[both, 0, :2] - left[both, 0, :2]).max() > 0.01  # but the hand moved
    np.testing.assert_array_equal(layout.part(longer, "right_hand"), layout.part(seq, "right_hand"))
    assert np.array_equal(layout.presence(longer), present)
    lost = drop_hand_span(seq, rng)
    gone = [h for h in (2, 3) if (layout.presence(lost)[:, h] != present[:, h]).any()]
    assert len(gone) == 1
    frames_lost = np.flatnonzero(present[:, gone[0]] & ~layout.presence(lost)[:, gone[0]])
    assert len(frames_lost) and not layout.presence(lost)[frames_lost[0] : frames_lost[-1] + 1, gone[0]].any()  # one span
    sheared = rotate_scale(seq, 0, 1, 1, shear=0.3)
    pose, shear_pose = (x[:, :132].reshape(len(seq), 33, 4) for x in (seq, sheared))
    p = present[:, 0]
    np.testing.assert_allclose(shear_pose[p, :, 1], pose[p, :, 1], atol=1e-6)  # y unchanged
    dx, dy = shear_pose[p, :, 0] - pose[p, :, 0], pose[p, :, 1] - pose[p, :1, 1]
    np.testing.assert_allclose(dx - dx[:, :1], 0.3 * dy, atol=1e-5)  # x moved in proportion to y
    aug = Augment(mirror=0, rotate=0, scale=0, stretch=0, drop=0, no_visibility=1.0, jitter=0.01)
    out = aug(seq, rng)
    assert not layout.part(out, "pose")[..., 3].any() and np.array_equal(layout.presence(out), present)


def test_placing_the_hands_elsewhere_moves_them_by_shoulder_widths_and_keeps_their_shape(seq):
    """Issue 15: a GISLR person signs hello at the mouth, the webcam signers at the forehead."""
    from signrec.transforms import ARM_POSE_POINTS, body_frame, place_hands

    present = layout.presence(seq)
    moved = place_hands(seq, np.array([0.2, 0.5]))
    width = body_frame(seq)[1]
    for name, col in (("left_hand", 2), ("right_hand", 3)):
        a, b = layout.part(seq, name), layout.part(moved, name)
        found = present[:, col]
        assert found.any()
        np.testing.assert_allclose(b[found, :, :2] - a[found, :, :2], np.broadcast_to([0.2 * width, 0.5 * width],
                                   b[found, :, :2].shape), atol=1e-5)  # 0.2 shoulder widths across, 0.5 lower  # fmt: skip
        np.testing.assert_array_equal(b[~found], 0)  # a missing hand stays missing
        pts = list(ARM_POSE_POINTS[name])  # the pose's wrist and finger points go with the hand
        p = present[:, 0]
        np.testing.assert_allclose(layout.part(moved, "pose")[p][:, pts, 1] - layout.part(seq, "pose")[p][:, pts, 1],
                                   0.5 * width, atol=1e-5)  # fmt: skip
    np.testing.assert_array_equal(layout.part(moved, "face"), layout.part(seq, "face"))
    np.testing.assert_array_equal(layout.presence(moved), present)
    shoulders = layout.part(moved, "pose")[:, [layout.POSE_LEFT_SHOULDER, layout.POSE_RIGHT_SHOULDER]]
    np.testing.assert_array_equal(shoulders, layout.part(seq, "pose")[:, [layout.POSE_LEFT_SHOULDER,
                                                                             layout.POSE_RIGHT_SHOULDER]])
    assert "hand_place" not in Augment().to_dict() and Augment(hand_place=0.3).to_dict()["hand_place"] == 0.3
    off = dict.fromkeys(("mirror", "rotate", "scale", "stretch", "drop"), 0)
    placed = Augment(**off, hand_place=0.3)(seq, np.random.default_rng(0))  # wired into the augmentation
    np.testing.assert_array_equal(layout.part(placed, "face"), layout.part(seq, "face"))
    assert not np.allclose(layout.part(placed, "left_hand"), layout.part(seq, "left_hand"))


def test_placing_the_hands_needs_a_body_and_leaves_hands_only_clips_as_they_would_be_without_it(seq):
    """Hands-only data is normalised to the hands, so moving both hands changes none of those features; only their
    place in the frame (`image_place`), which is kept as recorded. Such a clip is augmented exactly as without hand
    placement (no random draw spent on it), so a hands-only run is the same model whichever placement the recipe
    asks for."""
    from signrec.presets import BEST_AUGMENT, BEST_PREPROCESS
    from signrec.transforms import place_hands

    hands_only = seq.copy()
    hands_only[:, : layout.COMPONENTS["face"].stop] = 0  # no pose, no face: a WLASL300-hands clip
    pre = replace(BEST_PREPROCESS, image_place=False).for_parts(("left_hand", "right_hand"))
    np.testing.assert_allclose(pre(place_hands(hands_only, np.array([0.7, -0.4]))), pre(hands_only), atol=1e-5)
    with_place, without = replace(BEST_AUGMENT, hand_place=1.0), replace(BEST_AUGMENT, hand_place=0.0)
    for k in range(5):
        a, b = with_place(hands_only, np.random.default_rng(k)), without(hands_only, np.random.default_rng(k))
        np.testing.assert_array_equal(a, b)
    assert not np.array_equal(with_place(seq, np.random.default_rng(0)), without(seq, np.random.default_rng(0)))


def test_level_aspect_makes_portrait_and_landscape_agree(seq):
    """The same signer filmed with another aspect ratio (y stretched 1.6x) gives the same features."""
    from signrec.transforms import level_aspect

    stretched = rotate_scale(seq, 0, 1.0, 1.6)
    pre = Preprocess(features="compact", normalize="body", aspect=True)
    np.testing.assert_allclose(pre(stretched), pre(seq), atol=1e-4)
    plain = Preprocess(features="compact", normalize="body")
    assert np.abs(plain(stretched) - plain(seq)).max() > 0.1  # without it they differ
    pose = layout.part(level_aspect(seq), "pose")[layout.presence(seq)[:, 0]]
    width = np.median(np.abs(pose[:, 11, 0] - pose[:, 12, 0]))
    height = np.median((pose[:, 11, 1] + pose[:, 12, 1]) / 2 - pose[:, 0, 1])
    assert height / width == pytest.approx(0.6, rel=0.05)


def test_resample_all_gives_every_clip_the_same_length(seq):
    pre = Preprocess(features="compact", normalize="body", resample=32, resample_all=True)
    assert pre(seq[:18]).shape[0] == pre(seq).shape[0] == 32
    assert Preprocess(features="compact", normalize="body", resample=32)(seq[:18]).shape[0] == 18


def test_hand_shape_ignores_where_the_hand_is_its_size_and_turn_and_is_zero_without_a_hand(seq):
    from signrec.transforms import hand_distances

    hands = layout.presence(seq)[:, [2, 3]]
    turned = rotate_scale(_move(seq, 0.1, -0.05, 1.3), 20.0, 1.0, 1.0)  # elsewhere, larger, tilted 20 degrees
    got, want = hand_distances(turned), hand_distances(seq)
    np.testing.assert_allclose(got, want, atol=1e-4)
    assert np.isfinite(want).all() and want[hands[:, 0], :42].min() > 0
    assert not want[~hands[:, 0], :42].any() and not want[~hands[:, 1], 42:].any()  # missing hand: zeros


def test_bones_are_unit_directions_that_ignore_where_the_hand_is_and_its_size_and_bends_ignore_its_turn(seq):
    from signrec.transforms import HAND_PARENT, hand_bones

    hands = layout.presence(seq)[:, [2, 3]]
    got = hand_bones(seq, depth=False)
    assert got.shape == (len(seq), 2 * 55) and np.isfinite(got).all()
    left = got[:, :55]
    directions, bends = left[:, :40].reshape(len(seq), 20, 2), left[:, 40:]
    np.testing.assert_allclose(np.linalg.norm(directions[hands[:, 0]], axis=-1), 1.0, atol=1e-5)
    # bone 6 (joint 7 from 6) by hand, in the first frame the left hand was found
    t = int(np.flatnonzero(hands[:, 0])[0])
    h = layout.part(seq, "left_hand")[t, :, :2]
    v = h[7] - h[HAND_PARENT[7]]
    np.testing.assert_allclose(directions[t, 6], v / np.linalg.norm(v), atol=1e-5)
    # the tree is MediaPipe's own hand graph, with the middle and ring finger bases hung from the wrist instead of
    # from their neighbours along the palm
    import mediapipe as mp

    ours = {tuple(sorted((c, p))) for c, p in enumerate(HAND_PARENT) if p >= 0}
    theirs = {tuple(sorted(e)) for e in mp.solutions.hands.HAND_CONNECTIONS}
    assert ours - theirs == {(0, 9), (0, 13)} and theirs - ours == {(5, 9), (9, 13), (13, 17)}
    # each finger's three joints (the thumb's 1, 2, 3; the index finger's 5, 6, 7; ...) bend by the angle between
    # the bone into the joint and the bone out of it, in this order
    joints = [base + k for base in (1, 5, 9, 13, 17) for k in range(3)]
    for n, j in enumerate(joints):
        into, out = h[j] - h[HAND_PARENT[j]], h[j + 1] - h[j]
        np.testing.assert_allclose(bends[t, n], into @ out / np.linalg.norm(into) / np.linalg.norm(out), atol=1e-5)
    assert not got[~hands[:, 0], :55].any() and not got[~hands[:, 1], 55:].any()  # missing hand: zeros
    moved = _move(seq, 0.1, -0.05, 1.3)  # elsewhere and larger: directions and bends unchanged
    np.testing.assert_allclose(hand_bones(moved), got, atol=1e-4)
    turned = hand_bones(rotate_scale(seq, 20.0, 1.0, 1.0))  # turned: directions turn, bends stay
    np.testing.assert_allclose(turned[:, 40:55], bends, atol=1e-4)
    assert np.abs(turned[hands[:, 0], :40] - left[hands[:, 0], :40]).max() > 0.1
    assert hand_bones(seq, depth=True).shape == (len(seq), 2 * 75)
    for name in ("bones", "hand_shape"):  # refused up front, not a failure inside the first batch
        with pytest.raises(ValueError, match=f"{name} needs a hand part"):
            Preprocess(features="compact", parts=("pose",), **{name: True})


def test_without_depth_the_features_do_not_see_z_and_keep_x_y_and_presence(seq):
    from signrec.presets import BEST_PREPROCESS

    other_z = seq.copy()
    pose, rest = other_z[:, :132].reshape(len(seq), -1, 4), other_z[:, 132:].reshape(len(seq), -1, 3)
    pose[..., 2] = np.where(pose[..., 2] != 0, pose[..., 2] * 3 + 0.2, 0)  # another camera's depth guess
    rest[..., 2] = np.where(rest[..., 2] != 0, -rest[..., 2] + 0.1, 0)
    flat, deep = BEST_PREPROCESS, replace(BEST_PREPROCESS, depth=True)
    assert flat.depth is False  # the best recipe's default
    assert not np.allclose(deep(seq), deep(other_z))  # with depth, z is read
    np.testing.assert_array_equal(flat(seq), flat(other_z))
    assert flat(seq).shape == deep(seq).shape  # same inputs, z columns zero
    xy_only = replace(Preprocess(features="compact", normalize="body", flags=True), depth=False)
    got, want = xy_only(seq), Preprocess(features="compact", normalize="body", flags=True)(seq)
    n = len(COMPACT_INDEX)
    np.testing.assert_array_equal(got[:, : 3 * n].reshape(len(seq), n, 3)[..., :2],
                                  want[:, : 3 * n].reshape(len(seq), n, 3)[..., :2])  # fmt: skip
    assert not got[:, : 3 * n].reshape(len(seq), n, 3)[..., 2].any()
    np.testing.assert_array_equal(got[:, 3 * n :], want[:, 3 * n :])  # presence flags unchanged
    assert "depth" not in Preprocess().to_dict() and Preprocess.from_dict(flat.to_dict()).depth is False


def test_trim_drops_the_frames_before_and_after_the_hands(seq):
    from signrec.transforms import trim_to_hands

    padded = np.concatenate([np.zeros((5, 1662), np.float32), seq, np.zeros((7, 1662), np.float32)])
    padded[:5, : layout.COMPONENTS["pose"].stop] = seq[0, : layout.COMPONENTS["pose"].stop]  # a body, no hands
    hands = np.flatnonzero(layout.presence(seq)[:, 2:].any(axis=1))
    np.testing.assert_array_equal(trim_to_hands(padded), seq[hands[0] : hands[-1] + 1])
    no_hands = padded.copy()
    no_hands[:, LEFT] = no_hands[:, RIGHT] = 0
    assert len(trim_to_hands(no_hands)) == len(padded)  # nothing to trim to: unchanged
    pre = Preprocess(features="compact", normalize="body", trim=True)
    np.testing.assert_allclose(pre(padded), pre(seq[hands[0] : hands[-1] + 1]), atol=1e-6)


def test_drop_path_drops_whole_samples_in_training_only():
    import torch

    from signrec.models.convformer import DropPath

    torch.manual_seed(0)
    x = torch.ones(400, 3, 5)
    y = DropPath(0.25).train()(x)
    kept = (y != 0).all(dim=(1, 2))
    assert ((y[kept] - 1 / 0.75).abs() < 1e-6).all() and (y[~kept] == 0).all()  # whole samples, rescaled
    assert 0.15 < (~kept).float().mean() < 0.35
    assert torch.equal(DropPath(0.25).eval()(x), x)


def test_head_dropout_is_its_own_or_the_blocks():
    from signrec.models.convformer import Convformer, ConvformerConfig

    blocks = Convformer(ConvformerConfig(num_classes=5, input_size=7, dim=8, heads=2, dropout=0.3))
    head = Convformer(ConvformerConfig(num_classes=5, input_size=7, dim=8, heads=2, dropout=0.3, head_dropout=0.8))
    assert (blocks.head[0].p, head.head[0].p) == (0.3, 0.8)
    assert blocks.state_dict().keys() == head.state_dict().keys()  # the same weights: old checkpoints load


def test_moving_average_warms_up_then_uses_the_decay():
    import torch

    from signrec.training.lightning import _ema_update

    avg, new = torch.zeros(3), torch.ones(3)
    assert torch.allclose(_ema_update(0.998, avg, new, torch.tensor(0)), torch.full((3,), 0.9))  # mostly the new
    assert torch.allclose(_ema_update(0.998, avg, new, torch.tensor(10**6)), torch.full((3,), 0.002))


def test_hand_turns_keep_the_wrist_and_the_rest_and_crops_keep_a_window(seq):
    """How people hold their hands (each hand turned and sized about its own wrist) and when a recording starts
    and stops (a window of the clip)."""
    from signrec.transforms import time_crop, turn_hands

    present = layout.presence(seq)
    turned = turn_hands(seq, {"right_hand": (90.0, 1.5)})
    right, out = layout.part(seq, "right_hand"), layout.part(turned, "right_hand")
    rows = present[:, 3]
    np.testing.assert_allclose(out[rows, 0], right[rows, 0] * [1, 1, 1.5], atol=1e-6)  # the wrist stays
    before, after = right[rows, :, :2] - right[rows, :1, :2], out[rows, :, :2] - out[rows, :1, :2]
    np.testing.assert_allclose(after[..., 0], -1.5 * before[..., 1], atol=1e-5)  # a quarter turn, 1.5 times the size
    np.testing.assert_allclose(after[..., 1], 1.5 * before[..., 0], atol=1e-5)
    np.testing.assert_array_equal(np.delete(turned, np.r_[RIGHT], axis=1), np.delete(seq, np.r_[RIGHT], axis=1))
    assert np.array_equal(layout.presence(turned), present)  # a missing hand stays missing
    np.testing.assert_array_equal(time_crop(seq, 0.5, 1.0), seq[len(seq) - round(len(seq) * 0.5) :])
    np.testing.assert_array_equal(time_crop(seq, 0.5, 0.0), seq[: round(len(seq) * 0.5)])
    assert len(time_crop(seq[:3], 0.1, 0.5)) == 2
    rng = np.random.default_rng(0)
    lengths = {len(Augment(mirror=0, rotate=0, scale=0, stretch=0, drop=0, crop=0.4)(seq, rng)) for _ in range(40)}
    assert len(seq) in lengths and min(lengths) >= round(len(seq) * 0.6) and len(lengths) > 3


@pytest.mark.slow
def test_an_ensemble_averages_its_members_and_is_one_model_everywhere(data_dir, tmp_path, capsys):
    """`--ensemble 2`: two members with seeds 0 and 1 on one split, each a run of its own; the checkpoint's
    probabilities are the mean of theirs, through the PyTorch checkpoint and ONNX alike; its evaluation draws its members'
    training curves; the same command reuses."""
    import onnxruntime as ort

    from signrec.evaluate import evaluate_run
    from signrec.export import export_onnx

    data = data_dir / "keypoints" / "webcam" / "akashsharma095"
    args = ["train", str(data), "--recipe", "best", "--ensemble", "2", "--out", str(tmp_path / "ens"), "--max-epochs",
            "2", "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert "torch/ensemble of 2" in capsys.readouterr().out
    ens = load_predictor(tmp_path / "ens")
    members = [load_predictor(tmp_path / "ens" / "members" / f"seed-{s}") for s in (0, 1)]
    assert [m.card.training["seed"] for m in members] == [0, 1]
    assert ens.card.model == "ensemble" and ens.card.base[0] == "convformer"
    assert [m["seed"] for m in ens.card.training["members"]] == [0, 1]
    splits = [json.loads((tmp_path / "ens" / f / "split.json").read_text()) for f in (".", "members/seed-0", "members/seed-1")]
    assert splits[0] == splits[1] == splits[2]
    seqs = [np.load(data / "hello" / "003.npy"), np.load(data / "iloveyou" / "004.npy")[:20], np.load(data / "thanks" / "002.npy")]
    own = [m.predict_proba(seqs, calibrated=False) for m in members]
    assert not np.allclose(own[0], own[1], atol=1e-3)  # different seeds, different models
    np.testing.assert_allclose(ens.predict_proba(seqs, calibrated=False), (own[0] + own[1]) / 2, atol=1e-5)
    onnx_path = export_onnx(tmp_path / "ens", tmp_path / "ens.onnx")
    x, mask = pad([ens.preprocess(q) for q in seqs])
    got = ort.InferenceSession(str(onnx_path)).run(None, {"x": x, "mask": mask})[0]
    np.testing.assert_allclose(got, (own[0] + own[1]) / 2, atol=1e-5)
    ev = evaluate_run(tmp_path / "ens", split="val", progress=False, log=lambda *a: None)
    assert Path(ev.files["curves"]).is_file() and "training curves](" in Path(ev.files["report"]).read_text()
    mtime = (tmp_path / "ens" / "model.pt").stat().st_mtime_ns
    assert main(args) == 0 and (tmp_path / "ens" / "model.pt").stat().st_mtime_ns == mtime
    assert "reused" in capsys.readouterr().out


def test_a_two_handed_sign_can_be_signed_with_one_hand(data_dir):
    """Issue 15: the five webcam signers sign thanks with both hands, GISLR's 21 with one, and a model that learnt
    "two hands means thanks" called one-handed thanks hello. `one_hand` trains on the one-handed form of symmetric
    two-handed signs: the hand that moves less is gone from every frame and its arm hangs at the side; other clips
    are left alone."""
    from signrec.transforms import sign_one_handed, symmetric_weaker_hand, weaker_hand

    clip = np.load(data_dir / "keypoints" / "webcam" / "ilkerdemir-s" / "thanks" / "008.npy")
    present = layout.presence(clip)
    assert present[:, 2].sum() > 10 and present[:, 3].sum() > 10  # both hands in the real clip
    for name, column, part in (("left_hand", 2, LEFT), ("right_hand", 3, RIGHT)):  # the hand held still is weaker
        held = clip.copy()
        held[:, part] = np.where(present[:, [column]], clip[present[:, column]][0, part], 0)
        assert weaker_hand(held) == name
    # a hand found in 3 frames that moves fast is not the weaker one beside a still, jittery hand found in all
    few = clip.copy()
    few[:, LEFT] = 0
    few[10:13, LEFT] = clip[10, LEFT] + np.array([0.0, 0.04, 0.08])[:, None] * (clip[10, LEFT] != 0)
    few[:, RIGHT] = np.where(clip[:, RIGHT] != 0, clip[8, RIGHT], 0)
    few[:, RIGHT] += np.random.default_rng(0).normal(0, 0.002, few[:, RIGHT].shape) * (few[:, RIGHT] != 0)
    assert weaker_hand(few) == "right_hand"
    # only symmetric two-handed signs are made with one hand: both hands moving alike, as in thanks; not a resting
    # hand seen now and then, nor a still base hand that the other acts on (dropping it makes another sign)
    assert symmetric_weaker_hand(clip) in ("left_hand", "right_hand")
    assert symmetric_weaker_hand(few) is None
    assert symmetric_weaker_hand(held) is None  # the right hand held still (the loop's last case)
    out = sign_one_handed(clip, "left_hand")
    assert not out[:, LEFT].any() and np.array_equal(out[:, RIGHT], clip[:, RIGHT])
    np.testing.assert_array_equal(out[:, FACE], clip[:, FACE])
    pose, before = out[:, :132].reshape(-1, 33, 4), clip[:, :132].reshape(-1, 33, 4)
    kept = [p for p in range(33) if p not in (13, 15, 17, 19, 21)]
    np.testing.assert_array_equal(pose[:, kept], before[:, kept])  # shoulders, the right arm, the rest
    assert (np.abs(pose[:, [13, 15, 17, 19, 21], :2] - before[:, [13, 15, 17, 19, 21], :2]).sum(-1) > 0.05).all()
    # the wrist hangs about 1.5 shoulder widths below its shoulder (it was up at the chin), in the body's own
    # proportions: the same in a portrait video (y stretched 1.6x), once the aspect is levelled
    from signrec.transforms import level_aspect

    for k in (1.0, 1.6):
        stretched = rotate_scale(clip, 0, 1.0, k)
        level = level_aspect(sign_one_handed(stretched, "left_hand"))[:, :132].reshape(-1, 33, 4)
        up = level_aspect(stretched)[:, :132].reshape(-1, 33, 4)
        width = np.linalg.norm(level[:, 11, :2] - level[:, 12, :2], axis=1)
        np.testing.assert_allclose((level[:, 15, 1] - level[:, 11, 1]) / width, 1.5, atol=0.1)
        assert ((up[:, 15, 1] - up[:, 11, 1]) / width < 1.0).all()
    aug = Augment(mirror=0, rotate=0, scale=0, stretch=0, drop=0, one_hand=1.0)
    rng = np.random.default_rng(0)
    dropped = layout.presence(aug(clip, rng))
    assert dropped[:, 2:].any(axis=0).sum() == 1  # one hand left
    hello = np.load(data_dir / "keypoints" / "webcam" / "ilkerdemir-s" / "hello" / "000.npy")
    hello = hello.copy()
    hello[:, RIGHT] = 0  # one-handed
    np.testing.assert_array_equal(aug(hello, rng), hello)


@pytest.mark.slow
def test_a_model_that_learns_from_extra_glosses_answers_among_the_chosen_ones(data_dir, tmp_path, capsys):
    """Issue 14: a WLASL100 model can learn from all of WLASL300 (more clips for the shared layers) and still
    answer among WLASL100's glosses only. Here: learn hello, thanks and iloveyou; answer hello or thanks."""
    from signrec.evaluate import evaluate_run
    from signrec.splits import Split

    data = data_dir / "keypoints" / "webcam" / "akashsharma095"
    out = tmp_path / "two"
    args = ["train", str(data), "--recipe", "best", "--where", "gloss=hello|thanks", "--extra-glosses", "--out",
            str(out), "--max-epochs", "2", "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(args) == 0
    assert "learning from 90 clips of 3 glosses" in capsys.readouterr().out
    p = load_predictor(out)
    assert p.labels == ["hello", "thanks"] and p.card.model_config["num_classes"] == 2
    assert p.card.training["learnt_glosses"] == 3
    split = Split.load(out / "split.json")
    assert any("iloveyou" in path for path in split.train)  # it learnt from the third gloss
    ev = evaluate_run(out, split="val")
    assert ev.metrics.n == len([q for q in split.val if "iloveyou" not in q]) > 0  # the chosen glosses' clips
    assert ev.skipped == len(split.val) - ev.metrics.n > 0
    assert p.card.training["val_acc"] == pytest.approx(ev.metrics.top1, abs=1e-6)
    plain = ["train", str(data), "--recipe", "best", "--where", "gloss=hello|thanks", "--out", str(out),
             "--max-epochs", "2", "--threads", "1", "--no-progress"]  # fmt: skip
    assert main(plain) != 0  # another run (without the extra gloss) is not mixed up with this one
    assert "made differently" in capsys.readouterr().err
    assert main(["train", str(data), "--extra-glosses", "--out", str(tmp_path / "x")]) != 0
    assert "give --where" in capsys.readouterr().err
    # a filter on more than the gloss: the clips it drops stay out, even of the glosses answered among
    other = tmp_path / "other"
    assert main(["train", str(data), "--recipe", "best", "--where", "gloss=hello|thanks", "--where", "id!=000|001",
                 "--extra-glosses", "--out", str(other), "--max-epochs", "1", "--threads", "1", "--no-progress"]) == 0  # fmt: skip
    sides = Split.load(other / "split.json").sides()
    used = {q for side in sides.values() for q in side}
    assert {"hello/000.npy", "thanks/001.npy"}.isdisjoint(used) and "iloveyou/000.npy" in used
    assert main(["run", "--keypoints", str(data), "--where", "gloss=hello|thanks", "--extra-glosses", "--out",
                 str(tmp_path / "keras")]) != 0  # the default models include the Keras baseline  # fmt: skip
    assert "reference-keras is Keras" in capsys.readouterr().err
    job = tmp_path / "job"  # the whole job: one split over all three glosses, scored on the two; with a refit
    assert main(["run", "--keypoints", str(data), "--where", "gloss=hello|thanks", "--extra-glosses", "--models",
                 "best", "--max-epochs", "1", "--threads", "1", "--no-progress", "--refit", "--out", str(job)]) == 0  # fmt: skip
    split = Split.load(job / "split.json")
    assert any("iloveyou" in path for path in split.train)
    report = (job / "report.md").read_text()
    assert "learnt from 90 clips of 3 glosses" in report and "answer among the 2" in report
    assert "averages 1 validated model(s) and 1 refit(s)" in report and "runs/best/validated.pt" in report
    header, row = (next(line for line in report.splitlines() if line.startswith(start))
                   for start in ("| model | recipe", "| best | best"))  # the training table
    cells = dict(zip(header.split("|"), row.split("|"), strict=True))
    assert cells[" best_epoch "].strip() == "1"  # the validated member's kept epoch, not a placeholder
    model = load_predictor(job / "runs" / "best")
    assert model.labels == ["hello", "thanks"] and model.card.model == "ensemble"
    refit = Split.load(job / "runs" / "best" / "members" / "refit-seed-1" / "split.json")
    assert sorted(refit.train) == sorted(split.train + split.val)  # every gloss's validation clips learnt from


def test_without_a_body_the_hands_place_in_the_frame_is_a_feature_and_with_one_it_is_not(seq):
    """Hands-only features are relative to the hands, so the same movement at the forehead and at the chin look
    alike; `image_place` adds each wrist's place in the frame and the hand's size there. It follows the mirror (x
    flipped, hands swapped), is zero where a hand is missing, and is dropped where there is a body to measure
    against (the recipe then reads the same features as before)."""
    from signrec.presets import BEST_PREPROCESS
    from signrec.transforms import IMAGE_PLACE_WIDTH, hand_image_place

    hands_only = seq.copy()
    hands_only[:, : layout.COMPONENTS["face"].stop] = 0
    pre = BEST_PREPROCESS.for_parts(("left_hand", "right_hand"))
    assert pre.image_place  # the best recipe's default
    plain = replace(BEST_PREPROCESS, image_place=False).for_parts(("left_hand", "right_hand"))
    assert pre.num_features == plain.num_features + 2 * IMAGE_PLACE_WIDTH
    lower = _move(hands_only, 0.0, 0.25, 1.0)  # the same sign made a quarter of the frame lower
    np.testing.assert_allclose(plain(lower), plain(hands_only), atol=1e-5)  # the hands-relative features: alike
    assert np.abs(pre(lower) - pre(hands_only)).max() > 0.2  # with the place in the frame: told apart

    place, hands = hand_image_place(hands_only), layout.presence(hands_only)[:, [2, 3]]
    wrist = layout.part(hands_only, "left_hand")[hands[:, 0], 0, :2]
    np.testing.assert_allclose(place[hands[:, 0], :2], wrist - 0.5, atol=1e-6)
    assert (place[hands[:, 0], 2] > 0).all() and not place[~hands[:, 0], :3].any() and not place[~hands[:, 1], 3:].any()
    mirrored = hand_image_place(mirror(hands_only))
    np.testing.assert_allclose(mirrored[:, 3:], place[:, :3] * np.array([-1, 1, 1]), atol=1e-6)
    np.testing.assert_allclose(mirrored[:, :3], place[:, 3:] * np.array([-1, 1, 1]), atol=1e-6)

    with_body = BEST_PREPROCESS.for_parts(layout.PARTS)  # with a body: the features (and fingerprints) as before
    assert not with_body.image_place
    assert with_body.to_dict() == replace(BEST_PREPROCESS, image_place=False).for_parts(layout.PARTS).to_dict()
    body = Preprocess(features="compact", normalize="body", image_place=True)  # asked for with a body: nothing added
    assert body.num_features == Preprocess(features="compact", normalize="body").num_features
