"""The keypoint store: one manifest schema, compact parts, lazy reading, importers as adapters, on real data."""

import numpy as np
import pytest

from conftest import link_tree
from signrec import layout
from signrec.cli import main
from signrec.io import KeypointFileError, read_csv_rows
from signrec.store import COLUMNS, NotAStoreError, StoreWriter, import_keypoints, open_store, write_array
from signrec.store.importers import find_sequences


@pytest.fixture(scope="module")
def hands(data_dir):
    return data_dir / "keypoints" / "wlasl300-hands"


@pytest.fixture(scope="module")
def hands_store(hands, tmp_path_factory):
    """The real WLASL300 hands-only set imported once (2,319 clips)."""
    out = tmp_path_factory.mktemp("wlasl300")
    summary = import_keypoints(hands, out, progress=False)
    return out, summary


def test_a_plain_folder_of_1662_wide_arrays_is_a_store(data_dir):
    store = open_store(data_dir / "keypoints" / "wlasl-b")
    assert len(store) > 60 and store.glosses == ["bed", "book", "thank you"]
    assert store.parts == layout.PARTS
    clip = store.clips[0]
    arr = store.read(clip)
    np.testing.assert_array_equal(arr, np.load(store.root / clip.path))
    assert arr.dtype == np.float32 and arr.shape == (clip.frames, 1662)


@pytest.mark.slow
def test_import_keeps_index_columns_stores_only_the_hands_in_float16(hands, hands_store):
    """Issue 14: the import used to ignore index.csv and widen 258 float16 values to 1662 float32."""
    out, summary = hands_store
    assert summary.ok == 2319 and summary.failed == 0 and summary.widths == {258: 2319}
    assert summary.parts == {"wlasl300-hands": "left_hand+right_hand"}  # the all-zero pose is not stored
    store = open_store(out)
    assert len(store) == 2319 and len(store.glosses) == 300 and len(store.signers) == 69
    assert store.parts == ("left_hand", "right_hand")
    index = {r["path"]: r for r in read_csv_rows(hands / "index.csv")}
    for clip in store.clips[::97]:
        src = index[clip.meta["source"].split("wlasl300-hands/")[1]]
        assert (clip.gloss, clip.signer, clip.split, clip.meta["wlasl100"], clip.meta["video_id"]) == (
            src["gloss"], src["signer"], src["split"], src["wlasl100"], src["video_id"])  # fmt: skip
        stored = store.read_stored(clip)
        assert stored.dtype == np.float16 and stored.shape == (clip.frames, 126)
        original = np.load(hands / src["path"])
        np.testing.assert_array_equal(store.read(clip)[:, layout.LEFT_HAND.start:], original[:, 132:].astype(np.float32))
        assert not store.read(clip)[:, : layout.LEFT_HAND.start].any()  # pose and face: missing
    on_disk = sum((out / c.path).stat().st_size for c in store.clips)
    as_1662_float32 = sum(c.frames for c in store.clips) * 1662 * 4
    assert on_disk / as_1662_float32 < 0.05  # at most 10% asked; 126 x 2 bytes of 1662 x 4 plus headers
    assert set(COLUMNS) <= set(read_csv_rows(out / "manifest.csv")[0])


def test_importing_again_does_nothing(hands, hands_store):
    out, _ = hands_store
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")}
    again = import_keypoints(hands, out, progress=False)
    assert (again.ok, again.skipped, again.failed) == (0, 2319, 0)
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.npy")} == before


def test_the_gloss_comes_from_the_index_not_the_folder(tmp_path, data_dir):
    src = data_dir / "keypoints" / "wlasl-b" / "thank you"
    files = sorted(src.glob("*.npy"))[:2]
    link_tree(tmp_path / "src", {f"thank_you/{f.name}": f for f in files})
    (tmp_path / "src" / "index.csv").write_text("path,gloss,signer\n" + "".join(
        f"thank_you/{f.name},thank you,s{i}\n" for i, f in enumerate(files)))  # fmt: skip
    import_keypoints(tmp_path / "src", tmp_path / "kp", progress=False)
    store = open_store(tmp_path / "kp")
    assert store.glosses == ["thank you"] and store.signers == ["s0", "s1"]
    assert {c.path.split("/")[0] for c in store.clips} == {"thank_you"}


def test_index_rows_without_a_path_are_matched_to_files_by_video_id(tmp_path, data_dir):
    """An index with no path column (WLASL's own: video_id, gloss, signer, split) names each file by its id."""
    hands = data_dir / "keypoints" / "wlasl300-hands"
    rows = [r for r in read_csv_rows(hands / "index.csv") if r["gloss"] == "about"][:3]
    assert len(rows) == 3
    link_tree(tmp_path / "src", {f"signs/{r['video_id']}.npy": hands / r["path"] for r in rows})
    (tmp_path / "src" / "index.csv").write_text("video_id,gloss,signer,split\n" + "".join(
        f"{r['video_id']},about,{r['signer']},{r['split']}\n" for r in rows[:2]))  # fmt: skip
    summary = import_keypoints(tmp_path / "src", tmp_path / "kp", progress=False)
    store = open_store(tmp_path / "kp")
    assert summary.ok == 3 and summary.unmatched == []
    by_id = {c.id: c for c in store.clips}
    for r in rows[:2]:  # matched by id: the index's gloss, signer and split
        assert (by_id[r["video_id"]].gloss, by_id[r["video_id"]].signer, by_id[r["video_id"]].split) == (
            "about", r["signer"], r["split"])  # fmt: skip
    assert (by_id[rows[2]["video_id"]].gloss, by_id[rows[2]["video_id"]].signer) == ("signs", "")  # no row: the folder


def test_index_rows_without_a_file_are_counted_not_dropped_silently(tmp_path, data_dir):
    """An index.csv of 4 clips beside 2 of their files imported 2 and said nothing of the other 2."""
    src = data_dir / "keypoints" / "wlasl-b" / "bed"
    files = sorted(src.glob("*.npy"))[:4]
    link_tree(tmp_path / "src", {f"bed/{f.name}": f for f in files[:2]})
    (tmp_path / "src" / "index.csv").write_text("path,gloss\n" + "".join(f"bed/{f.name},bed\n" for f in files))
    summary = import_keypoints(tmp_path / "src", tmp_path / "kp", progress=False)
    assert summary.ok == 2 and summary.unmatched == [f"bed/{f.name}" for f in files[2:]]
    assert (f"2 rows of {tmp_path / 'src' / 'index.csv'} name no file there (bed/{files[2].name}, bed/{files[3].name})"
            in summary.report())  # fmt: skip


def test_a_one_dimensional_clip_named_by_the_index_is_refused_by_its_own_name(tmp_path, data_dir):
    """A (258,) array as the only file of its gloss folder was taken for a tutorial frame folder, and refused as
    "no gloss" under the folder's name; the index names it as a clip, so the file and its shape are the problem."""
    clip = np.load(min((data_dir / "keypoints" / "wlasl300-hands" / "yes").glob("*.npy")))
    (tmp_path / "src" / "yes").mkdir(parents=True)
    np.save(tmp_path / "src" / "yes" / "1.npy", clip[0])
    (tmp_path / "src" / "index.csv").write_text("path,gloss\nyes/1.npy,yes\n")
    summary = import_keypoints(tmp_path / "src", tmp_path / "kp", progress=False)
    assert summary.ok == 0 and summary.failed == 1
    problem = f"{tmp_path / 'src' / 'yes' / '1.npy'}: expected (frames, values) with at least one frame, got shape "
    assert summary.problems == [problem + f"({clip.shape[1]},)"]


def test_a_store_imported_from_one_folder_refuses_another(tmp_path, data_dir):
    """`run --keypoints B --out OUT` after `run --keypoints A --out OUT` imported B into A's store: clips of the same
    names were replaced, the others mixed in, and the split made for A was used on the mixture."""
    from signrec.store import open_or_import

    webcam = data_dir / "keypoints" / "webcam"
    for name, signer in (("A", "akashsharma095"), ("B", "ilkerdemir-s")):
        files = sorted((webcam / signer / "hello").glob("*.npy"))[:3]
        link_tree(tmp_path / name / "clips", {f"hello/{f.name}": f for f in files})
        (tmp_path / name / "clips" / "index.csv").write_text("path,gloss\n" + "".join(f"hello/{f.name},hello\n"
                                                                                     for f in files))  # fmt: skip
    into = tmp_path / "out" / "keypoints"
    store, _ = open_or_import([tmp_path / "A" / "clips"], into, progress=False, log=lambda _: None)
    assert len(store) == 3
    before = store.fingerprint()
    assert open_or_import([tmp_path / "A" / "clips"], into, progress=False, log=lambda _: None)[1] == "reused"
    with pytest.raises(ValueError, match=f"{into} holds keypoints imported from {tmp_path / 'A' / 'clips'}, not from "
                                         f"{tmp_path / 'B' / 'clips'}"):  # fmt: skip
        open_or_import([tmp_path / "B" / "clips"], into, progress=False, log=lambda _: None)
    assert open_store(into).fingerprint() == before  # nothing of B came in


def _tutorial_tree(root, data_dir, parts=None):
    """MP_Data/<action>/<sequence>/<frame>.npy from real webcam keypoints (one 1-D file per frame)."""
    originals = {}
    for gloss in ("hello", "thanks"):
        for n in range(3):
            seq = np.load(data_dir / "keypoints" / "webcam" / "akashsharma095" / gloss / f"{n:03d}.npy")
            rows = layout.take(seq, parts) if parts else seq
            for t, row in enumerate(rows):
                dest = root / gloss / str(n) / f"{t}.npy"
                dest.parent.mkdir(parents=True, exist_ok=True)
                np.save(dest, row)
            originals[(gloss, str(n))] = seq
    return originals


def test_import_tutorial_layout(data_dir, tmp_path):
    originals = _tutorial_tree(tmp_path / "MP_Data", data_dir)
    s = import_keypoints(tmp_path / "MP_Data", tmp_path / "kp", progress=False)
    assert (s.ok, s.failed) == (6, 0)
    store = open_store(tmp_path / "kp")
    for (gloss, n), seq in originals.items():
        np.testing.assert_array_equal(store.read(f"{gloss}/{n}.npy"), seq)
    assert {c.gloss for c in store.clips} == {"hello", "thanks"} and {c.frames for c in store.clips} == {30}


def test_import_258_values_stores_pose_and_hands_and_reads_the_face_as_missing(data_dir, tmp_path):
    originals = _tutorial_tree(tmp_path / "MP_Data", data_dir, "pose_hands")
    s = import_keypoints(tmp_path / "MP_Data", tmp_path / "kp", progress=False)
    assert s.ok == 6 and s.widths == {258: 6}
    store = open_store(tmp_path / "kp")
    assert store.parts == ("pose", "left_hand", "right_hand") and store.read_stored("hello/0.npy").shape[1] == 258
    got = store.read("hello/0.npy")
    want = originals[("hello", "0")].copy()
    want[:, layout.FACE.slice] = 0
    np.testing.assert_array_equal(got, want)


def test_import_126_hand_values(data_dir, tmp_path):
    seq = np.load(data_dir / "keypoints" / "webcam" / "akashsharma095" / "hello" / "000.npy")
    (tmp_path / "src" / "hello").mkdir(parents=True)
    np.save(tmp_path / "src" / "hello" / "a.npy", layout.take(seq, "hands").astype(np.float16))
    (tmp_path / "src" / "bye").mkdir()
    np.save(tmp_path / "src" / "bye" / "b.npy", layout.take(seq[::-1], "hands"))
    s = import_keypoints(tmp_path / "src", tmp_path / "kp", dtype="float32", progress=False)
    assert s.ok == 2 and s.widths == {126: 2}
    store = open_store(tmp_path / "kp")
    assert store.parts == ("left_hand", "right_hand") and store.read_stored("hello/a.npy").dtype == np.float32


def test_import_refuses_shapes_it_cannot_map(data_dir, tmp_path, capsys):
    _tutorial_tree(tmp_path / "MP_Data", data_dir)
    bad = tmp_path / "MP_Data" / "hello" / "9"
    bad.mkdir()
    for t in range(5):
        np.save(bad / f"{t}.npy", np.zeros(100, np.float32))
    rc = main(["data", "import", str(tmp_path / "MP_Data"), "--out", str(tmp_path / "kp"), "--no-progress"])
    text = capsys.readouterr().out
    assert rc == 1
    assert "100 values per frame cannot be mapped" in text and "hello/9" in text
    rows = {r["path"]: r for r in read_csv_rows(tmp_path / "kp" / "manifest.csv")}
    assert rows["hello/9.npy"]["status"] == "failed" and [r["status"] for r in rows.values()].count("ok") == 6
    assert len(open_store(tmp_path / "kp")) == 6  # failed rows are not clips


def test_import_nested_signer_folders_with_the_csv_beside_them(data_dir, tmp_path):
    s = import_keypoints(data_dir / "keypoints" / "webcam", tmp_path / "kp", progress=False)
    store = open_store(tmp_path / "kp")
    assert s.failed == 0 and len(store) == s.ok > 400
    assert s.index.endswith("keypoints/webcam.csv")  # found beside the folder, named for it
    assert len(store.signers) == 5 and "akashsharma095" in store.signers


def test_aliases_rename_glosses_and_keep_the_source_name(data_dir, tmp_path):
    src = data_dir / "keypoints" / "gislr-hello-thankyou"
    s = import_keypoints(src, tmp_path / "kp", aliases={"thankyou": "thanks"}, progress=False)
    store = open_store(tmp_path / "kp")
    assert s.ok == 747 and store.glosses == ["hello", "thanks"] and len(store.signers) == 21
    assert store.parts == ("pose", "left_hand", "right_hand")  # the face was left out of this source
    thanks = next(c for c in store.clips if c.gloss == "thanks")
    assert thanks.meta["source_gloss"] == "thankyou"


def test_several_sources_share_one_store_and_it_reads_what_all_have(data_dir, tmp_path):
    import_keypoints(data_dir / "keypoints" / "webcam" / "akashsharma095", tmp_path / "kp", progress=False)
    import_keypoints(data_dir / "keypoints" / "gislr-hello-thankyou", tmp_path / "kp", aliases={"thankyou": "thanks"},
                     progress=False)  # fmt: skip
    store = open_store(tmp_path / "kp")
    assert {c.meta["dataset"] for c in store.clips} == {"akashsharma095", "gislr-hello-thankyou"}
    assert store.parts == ("pose", "left_hand", "right_hand")  # the face is not in every source


def test_a_folder_in_the_wrong_layout_gets_one_message_everywhere(data_dir, tmp_path, capsys):
    """Issue 13.9: a flat folder of keypoint files got different, conflicting errors in train, evaluate, import."""
    flat = link_tree(tmp_path / "flat", {f"{i}.npy": p for i, p in
                                         enumerate(sorted((data_dir / "keypoints" / "wlasl-b" / "bed").glob("*.npy"))[:3])})  # fmt: skip
    with pytest.raises(NotAStoreError) as e:
        open_store(flat)
    message = str(e.value)
    assert "3 .npy files directly inside it (no <gloss>/ folders)" in message and "Expected <gloss>/<id>.npy" in message
    assert "signrec data import" in message
    with pytest.raises(NotAStoreError) as e2:
        find_sequences(flat)
    assert "3 .npy files lie directly in it" in str(e2.value) and "Expected <gloss>/<id>.npy" in str(e2.value)
    assert main(["train", str(flat), "--out", str(tmp_path / "run")]) == 2
    assert "no <gloss>/<id>.npy files" in capsys.readouterr().err
    assert not (tmp_path / "run").exists()
    with pytest.raises(NotAStoreError, match="it has an index.csv but no manifest.csv|holds an array of shape"):
        open_store(data_dir / "keypoints" / "wlasl300-hands")


def test_writer_validates_on_write_and_store_checks_shapes_on_read(tmp_path):
    with pytest.raises(KeypointFileError, match="x.npy: contains NaN"):
        write_array(tmp_path, "a/x.npy", np.full((3, 1662), np.nan, np.float32))
    with pytest.raises(KeypointFileError, match="expected 126 values per frame, got 100"):
        write_array(tmp_path, "a/x.npy", np.zeros((3, 100), np.float32), ("left_hand", "right_hand"))
    with StoreWriter(tmp_path) as w:
        w.write("a/x.npy", np.ones((4, 1662), np.float32), ("left_hand", "right_hand"), "float16", gloss="a")
        w.write("b/y.npy", np.ones((2, 126), np.float32), ("left_hand", "right_hand"), gloss="b")
    store = open_store(tmp_path)
    assert store.read_stored("a/x.npy").shape == (4, 126) and store.read("a/x.npy").sum() == 4 * 126
    np.save(tmp_path / "b" / "y.npy", np.ones((5, 126), np.float32))  # changed behind the store's back
    with pytest.raises(KeypointFileError, match=r"b/y.npy: holds \(5, 126\), the manifest says \(2, 126\)"):
        store.read("b/y.npy")
    assert not list(tmp_path.rglob("*.partial"))


@pytest.mark.slow
def test_a_hands_only_model_reads_the_hands_of_holistic_input_and_a_full_model_refuses_hands_only_data(
        hands_store, data_dir, clips, tmp_path):  # fmt: skip
    """Issue 12: a model records the parts it was trained on; data without them gets a clear error."""
    from signrec.evaluate import evaluate_run
    from signrec.predict import load_predictor, predict_files
    from signrec.presets import best, reference
    from signrec.splits import filter_store
    from signrec.training.runner import train

    store = filter_store(open_store(hands_store[0]), ["gloss=book|drink|computer|before"])
    train(store, tmp_path / "hands", best().with_config(max_epochs=1, progress=False))
    p = load_predictor(tmp_path / "hands")
    assert p.parts == ("left_hand", "right_hand") and p.preprocess.normalize == "hands"
    (r,) = predict_files(p, [clips / "68011.mp4"])  # a video: full Holistic keypoints, of which it reads the hands
    assert not r.error and r.frames == 55 and r.top[0][0] in ("book", "drink", "computer", "before")
    full = tmp_path / "full"
    train(data_dir / "keypoints" / "webcam" / "akashsharma095", full, reference().with_config(max_epochs=1, progress=False))
    with pytest.raises(ValueError, match="has no pose, face keypoints, which this model reads"):
        evaluate_run(full, store, "all")


@pytest.mark.slow
def test_pose_files_from_pose_format_read_as_signrecs_own_extraction(clips, tmp_path):
    """pose-format's own MediaPipe Holistic writer and signrec's extraction agree on the same real frames, and
    a .pose written by signrec reads back as it was; .pose files import into a store."""
    from pose_format import Pose
    from pose_format.utils.holistic import load_holistic

    from signrec.extract import extract_video
    from signrec.store.posefmt import read_pose, write_pose
    from signrec.video import iter_rgb, probe

    clip = clips / "01377.mp4"
    info = probe(clip)
    ours = extract_video(clip).keypoints
    theirs = load_holistic(list(iter_rgb(clip)), fps=info.fps, width=info.width, height=info.height)
    (tmp_path / "src" / "afraid").mkdir(parents=True)
    with open(tmp_path / "src" / "afraid" / "01377.pose", "wb") as f:
        theirs.write(f)
    got = read_pose(tmp_path / "src" / "afraid" / "01377.pose")
    assert got.shape == ours.shape == (22, 1662)
    np.testing.assert_array_equal(layout.presence(got), layout.presence(ours))
    np.testing.assert_allclose(got, ours, atol=2e-4)  # float32 pixels back to 0..1
    write_pose(tmp_path / "ours.pose", ours, info.fps, info.width, info.height)
    np.testing.assert_allclose(read_pose(tmp_path / "ours.pose"), ours, atol=1e-5)
    pose = Pose.read((tmp_path / "ours.pose").read_bytes())
    assert [c.name for c in pose.header.components] == ["POSE_LANDMARKS", "FACE_LANDMARKS", "LEFT_HAND_LANDMARKS",
                                                        "RIGHT_HAND_LANDMARKS"]  # fmt: skip
    assert pose.header.components[0].points[15] == "LEFT_WRIST" and pose.body.data.shape == (22, 1, 543, 3)
    s = import_keypoints(tmp_path / "src", tmp_path / "kp", progress=False)
    assert s.ok == 1 and open_store(tmp_path / "kp").glosses == ["afraid"]
