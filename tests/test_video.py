import hashlib

import numpy as np
import pytest

from signrec.video import (
    FrameRange,
    VideoError,
    check_complete,
    count_frames,
    iter_frames,
    probe,
    write_video,
    write_y4m,
)


def test_metadata_lies_decoding_tells(clips):
    # 01377's container claims 25 frames; only 22 decode.
    assert probe(clips / "01377.mp4").frame_count == 25
    assert sum(1 for _ in iter_frames(clips / "01377.mp4")) == 22
    assert count_frames(clips / "01377.mp4") == 22


def _digest(frame: np.ndarray) -> str:
    return hashlib.md5(frame.tobytes()).hexdigest()


def test_trim_gives_exactly_the_requested_frames(clips):
    src = clips / "63185.mp4"  # whole source video; the sign is frames 2055-2111
    trimmed = [_digest(f) for f in iter_frames(src, FrameRange(2055, 2111))]
    assert len(trimmed) == 57
    # The same frames, found by decoding everything and counting from 1.
    full = [_digest(f) for i, f in enumerate(iter_frames(src), start=1) if 2055 <= i <= 2111]
    assert trimmed == full


def test_end_minus_one_still_honours_start(clips):
    src = clips / "68011.mp4"
    total = count_frames(src)
    tail = list(iter_frames(src, FrameRange(40, -1)))
    assert len(tail) == total - 39
    first = next(iter(iter_frames(src, FrameRange(40, 40))))
    np.testing.assert_array_equal(tail[0], first)


@pytest.mark.parametrize("start,end", [(0, 5), (10, 5)])
def test_bad_ranges_are_refused(start, end):
    with pytest.raises(ValueError):
        FrameRange(start, end)


def test_range_past_the_end_names_the_file(clips):
    with pytest.raises(VideoError, match="01377.mp4.*starts after the last decodable frame"):
        list(iter_frames(clips / "01377.mp4", FrameRange(30, -1)))


def test_bad_files_name_the_problem(tmp_path, clips):
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    html = tmp_path / "dead-link.swf"
    html.write_text("<html><body>404 Not Found</body></html>")
    truncated = tmp_path / "truncated.mp4"
    truncated.write_bytes((clips / "68012.mp4").read_bytes()[:30000])
    with pytest.raises(VideoError, match="empty.mp4: empty file"):
        probe(empty)
    with pytest.raises(VideoError, match="dead-link.swf: not a readable video"):
        list(iter_frames(html))
    with pytest.raises(VideoError, match="truncated.mp4"):
        list(iter_frames(truncated))
    with pytest.raises(VideoError, match="no such file"):
        probe(tmp_path / "missing.mp4")


def test_write_video_round_trip(tmp_path, clips):
    frames = list(iter_frames(clips / "01377.mp4"))
    out = tmp_path / "copy.mp4"
    assert write_video(out, iter(frames), fps=25) == 22
    assert count_frames(out) == 22
    assert not list(tmp_path.glob("*partial*"))


def test_a_cut_off_file_is_told_from_a_whole_one(clips, tmp_path):
    """The web app's check on uploads: every real clip passes (01377 decodes 22 of its announced 25 frames);
    a clip cut anywhere fails, even at 95%, where every frame still decodes but its data box runs past the end."""
    for clip in sorted(clips.glob("*.mp4")):
        check_complete(clip, count_frames(clip), probe(clip).frame_count)
    data = (clips / "68011.mp4").read_bytes()
    for share in (0.3, 0.95):
        cut = tmp_path / f"cut{share}.mp4"
        cut.write_bytes(data[: int(len(data) * share)])
        with pytest.raises(VideoError, match=r"^upload\.mp4: the file is cut off: it ends at byte"):
            check_complete(cut, name="upload.mp4")
    assert count_frames(tmp_path / "cut0.95.mp4") == 55  # decoding alone would not have noticed
    with pytest.raises(VideoError, match="only 14 of the 55 frames"):  # what is left for formats without boxes
        check_complete(clips / "68011.mp4", decoded=14, announced=55)


def test_y4m_holds_the_frames_for_chromiums_fake_camera(clips, tmp_path):
    frames = list(iter_frames(clips / "01377.mp4"))  # 288x192
    n = write_y4m(tmp_path / "cam.y4m", iter(frames), 25.0)
    raw = (tmp_path / "cam.y4m").read_bytes()
    header, _, rest = raw.partition(b"\n")
    assert n == 22 and header == b"YUV4MPEG2 W288 H192 F25000:1000 Ip A1:1 C420jpeg"
    assert rest.count(b"FRAME\n") == 22 and len(rest) == 22 * (6 + 288 * 192 * 3 // 2)
