"""WLASL metadata, downloads against a real loopback HTTP server, trimming and resume."""

from __future__ import annotations

import dataclasses
import json

import cv2
import numpy as np
import pytest

from loopback import LoopbackServer
from signrec import wlasl
from signrec.cli import main
from signrec.download import DownloadError, FetchConfig, Missing, http_download, ytdlp_download
from signrec.io import read_csv_rows
from signrec.video import FrameRange, count_frames, iter_frames, write_video

# MediaPipe on real clips, servers, clusters or subprocesses: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

FAST = {"timeout": 1.0, "retries": 1, "backoff": 0.01}


@pytest.fixture(scope="module")
def meta(data_dir):
    return wlasl.load_metadata(data_dir / "wlasl" / "WLASL_v0.3.json")


@pytest.fixture(scope="module")
def served(tmp_path_factory, clips, data_dir):
    """A folder of real files for the server: WLASL clips, a real Flash (.swf) video, the metadata."""
    root = tmp_path_factory.mktemp("served")
    for name in ("63185.mp4", "68012.mp4", "01377.mp4", "68011.mp4"):
        (root / name).symlink_to(clips / name)
    (root / "WLASL_v0.3.json").symlink_to(data_dir / "wlasl" / "WLASL_v0.3.json")
    # FFmpeg's SWF muxer (through OpenCV) wraps the real clip's frames in a genuine Flash file.
    frames = list(iter_frames(clips / "01377.mp4"))
    h, w = frames[0].shape[:2]
    writer = cv2.VideoWriter(str(root / "01377.swf"), cv2.VideoWriter_fourcc(*"FLV1"), 25, (w, h))
    for f in frames:
        writer.write(f)
    writer.release()
    assert (root / "01377.swf").read_bytes()[:3] == b"FWS"
    return root


@pytest.fixture()
def server(served):
    with LoopbackServer(served, slow_seconds=3.0) as s:
        yield s


def _instance(meta, video_id):
    return next(i for insts in meta.values() for i in insts if i.video_id == video_id)


# --- metadata and selection ---------------------------------------------------------------------------------


def test_reference_subset_counts_per_split(meta):
    chosen = wlasl.select(meta)
    counts = {}
    for i in chosen:
        counts.setdefault(i.gloss, {}).setdefault(i.split, 0)
        counts[i.gloss][i.split] += 1
    assert counts == {
        "book": {"train": 30, "val": 6, "test": 4}, "drink": {"train": 25, "val": 6, "test": 4},
        "hello": {"train": 9, "val": 2, "test": 2}, "idea": {"train": 9, "val": 2, "test": 2},
    }  # fmt: skip
    assert sum(i.split == "test" for i in chosen) == 12


@pytest.mark.parametrize("n", [100, 300])
def test_top_n_matches_the_official_nslt_split_files(meta, data_dir, n):
    nslt = json.loads((data_dir / "wlasl" / f"nslt_{n}.json").read_text())
    chosen = wlasl.select(meta, top=n)
    known = {i.video_id for insts in meta.values() for i in insts}  # nslt_300 also lists one id v0.3 lacks
    assert {i.video_id for i in chosen} == set(nslt) & known
    assert all(nslt[i.video_id]["subset"] == i.split for i in chosen)
    assert len({i.gloss for i in chosen}) == n


def test_gloss_names_become_safe_folders(meta):
    chosen = wlasl.select(meta, ["thank you", "don't want"])
    assert {i.folder for i in chosen} == {"thank_you", "don_t_want"}
    assert all(i.gloss in ("thank you", "don't want") for i in chosen)
    with pytest.raises(wlasl.MetadataError, match="'boook' \\(did you mean book"):
        wlasl.select(meta, ["boook"])


def test_bad_metadata_file_is_named(tmp_path):
    bad = tmp_path / "WLASL_v0.3.json"
    bad.write_text("<html>not json</html>")
    with pytest.raises(wlasl.MetadataError, match="WLASL_v0.3.json: not a JSON file"):
        wlasl.load_metadata(bad)
    bad.write_text('[{"gloss": "book"}]')
    with pytest.raises(wlasl.MetadataError, match="entry 0 is not a WLASL gloss entry"):
        wlasl.load_metadata(bad)


def test_metadata_is_downloaded_once_and_cached(server, tmp_path):
    url = f"{server.url}/meta/WLASL_v0.3.json"
    first = wlasl.default_metadata(tmp_path / "cache", url=url)
    second = wlasl.default_metadata(tmp_path / "cache", url=url)
    assert first == second and len(wlasl.load_metadata(first)) == 2000
    assert server.hits["/meta/WLASL_v0.3.json"] == 1
    with pytest.raises(wlasl.MetadataError, match="not the WLASL metadata"):
        wlasl.default_metadata(tmp_path / "other", url=f"{server.url}/meta/01377.mp4")
    assert not list((tmp_path / "other").iterdir())


# --- HTTP and yt-dlp downloads ------------------------------------------------------------------------------


def test_http_download_gets_the_exact_file(server, served, tmp_path):
    got = http_download(f"{server.url}/v/68012.mp4", tmp_path / "a", FetchConfig(**FAST))
    assert got.name == "a.mp4" and got.read_bytes() == (served / "68012.mp4").read_bytes()


@pytest.mark.parametrize(("route", "error", "message"), [
    ("gone", Missing, "HTTP 404"),
    ("html", Missing, "HTML page"),
    ("html-as-swf", Missing, "HTML page"),
    ("slow", DownloadError, "timed out"),
    ("cut", DownloadError, "closed early"),
])  # fmt: skip
def test_http_failures_are_classified_and_leave_nothing(server, tmp_path, route, error, message):
    url = f"{server.url}/{route}/68012.mp4"
    with pytest.raises(error, match=message) as info:
        http_download(url, tmp_path / "a", FetchConfig(**FAST))
    assert url in str(info.value)
    assert list(tmp_path.iterdir()) == []  # no partial file that could look finished
    tries = server.hits[f"/{route}/68012.mp4"]
    assert tries == (1 if error is Missing else 2)  # dead links are not retried; transient failures are


def test_transient_failure_is_retried(server, tmp_path):
    got = http_download(f"{server.url}/flaky/01377.mp4", tmp_path / "a", FetchConfig(**FAST))
    assert count_frames(got) == 22 and server.hits["/flaky/01377.mp4"] == 2


def test_size_cap(server, tmp_path):
    with pytest.raises(DownloadError, match="over the cap"):
        http_download(f"{server.url}/v/68012.mp4", tmp_path / "a", FetchConfig(max_bytes=10_000, **FAST))
    assert list(tmp_path.iterdir()) == []


def test_ytdlp_generic_extractor_downloads_from_loopback(server, served, tmp_path):
    got = ytdlp_download(f"{server.url}/v/68011.mp4", tmp_path / "y", FetchConfig(**FAST))
    assert got.read_bytes() == (served / "68011.mp4").read_bytes()
    with pytest.raises(Missing, match="404"):
        ytdlp_download(f"{server.url}/gone/68011.mp4", tmp_path / "z", FetchConfig(**FAST))
    assert sorted(p.name for p in tmp_path.iterdir()) == ["y.mp4"]


# --- fetching WLASL instances: trim, lay out, manifest, resume ----------------------------------------------


def _mean_diff(a, b):
    return float(np.abs(a.astype(np.int16) - b.astype(np.int16)).mean())


def test_fetch_trims_lays_out_reports_and_resumes(server, meta, clips, tmp_path):
    base = server.url
    whistle = _instance(meta, "63185")  # the whole source video is served; the sign is frames 2055-2111
    insts = [
        dataclasses.replace(whistle, url=f"{base}/v/63185.mp4"),
        # another instance from the same source video: downloaded once, trimmed twice; -1 keeps frame_start
        dataclasses.replace(whistle, video_id="90001", frame_start=4200, frame_end=-1, url=f"{base}/v/63185.mp4"),
        dataclasses.replace(_instance(meta, "68012"), url=f"{base}/drip/68012.mp4"),
        dataclasses.replace(_instance(meta, "01377"), gloss="thank you", url=f"{base}/v/01377.swf"),
        dataclasses.replace(_instance(meta, "68011"), url=f"{base}/drip/68011.mp4"),
        dataclasses.replace(_instance(meta, "07068"), url=f"{base}/gone/07068.mp4"),
        dataclasses.replace(_instance(meta, "07099"), url=f"{base}/html/68012.mp4"),
        dataclasses.replace(_instance(meta, "07069"), url=f"{base}/slow/68012.mp4"),
    ]
    out = tmp_path / "videos"
    config = FetchConfig(jobs=4, per_host=2, **FAST)
    s = wlasl.fetch(insts, out, config, progress=False)
    assert (s.ok, s.missing, s.errors, s.skipped) == (5, 2, 1, 0)
    assert server.max_active <= 2  # the per-host limit holds
    assert server.hits["/v/63185.mp4"] == 1

    whole = list(iter_frames(clips / "63185.mp4", FrameRange(2054, 2112)))
    trimmed = list(iter_frames(out / "whistle" / "63185.mp4"))
    assert len(trimmed) == 57  # exactly frames 2055..2111
    assert _mean_diff(trimmed[0], whole[1]) < _mean_diff(trimmed[0], whole[0])
    assert _mean_diff(trimmed[-1], whole[-2]) < _mean_diff(trimmed[-1], whole[-1])
    assert count_frames(out / "whistle" / "90001.mp4") == 4232 - 4200 + 1
    assert count_frames(out / "thank_you" / "01377.mp4") == 22  # the Flash video, converted to mp4
    assert (out / "thank_you" / "01377.mp4").read_bytes()[4:8] == b"ftyp"

    rows = {r["video_id"]: r for r in read_csv_rows(out / "manifest.csv")}
    assert rows["63185"]["status"] == "ok" and rows["63185"]["split"] == "test" and rows["63185"]["signer_id"] == "9"
    assert rows["01377"]["gloss"] == "thank you" and rows["01377"]["path"] == "thank_you/01377.mp4"
    assert rows["07068"]["status"] == "missing" and "404" in rows["07068"]["error"]
    assert rows["07099"]["status"] == "missing" and "HTML" in rows["07099"]["error"]
    assert rows["07069"]["status"] == "error" and "timed out" in rows["07069"]["error"]
    assert (out / "missing.txt").read_text().split() == ["07068", "07069", "07099"]
    assert not list(out.rglob("*.partial*"))

    report = {(r["gloss"], r["split"]): r for r in wlasl.report(insts, out)}
    assert report[("whistle", "test")]["on_disk"] == 2
    assert report[("book", "all")]["instances"] == 5 and report[("book", "all")]["on_disk"] == 2
    assert report[("book", "all")]["missing"] == 3

    # Resume: nothing on disk is fetched again, dead links are not retried, the error is.
    hits = dict(server.hits)
    (out / "book" / "68012.mp4").unlink()  # a clip lost after its download: trimmed again from the cache
    s2 = wlasl.fetch(insts, out, config, progress=False)
    assert (s2.skipped, s2.ok, s2.missing, s2.errors) == (4, 1, 2, 1)
    new = {k: v - hits.get(k, 0) for k, v in server.hits.items() if v != hits.get(k, 0)}
    assert new == {"/slow/68012.mp4": 2}
    assert count_frames(out / "book" / "68012.mp4") == 113


def test_interrupted_download_never_looks_finished(server, meta, tmp_path):
    inst = dataclasses.replace(_instance(meta, "01377"), url=f"{server.url}/v/01377.mp4")
    out = tmp_path / "videos"
    downloads = out / wlasl.DOWNLOADS
    downloads.mkdir(parents=True)
    (downloads / (wlasl._key(inst.url) + ".partial")).write_bytes(b"\x00" * 1000)  # what a kill leaves
    s = wlasl.fetch([inst], out, FetchConfig(**FAST), progress=False)
    assert s.ok == 1 and server.hits["/v/01377.mp4"] == 1
    assert count_frames(out / "afraid" / "01377.mp4") == 22


def test_fetch_through_ytdlp_for_its_hosts(server, meta, tmp_path):
    inst = dataclasses.replace(_instance(meta, "68011"), url=f"{server.url}/v/68011.mp4")
    config = FetchConfig(ytdlp_hosts=("127.0.0.1",), **FAST)
    s = wlasl.fetch([inst], tmp_path / "v", config, progress=False)
    assert s.ok == 1 and count_frames(tmp_path / "v" / "book" / "68011.mp4") == 55


def test_local_folder_import_trims_whole_videos_and_keeps_trimmed_ones(meta, clips, tmp_path):
    whistle = _instance(meta, "63185")
    local = tmp_path / "WLASL2000"
    local.mkdir()
    (local / "63185.mp4").symlink_to(clips / "63185.mp4")  # the whole source video
    (local / "68012.mp4").symlink_to(clips / "68012.mp4")
    pre = tmp_path / "pretrimmed"  # the same instance as the start_kit leaves it: only the sign
    write_video(pre / "63185.mp4", iter_frames(clips / "63185.mp4", whistle.frame_range), 25)
    insts = [whistle, _instance(meta, "68012"), _instance(meta, "07068")]
    s = wlasl.fetch(insts, tmp_path / "a", local=local, progress=False)
    assert (s.ok, s.missing) == (2, 1)
    assert count_frames(tmp_path / "a" / "whistle" / "63185.mp4") == 57
    assert (tmp_path / "a" / "book" / "68012.mp4").read_bytes() == (clips / "68012.mp4").read_bytes()
    s = wlasl.fetch([whistle], tmp_path / "b", local=pre, progress=False)
    assert s.ok == 1 and count_frames(tmp_path / "b" / "whistle" / "63185.mp4") == 57


def test_cli_report_and_local_fetch_then_extract_carries_split_signer_and_gloss(data_dir, clips, tmp_path, capsys):
    metadata = str(data_dir / "wlasl" / "WLASL_v0.3.json")
    out = tmp_path / "videos"
    rc = main(["data", "wlasl", "--metadata", metadata, "--out", str(out), "--report-only"])
    text = capsys.readouterr().out
    assert rc == 0
    assert any(line.split() == ["book", "train", "30", "0", "0", "30"] for line in text.splitlines())
    assert any(line.split() == ["TOTAL", "test", "12", "0", "0", "12"] for line in text.splitlines())
    rc = main(["data", "wlasl", "--metadata", metadata, "--glosses", "afraid", "--out", str(out),
               "--from", str(clips), "--no-progress"])  # fmt: skip
    text = capsys.readouterr().out
    assert rc == 0
    assert any(line.split() == ["afraid", "val", "2", "1", "1", "0"] for line in text.splitlines())
    rc = main(["extract", str(out), "--out", str(tmp_path / "kp"), "--workers", "1", "--no-progress"])
    assert rc == 0
    (row,) = read_csv_rows(tmp_path / "kp" / "manifest.csv")
    assert (row["gloss"], row["split"], row["signer"], row["frames"]) == ("afraid", "val", "11", "22")
