"""Keypoint extraction with real MediaPipe Holistic on real WLASL clips."""

import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from conftest import link_tree
from signrec import layout
from signrec.cli import main
from signrec.extract import Holistic, NoPersonError, extract, extract_video, read_manifest
from signrec.io import read_csv_rows
from signrec.video import FrameRange, VideoError, count_frames

# MediaPipe on real clips, servers, clusters or subprocesses: `make test-fast` leaves them out
pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def holistic():
    with Holistic() as h:
        yield h


@pytest.fixture(scope="module")
def book_68011(clips, holistic):
    return extract_video(clips / "68011.mp4", holistic=holistic)


def test_shape_dtype_and_frame_count(book_68011, clips):
    kp = book_68011.keypoints
    assert kp.dtype == np.float32
    assert kp.shape == (count_frames(clips / "68011.mp4"), 1662)
    assert book_68011.fps == pytest.approx(29.97, abs=0.01)


def test_parts_found_on_a_real_signing_clip(book_68011):
    found = layout.presence(book_68011.keypoints)
    assert found[:, 0].mean() > 0.9  # pose on most frames
    assert found[:, 2:].any(axis=1).mean() > 0.3  # a hand on some
    upper_body = layout.part(book_68011.keypoints, "pose")[:, :17, :2]  # legs may be extrapolated off-frame
    assert ((upper_body > -0.5) & (upper_body < 1.5)).all()  # normalised image coordinates


def test_same_clip_twice_gives_the_same_array(book_68011, clips, holistic):
    extract_video(clips / "01377.mp4", holistic=holistic)  # something else in between: reset must clear tracking
    again = extract_video(clips / "68011.mp4", holistic=holistic)
    np.testing.assert_array_equal(again.keypoints, book_68011.keypoints)


def test_decoded_frames_not_container_count(clips, holistic):
    clip = extract_video(clips / "01377.mp4", holistic=holistic)
    assert clip.frames == 22  # the container says 25


def test_trimmed_extraction_has_the_range_length(clips, holistic):
    clip = extract_video(clips / "63185.mp4", FrameRange(2055, 2111), holistic=holistic)
    assert clip.keypoints.shape == (57, 1662)
    assert layout.presence(clip.keypoints)[:, 0].mean() > 0.9


def test_skeleton_rendering_is_reported_not_crashed_on(data_dir, holistic):
    path = data_dir / "videos" / "no-person" / "skeleton-render-book.mp4"
    with pytest.raises(NoPersonError, match="skeleton-render-book.mp4: no person found"):
        extract_video(path, holistic=holistic, min_person=0.2)


def test_non_video_file_is_a_clear_error(tmp_path, holistic):
    notes = tmp_path / "notes.mp4"
    notes.write_text("this is not a video")
    with pytest.raises(VideoError, match="notes.mp4: not a readable video"):
        extract_video(notes, holistic=holistic)


@pytest.fixture(scope="module")
def video_tree(tmp_path_factory, data_dir, clips):
    root = tmp_path_factory.mktemp("videos")
    link_tree(root, {
        "book/68011.mp4": clips / "68011.mp4",
        "afraid/01377.mp4": clips / "01377.mp4",
        "book/skeleton.mp4": data_dir / "videos" / "no-person" / "skeleton-render-book.mp4",
    })  # fmt: skip
    (root / "book" / "dead.mp4").write_text("<html>gone</html>")
    (root / "afraid" / "empty.mp4").write_bytes(b"")
    (root / "afraid" / "cut.mp4").write_bytes((clips / "68012.mp4").read_bytes()[:30000])
    return root


@pytest.fixture(scope="module")
def serial_run(video_tree, tmp_path_factory):
    out = tmp_path_factory.mktemp("serial")
    return out, extract(video_tree, out, workers=1, progress=False)


def test_batch_records_bad_items_and_goes_on(serial_run):
    out, summary = serial_run
    assert summary.done == 2
    assert len(summary.failed) == 4
    reasons = "\n".join(summary.failed.values())
    assert "dead.mp4: not a readable video" in reasons
    assert "empty.mp4: empty file" in reasons
    assert "cut.mp4: no frame could be decoded" in reasons
    assert "skeleton.mp4: no person found" in reasons
    rows = {r["id"]: r for r in read_manifest(out)}
    assert rows["skeleton"]["status"] == "no_person"
    assert rows["dead"]["status"] == "failed"
    assert rows["68011"]["status"] == "ok" and rows["68011"]["gloss"] == "book"
    assert int(rows["01377"]["frames"]) == 22
    assert float(rows["68011"]["pose"]) > 0.9
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.npy")) == ["afraid/01377.npy", "book/68011.npy"]
    assert summary.parts_found["pose"] > 0.9


def test_parallel_and_serial_runs_give_identical_files(serial_run, video_tree, tmp_path):
    out_serial, _ = serial_run
    summary = extract(video_tree, tmp_path, workers=2, progress=False)
    assert summary.done == 2
    for rel in ["afraid/01377.npy", "book/68011.npy"]:
        assert (tmp_path / rel).read_bytes() == (out_serial / rel).read_bytes()


def test_second_run_skips_what_is_done(serial_run, video_tree):
    out, _ = serial_run
    before = (out / "book" / "68011.npy").stat().st_mtime_ns
    summary = extract(video_tree, out, workers=1, progress=False)
    assert summary.skipped == 2 and summary.done == 0
    assert (out / "book" / "68011.npy").stat().st_mtime_ns == before
    assert len(read_manifest(out)) == 6


def test_cli_exit_status_says_something_failed(video_tree, tmp_path, capsys):
    assert main(["extract", str(video_tree / "afraid"), "--out", str(tmp_path), "--no-progress"]) == 1
    out = capsys.readouterr().out
    assert "1 extracted" in out and "2 failed" in out and "empty.mp4" in out


def test_cli_single_file_with_trim(clips, tmp_path):
    rc = main(["extract", str(clips / "63185.mp4"), "--out", str(tmp_path), "--frame-start", "4200",
               "--frame-end", "-1", "--no-progress", "--min-person", "0"])  # fmt: skip
    assert rc == 0
    kp = np.load(tmp_path / "63185.npy")
    assert kp.shape == (count_frames(clips / "63185.mp4") - 4199, 1662) == (33, 1662)
    row = read_csv_rows(tmp_path / "manifest.csv")[0]
    assert (row["frame_start"], row["frame_end"], row["parts"]) == ("4200", "-1", "pose+face+left_hand+right_hand")


def test_metadata_beside_the_folder_carries_split_and_signer(data_dir, tmp_path):
    """Issue 13.5: videos/wlasl12.csv (WLASL's split and signer) used to be ignored by extract and run."""
    src = data_dir / "videos" / "wlasl12"
    rows = {r["wlasl_video_id"]: r for r in read_csv_rows(data_dir / "videos" / "wlasl12.csv")}
    # the three shortest clips of one gloss, in a folder named like the real one, with its CSV beside it
    chosen = sorted((r for r in rows.values() if r["gloss"] == "yes"), key=lambda r: int(r["frames"]))[:3]
    videos = link_tree(tmp_path / "wlasl12", {f"yes/{r['wlasl_video_id']}.mp4": src / "yes" / f"{r['wlasl_video_id']}.mp4"
                                              for r in chosen})  # fmt: skip
    (tmp_path / "wlasl12.csv").symlink_to(data_dir / "videos" / "wlasl12.csv")
    summary = extract(videos, tmp_path / "kp", workers=1, progress=False)
    assert summary.done == 3 and not summary.notes
    for row in read_manifest(tmp_path / "kp"):
        want = rows[row["id"]]
        assert (row["split"], row["signer"], row["signer_fold"]) == (want["split"], want["signer_id"], want["signer_fold"])
        assert row["dataset"] == "wlasl12" and row["parts"] == "pose+face+left_hand+right_hand"
    with pytest.raises(FileNotFoundError, match="--metadata /nonexistent.csv: no such file"):
        extract(videos, tmp_path / "kp2", metadata="/nonexistent.csv", progress=False)
    assert not (tmp_path / "kp2").exists()


def test_a_flat_folder_of_videos_says_its_clips_have_no_gloss(clips, tmp_path, capsys):
    """Issue 13.9: extract on a flat folder used to leave the gloss column blank without a word."""
    flat = link_tree(tmp_path / "flat", {"01377.mp4": clips / "01377.mp4"})
    assert main(["extract", str(flat), "--out", str(tmp_path / "kp"), "--no-progress"]) == 0
    out = capsys.readouterr().out
    assert "1 clips lie directly in" in out and "their gloss is empty" in out
    assert read_manifest(tmp_path / "kp")[0]["gloss"] == ""


def test_progress_counts_frames_not_clips(video_tree):
    from signrec.extract import expected_frames, find_jobs

    jobs = {j.id: j for j in find_jobs(video_tree)}
    assert expected_frames(jobs["68011"]) == 55 and expected_frames(jobs["01377"]) == 25  # the container's count
    assert expected_frames(jobs["dead"]) == 1  # unreadable: counted as one frame, so the bar still ends


def test_resume_after_a_killed_run(tmp_path, clips):
    videos = link_tree(tmp_path / "videos", {
        "book/68011.mp4": clips / "68011.mp4",
        "book/68012.mp4": clips / "68012.mp4",
        "afraid/01377.mp4": clips / "01377.mp4",
        "wheelchair/63048.mp4": clips / "63048.mp4",
    })  # fmt: skip
    out = tmp_path / "kp"
    cmd = [sys.executable, "-m", "signrec.cli", "extract", str(videos), "--out", str(out), "--workers", "1",
           "--no-progress"]  # fmt: skip
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 120
    while time.time() < deadline and not list(out.rglob("*.npy")):
        time.sleep(0.05)
    os.killpg(proc.pid, signal.SIGKILL)  # the whole process group: parent and worker
    proc.wait()
    finished = list(out.rglob("*.npy"))
    assert 1 <= len(finished) < 4, "the kill should land in the middle of the run"
    for f in finished:  # whatever has its final name is complete
        assert np.load(f).shape[1] == 1662
    summary = extract(videos, out, workers=1, progress=False)
    assert summary.skipped == len(finished)
    assert summary.done == 4 - len(finished)
    assert not summary.failed
    assert not list(out.rglob("*.partial"))
    rows = read_manifest(out)
    assert len(rows) == 4 and all(r["status"] == "ok" for r in rows)
    assert {int(r["frames"]) for r in rows if r["id"] == "01377"} == {22}


def test_format_pose_writes_pose_format_files_in_the_videos_pixels(clips, tmp_path):
    """Issue 12: `extract --format pose` exports pose-format files that pose-format itself reads."""
    from pose_format import Pose

    from signrec.store.posefmt import read_pose
    from signrec.video import probe

    videos = link_tree(tmp_path / "videos", {"afraid/01377.mp4": clips / "01377.mp4"})
    out = tmp_path / "kp"
    assert main(["extract", str(videos), "--out", str(out), "--format", "pose", "--no-progress"]) == 0
    arrays = np.load(out / "afraid" / "01377.npy")
    np.testing.assert_allclose(read_pose(out / "afraid" / "01377.pose"), arrays, atol=1e-4)
    pose = Pose.read((out / "afraid" / "01377.pose").read_bytes())
    info = probe(clips / "01377.mp4")
    assert (pose.header.dimensions.width, pose.header.dimensions.height) == (info.width, info.height)
    assert pose.body.fps == pytest.approx(info.fps, abs=1e-3) and pose.body.data.shape[:2] == (22, 1)
    before = (out / "afraid" / "01377.pose").stat().st_mtime_ns
    assert main(["extract", str(videos), "--out", str(out), "--format", "pose", "--no-progress"]) == 0
    assert (out / "afraid" / "01377.pose").stat().st_mtime_ns == before  # done once: a rerun keeps it
