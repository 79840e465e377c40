"""The web app (`signrec serve`) against a real server on 127.0.0.1, real clips and real Chromium.

The server runs as the user starts it (`python -m signrec.cli serve MODEL --port 0`) in a subprocess with its
own temporary folder, so the tests also see that uploads are deleted and that its console stays readable.
Screenshots of each page are kept in test-artifacts/ (git ignores it).
"""

from __future__ import annotations

import json
import signal
import socket
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from types import SimpleNamespace

import cv2
import numpy as np
import pytest

from conftest import REPO, link_tree
from signrec.cli import main
from signrec.extract import DEFAULT_MIN_PERSON, Holistic, extract_clip, find_jobs, store_clip
from signrec.io import read_csv_rows
from signrec.live import LiveConfig, live
from signrec.presets import best
from signrec.serve import host_warning
from signrec.splits import Split
from signrec.store import StoreWriter, open_store
from signrec.training.runner import train
from signrec.video import iter_frames, probe, write_video, write_y4m
from webserver import ServeProcess, multipart, request, upload, wait_for

# MediaPipe on real clips, servers, clusters or subprocesses: `make test-fast` leaves them out
pytestmark = pytest.mark.slow

CHROMIUM = Path("/usr/bin/chromium")
# Without the background-networking flags Chromium's own connections are refused on this closed network.
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]  # fmt: skip
ARTIFACTS = REPO / "test-artifacts"
# One real WLASL clip per gloss from wlasl12 (the 288x192 ones: quick to extract).
CLIPS = {"drink": "17724", "help": "27215", "time": "58503", "what": "62979", "no": "38532"}
LIMIT_MB = 1


@pytest.fixture(scope="module")
def model(data_dir, tmp_path_factory):
    """A model of five WLASL glosses trained on signrec's own keypoints of one real clip each. It was trained on
    the very clips the tests upload, so its answer for them is known to be right: these tests check that the
    server and the page give the model's answer, not how well a model generalises (BENCHMARKS.md measures that)."""
    root = tmp_path_factory.mktemp("wlasl5")
    clips = {g: data_dir / "videos" / "wlasl12" / g / f"{i}.mp4" for g, i in CLIPS.items()}
    videos = link_tree(root / "videos", {f"{g}/{p.name}": p for g, p in clips.items()})
    store = root / "keypoints"
    with Holistic() as holistic, StoreWriter(store) as writer:  # in this process: no worker start-up to pay
        for job in find_jobs(videos):
            row = store_clip(writer, extract_clip(job, DEFAULT_MIN_PERSON, holistic=holistic))
            assert row["status"] == "ok", row
    paths = [c.path for c in open_store(store).clips]
    run = root / "run"
    recipe = best().with_config(max_epochs=30, patience=30, threads=1, progress=False)
    train(store, run, recipe, split=Split(paths, paths, [], "every clip (a test model)"), log=lambda *a: None)
    return SimpleNamespace(run=run, clips=clips, labels=sorted(CLIPS))


@pytest.fixture(scope="module")
def server(model, tmp_path_factory):
    """One worker, one clip waiting at most (so that a busy server is easy to make) and a 1 MB upload limit."""
    with ServeProcess(model.run, tmp_path_factory.mktemp("serve-tmp"), "--max-mb", str(LIMIT_MB), "--workers", "1",
                      "--queue", "1") as s:  # fmt: skip
        yield s


def _no_leftovers(server: ServeProcess) -> None:
    left = wait_for(lambda: not server.leftovers(), timeout=10)
    assert left, f"uploads left behind: {server.leftovers()}"


def _same_numbers(a: dict, b: dict) -> None:
    """The answers of the API and of `signrec predict --json` agree: same glosses in the same order, same
    frames and parts found, probabilities equal (to the printed six decimals, give or take the last digit)."""
    assert a["frames"] == b["frames"] and a["error"] == b["error"] == ""
    assert [t["gloss"] for t in a["top"]] == [t["gloss"] for t in b["top"]]
    for x, y in zip(a["top"], b["top"], strict=True):
        assert x["probability"] == pytest.approx(y["probability"], abs=2e-6)
    assert a["probabilities"].keys() == b["probabilities"].keys()
    for g, p in a["probabilities"].items():
        assert p == pytest.approx(b["probabilities"][g], abs=2e-6)
    assert a["found"] == b["found"]


# --- the JSON API ---------------------------------------------------------------------------------------------


def test_api_gives_the_numbers_of_signrec_predict_json(server, model, capsys):
    clip = model.clips["drink"]
    answer = upload(server.url, clip.name, clip.read_bytes())
    assert answer.status == 200, answer.body
    got = answer.json()
    assert main(["predict", str(model.run), str(clip), "--json", "--top-k", "5"]) == 0
    printed = json.loads(capsys.readouterr().out)[0]
    _same_numbers(got, printed)
    assert got["input"] == clip.name and len(got["top"]) == 5 and got["top"][0]["gloss"] == "drink"
    # what the page shows besides: the clip's length and the parts found in each frame
    info = probe(clip)
    assert got["frames"] == 29 and got["fps"] == pytest.approx(info.fps, abs=1e-3)
    assert got["seconds"] == pytest.approx(29 / info.fps, abs=1e-3)
    for part, flags in got["presence"].items():
        assert len(flags) == 29 and sum(flags) / 29 == pytest.approx(got["found"][part], abs=1e-4)
    # the clip as the body instead of a form, and another top_k
    raw = request(server.url, "POST", "/api/predict?top_k=2", clip.read_bytes(),
                  {"Content-Type": "video/mp4", "X-Filename": "my drink.mp4"})  # fmt: skip
    assert raw.status == 200 and raw.json()["input"] == "my drink.mp4"
    assert raw.json()["top"] == got["top"][:2]
    _no_leftovers(server)


def test_an_upload_over_the_limit_is_refused_before_its_body_is_read(server, clips):
    """Content-Length says too much: 413 at once, with nothing of the body sent."""
    body, kind = multipart("63185.mp4", (clips / "63185.mp4").read_bytes())  # a real 3.7 MB video
    assert len(body) > LIMIT_MB * 1e6
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode())  # fmt: skip
        head, detail = _read_response(s)
    assert head.startswith("HTTP/1.1 413") and "connection: close" in head.lower()
    assert f"limit of {LIMIT_MB} MB" in detail and "--max-mb" in detail


def test_a_chunked_upload_over_the_limit_is_refused_while_it_streams(server, clips):
    """No Content-Length (chunked transfer): the server counts while reading and answers 413 as soon as the
    limit is passed, while the client has not finished (it never sends the last chunk)."""
    body, kind = multipart("63185.mp4", (clips / "63185.mp4").read_bytes())
    step = 64 * 1024
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                  f"Transfer-Encoding: chunked\r\n\r\n".encode())  # fmt: skip
        sent = 0
        try:
            while sent <= LIMIT_MB * 1e6 + step:  # just past the limit, far from the end
                chunk = body[sent : sent + step]
                s.sendall(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                sent += len(chunk)
        except (BrokenPipeError, ConnectionResetError):  # the server answered and closed while we were sending
            pass
        assert sent < len(body)
        head, detail = _read_response(s)
    assert head.startswith("HTTP/1.1 413"), head
    assert f"limit of {LIMIT_MB} MB" in detail
    _no_leftovers(server)


def _read_response(s: socket.socket) -> tuple[str, str]:
    data = b""
    while b"\r\n\r\n" not in data or not data.rstrip().endswith(b"}"):
        more = s.recv(65536)
        if not more:
            break
        data += more
    head, _, body = data.partition(b"\r\n\r\n")
    return head.decode(), json.loads(body)["detail"]


def test_an_upload_that_stops_halfway_leaves_nothing_and_the_server_goes_on(server, model):
    clip = model.clips["drink"]
    body, kind = multipart(clip.name, clip.read_bytes())
    with socket.create_connection(("127.0.0.1", server.port), timeout=30) as s:
        s.sendall(f"POST /api/predict HTTP/1.1\r\nHost: x\r\nContent-Type: {kind}\r\n"
                  f"Content-Length: {len(body)}\r\n\r\n".encode() + body[: len(body) // 2])  # fmt: skip
    assert wait_for(lambda: any("stopped before its end" in line for line in server.lines), timeout=10)
    _no_leftovers(server)
    assert request(server.url, path="/api/info").status == 200


def _cut(path: Path, share: float) -> bytes:
    data = path.read_bytes()
    return data[: int(len(data) * share)]


@pytest.mark.parametrize(("name", "make", "status", "says"), [
    ("notes.mp4", lambda c: b"these are my notes, not a video\n" * 20, 422, "notes.mp4: not a readable video"),
    ("empty.mp4", lambda c: b"", 422, "empty.mp4: empty file"),
    # the first 95% of a real clip: every frame still decodes, but its data box runs past the end of the file
    ("68011.mp4", lambda c: _cut(c / "68011.mp4", 0.95), 422, "68011.mp4: the file is cut off"),
    ("68012.mp4", lambda c: _cut(c / "68012.mp4", 0.5), 422, "68012.mp4: the file is cut off"),
])  # fmt: skip
def test_a_file_that_is_not_a_whole_video_gets_a_readable_4xx(server, clips, name, make, status, says):
    answer = upload(server.url, name, make(clips))
    assert answer.status == status, answer.body
    detail = answer.json()["detail"]
    assert says in detail
    assert "upload-" not in detail and str(server.tmp) not in detail  # its own name, not the temporary one
    _no_leftovers(server)


@pytest.mark.parametrize(("body", "kind", "status", "says"), [
    (b"--b\r\nContent-Disposition: form-data; name=\"note\"\r\n\r\nhello\r\n--b--\r\n", "multipart/form-data; boundary=b",
     400, "no file in the form"),
    (b"--b\r\nContent-Disposition: form-data; name=\"file\"; filename=\"a.mp4\"\r\n\r\nabc", "multipart/form-data; boundary=b",
     400, "ended before the form did"),
    (b"hello", "text/plain", 415, "multipart form"),
])  # fmt: skip
def test_a_malformed_upload_gets_a_readable_4xx(server, body, kind, status, says):
    answer = request(server.url, "POST", "/api/predict", body, {"Content-Type": kind})
    assert answer.status == status and says in answer.json()["detail"]
    _no_leftovers(server)


def test_a_clip_with_no_person_says_so(server, data_dir):
    clip = data_dir / "videos" / "no-person" / "skeleton-render-book.mp4"
    answer = upload(server.url, clip.name, clip.read_bytes())
    assert answer.status == 422
    got = answer.json()
    assert "skeleton-render-book.mp4: no person found" in got["detail"]
    assert got["frames"] == 75 and not any(any(flags) for flags in got["presence"].values())
    _no_leftovers(server)


def test_a_full_queue_answers_503_with_retry_after_and_recovers(server, model):
    """One worker and one place in the queue: of four clips sent at once two are taken, the others are told to
    come back (503, Retry-After in seconds) without being read; afterwards the server takes clips again."""
    data = model.clips["time"].read_bytes()
    with ThreadPoolExecutor(4) as pool:
        answers = list(pool.map(lambda i: upload(server.url, f"time-{i}.mp4", data), range(4)))
    statuses = sorted(a.status for a in answers)
    assert statuses.count(503) >= 1 and set(statuses) <= {200, 503}, statuses
    for a in answers:
        if a.status == 503:
            assert int(a.headers["retry-after"]) >= 1 and "busy" in a.json()["detail"]
        else:
            assert a.json()["top"][0]["gloss"] == "time"
    again = upload(server.url, "time.mp4", data)
    assert again.status == 200
    _no_leftovers(server)


def test_work_queue_bounds_jobs_gives_each_worker_its_own_state_and_always_cleans_up():
    """The queue behind /api/predict, with plain objects standing for the workers' Holistics."""
    import asyncio
    import threading

    from signrec.serve.work import Busy, WorkQueue

    made, closed, cleaned = [], [], []
    running, most = [0], [0]
    lock = threading.Lock()

    def make() -> dict:
        made.append({"id": len(made)})
        return made[-1]

    def job(state: dict, seconds: float) -> int:
        with lock:
            running[0] += 1
            most[0] = max(most[0], running[0])
        time.sleep(seconds)
        with lock:
            running[0] -= 1
        return state["id"]

    async def scenario(work: WorkQueue) -> tuple[list, list]:
        slots = [work.admit() for _ in range(3)]  # 2 workers + 1 waiting
        with pytest.raises(Busy) as busy:
            work.admit()
        assert busy.value.retry_after >= 1 and "at most 3" in str(busy.value)
        tasks = [asyncio.ensure_future(s.run(job, 0.3, cleanup=lambda i=i: cleaned.append(i))) for i, s in enumerate(slots)]
        await asyncio.sleep(0.05)
        tasks[2].cancel()  # the waiting one gives up: it never runs, but its upload is still deleted
        return await asyncio.gather(*tasks, return_exceptions=True)

    work = WorkQueue(2, 1, make, closed.append)
    try:
        done = asyncio.run(scenario(work))
        # the cancelled job's place comes back when a worker reaches it in the queue
        assert wait_for(lambda: work.admitted == 0, timeout=5), work.admitted
        with work.admit():  # a place taken and given back without a job
            assert work.admitted == 1
        assert work.admitted == 0
    finally:
        work.close()
    assert sorted(done[:2]) == [0, 1] and isinstance(done[2], asyncio.CancelledError)
    assert most[0] == 2
    assert sorted(cleaned) == [0, 1, 2], cleaned
    assert closed == made and len(made) == 2


# --- live: the WebSocket is `signrec live`'s path ---------------------------------------------------------------


def test_live_websocket_gives_what_signrec_live_gives(server, model, tmp_path):
    """The same frames (sent lossless, as PNG) give the same window steps as `signrec live` on the clip: the
    same Holistic settings, the same row function, the same sliding window (LiveStream)."""
    from websockets.sync.client import connect

    clip = model.clips["time"]
    frames = list(iter_frames(clip))
    with connect(server.url.replace("http://", "ws://") + "/api/live", open_timeout=60, max_size=None) as ws:
        hello = json.loads(ws.recv(timeout=60))
        assert hello["ready"] and hello["labels"] == model.labels
        ws.send(b"this is not a picture")
        assert "frame 1: not an image" in json.loads(ws.recv(timeout=60))["error"]
        ws.send(cv2.imencode(".png", np.zeros((5000, 6000, 3), np.uint8))[1].tobytes())  # 96 kB, 90 MB decoded
        assert "6000x5000 picture is larger than 4096 pixels" in json.loads(ws.recv(timeout=60))["error"]
        answers = []
        for f in frames:
            ws.send(cv2.imencode(".png", f)[1].tobytes())
            answers.append(json.loads(ws.recv(timeout=60)))
    assert [a["frame"] for a in answers] == list(range(1, len(frames) + 1))
    steps = [(a["frame"], a["gloss"], a["shown"]) for a in answers if a["predicted"]]
    result = live(model.run, str(clip), tmp_path / "annotated.mp4", LiveConfig())
    log = read_csv_rows(result.log)
    assert hello["window"] == result.window and len(steps) == result.predictions > 0
    assert steps == [(int(r["frame"]), r["top_gloss"], r["shown"]) for r in log]
    probabilities = [a["probability"] for a in answers if a["predicted"]]
    assert probabilities == pytest.approx([float(r["probability"]) for r in log], abs=1e-4)
    assert all(set(a["parts"]) == {"pose", "face", "left_hand", "right_hand"} for a in answers)


def test_a_camera_session_over_the_limit_is_told_to_come_back(server):
    """Two camera sessions at a time (the default): a third is refused with a message and code 1013."""
    from websockets.exceptions import ConnectionClosed
    from websockets.sync.client import connect

    url = server.url.replace("http://", "ws://") + "/api/live"
    with connect(url, open_timeout=60) as one, connect(url, open_timeout=60) as two:
        assert json.loads(one.recv(timeout=60))["ready"] and json.loads(two.recv(timeout=60))["ready"]
        with connect(url, open_timeout=60) as three:
            assert "2 camera session(s) are running" in json.loads(three.recv(timeout=60))["error"]
            with pytest.raises(ConnectionClosed):
                three.recv(timeout=30)
            assert three.close_code == 1013


# --- the page, in Chromium ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def browser(model, tmp_path_factory):
    """Headless Chromium whose camera plays a real clip (converted to .y4m for its fake capture device)."""
    if not CHROMIUM.exists():
        pytest.fail(f"Chromium is missing at {CHROMIUM}: apt-get install -y chromium (make setup installs it as root)")
    from playwright.sync_api import sync_playwright

    camera = tmp_path_factory.mktemp("camera") / "drink.y4m"
    clip = model.clips["drink"]
    write_y4m(camera, iter_frames(clip), probe(clip).fps)
    fake_camera = ["--use-fake-ui-for-media-stream", "--use-fake-device-for-media-stream",
                   f"--use-file-for-fake-video-capture={camera}"]  # fmt: skip
    ARTIFACTS.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=str(CHROMIUM), args=[*CHROMIUM_ARGS, *fake_camera], timeout=60_000)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 820, "height": 900})
    page = context.new_page()
    page.set_default_timeout(60_000)
    yield page
    context.close()


@pytest.mark.slow
def test_page_upload_shows_the_right_gloss(server, model, page):
    """A real clip chosen with the file picker: the page shows the API's answer, the right gloss first."""
    clip = model.clips["drink"]
    page.goto(server.url)
    page.wait_for_function("document.getElementById('model').textContent.includes('5 signs')")
    with page.expect_response("**/api/predict") as response:
        page.set_input_files("#file", str(clip))
    answer = response.value.json()
    page.wait_for_selector("#result:not([hidden])")
    assert page.inner_text("#best") == "drink" == answer["top"][0]["gloss"]
    bars = page.locator("#bars li")
    assert bars.count() == 5
    for i, top in enumerate(answer["top"]):
        assert bars.nth(i).locator(".gloss").inner_text() == top["gloss"]
        assert bars.nth(i).locator(".pct").inner_text() == f"{100 * top['probability']:.1f}%"
    assert page.inner_text("#clip-info") == f"17724.mp4: {answer['seconds']:.2f} s, 29 frames at 29.97 fps"
    green = page.evaluate("""() => { const c = document.getElementById('presence');
        const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data; let n = 0;
        for (let i = 0; i < d.length; i += 4) if (d[i + 1] > 140 && d[i] < 100) n++; return n; }""")  # fmt: skip
    assert green > 1000  # the keypoints-found strip is drawn
    page.screenshot(path=str(ARTIFACTS / "serve-upload.png"), full_page=True)


@pytest.mark.slow
def test_page_shows_the_error_for_garbage(server, page):
    """A file that is not a video, dropped on the page (drag and drop): a readable error, and the server lives."""
    page.goto(server.url)
    dropped = page.evaluate_handle("""() => { const dt = new DataTransfer();
        dt.items.add(new File(['my shopping list, not a video'], 'notes.mp4', {type: 'video/mp4'})); return dt; }""")
    page.dispatch_event("#drop", "drop", {"dataTransfer": dropped})
    error = page.wait_for_selector("#upload-error:not([hidden])")
    assert "notes.mp4: not a readable video" in error.inner_text()
    assert page.is_hidden("#result")
    page.screenshot(path=str(ARTIFACTS / "serve-error.png"), full_page=True)
    assert request(server.url, path="/api/info").status == 200


@pytest.mark.slow
def test_page_live_camera_shows_a_prediction(server, model, page):
    """Chromium's fake camera plays a real clip; the page sends its frames over the WebSocket and shows the
    model's guess over the video."""
    page.goto(server.url)
    page.click("#tab-live")
    page.click("#start")
    page.wait_for_function("document.getElementById('guess').textContent.includes('guess:')", timeout=120_000)
    guess = page.inner_text("#guess")  # e.g. "guess: drink 83.0% · 12.5 frames/s"
    assert guess.split()[1] in model.labels, guess
    assert page.inner_text("#shown") in [*model.labels, "no sign"]
    assert page.is_hidden("#live-error")
    time.sleep(1)  # a few more frames, so that the screenshot shows the overlay over a picture
    page.screenshot(path=str(ARTIFACTS / "serve-live.png"), full_page=True)
    page.click("#stop")
    assert wait_for(lambda: any("camera session ended" in line for line in server.lines), timeout=15)


@pytest.mark.slow
def test_docs_page_describes_the_api(server, page):
    page.goto(server.url + "/docs")
    page.wait_for_selector('.endpoint h3:has-text("/api/predict")')
    text = page.inner_text("#endpoints")
    assert "413" in text and "503" in text and "/api/info" in text
    assert "curl -F file=@clip.mp4" in page.inner_text("#examples")
    page.screenshot(path=str(ARTIFACTS / "serve-docs.png"), full_page=True)


# --- load -------------------------------------------------------------------------------------------------------


@pytest.mark.slow
def test_load_50_requests_8_at_a_time_no_failure_no_growth(model, clips, tmp_path):
    """50 uploads, 8 at a time, to a server running the ONNX export (without loading PyTorch): every one answered,
    with the same answer; no growth in open files, threads or memory; nothing left on disk; a clean stop on SIGTERM.

    Tolerances: open files and threads must come back to what they were after a warm-up (8 uploads at once:
    every thread and buffer is in place by then). Memory may move by 30 MB: settled, it moved by less than 10 MB
    between rounds of 50 here, while keeping the decoded frames of each upload (10 x 288x192x3 = 1.6 MB) would
    add 80 MB, and without the worker's malloc_trim MediaPipe's graph rebuilds add about 60 MB."""
    import psutil

    from signrec.export import export_onnx

    onnx = export_onnx(model.run, tmp_path / "model.onnx")
    short = tmp_path / "drink-10.mp4"  # the first 10 frames of a real clip: many requests in little time
    write_video(short, (f for i, f in enumerate(iter_frames(model.clips["drink"])) if i < 10), probe(model.clips["drink"]).fps)
    data = short.read_bytes()
    server = ServeProcess(onnx, tmp_path / "serve-tmp", "--workers", "1", "--queue", "8")
    try:
        proc = psutil.Process(server.pid)
        send = lambda i: upload(server.url, f"c{i}.mp4", data, timeout=120)
        with ThreadPoolExecutor(8) as pool:
            warm = list(pool.map(send, range(8)))
            assert {a.status for a in warm} == {200}
            time.sleep(1.5)  # the worker gives memory back just after its last answer
            fds, threads, rss = proc.num_fds(), proc.num_threads(), proc.memory_info().rss
            t = time.perf_counter()
            answers = list(pool.map(send, range(50)))
            seconds = time.perf_counter() - t
        assert [a.status for a in answers] == [200] * 50
        assert len({json.dumps(a.json()["probabilities"]) for a in answers}) == 1
        assert answers[0].json()["frames"] == 10
        assert seconds < 240, f"50 requests took {seconds:.0f} s"
        # connections are closed by both sides, but the last closes may still be on their way
        assert wait_for(lambda: proc.num_fds() <= fds, timeout=10), f"open files {fds} -> {proc.num_fds()}"
        time.sleep(1.5)
        assert proc.num_threads() <= threads, f"threads {threads} -> {proc.num_threads()}"
        grown = proc.memory_info().rss - rss
        assert grown < 30e6, f"memory {rss / 1e6:.0f} MB -> {(rss + grown) / 1e6:.0f} MB"
        assert not any("libtorch" in m.path for m in proc.memory_maps()), "an ONNX model needs no PyTorch"
        assert not server.leftovers()
    finally:
        status = server.stop()
    assert status in (0, -signal.SIGTERM), status  # uvicorn stops gracefully, then re-raises SIGTERM
    assert not server.upload_folders(), "the upload folder was not removed at the end"
    # the console stays readable: only signrec serve's own lines, no MediaPipe or TensorFlow Lite chatter
    assert server.lines and all(line.startswith("signrec serve:") for line in server.lines), server.lines


def test_only_loopback_is_quiet():
    for host in ("127.0.0.1", "localhost", "::1", "127.0.0.2"):
        assert host_warning(host) == ""
    for host in ("0.0.0.0", "192.168.1.20", "myhost.example"):
        assert "warning: listening on" in host_warning(host) and "other machines" in host_warning(host)


def test_the_server_console_stayed_readable(server):
    """After everything above (errors, a busy queue, a camera session, a client that went away): only signrec
    serve's own lines, one per event; no traceback, no MediaPipe or TensorFlow Lite chatter."""
    assert server.proc.poll() is None  # still running
    assert server.lines and all(line.startswith("signrec serve: ") for line in server.lines), server.lines
