"""The web app: a page for people who do not use a terminal (upload a clip, or sign to the camera) and a JSON API,
on the same code as `signrec predict` (extraction, `predict_keypoints`) and `signrec live` (`LiveStream`).

    POST /api/predict   a clip in, the top-k glosses, the clip's length and the keypoints found per frame out
    WS   /api/live      camera frames in (JPEG or PNG bytes), the sliding window's current sign out, per frame
    GET  /api/info      the model and the server's limits
    GET  /              the page;  GET /docs  the API, described from /openapi.json
"""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
import threading
import time
from collections.abc import AsyncIterator, Callable
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
from fastapi import FastAPI, Query, Request, WebSocket, WebSocketDisconnect
from fastapi.responses import FileResponse, JSONResponse, Response
from fastapi.staticfiles import StaticFiles
from pydantic import BaseModel, Field
from starlette.requests import ClientDisconnect

from .. import __version__, layout
from ..extract import DEFAULT_MIN_PERSON, Holistic, NoPersonError, check_person, extract_video
from ..live import LiveConfig, LiveStream
from ..predict import NO_SIGN, Predictor, default_window, load_predictor, predict_keypoints
from ..video import FrameRange, VideoError, check_complete, probe
from .upload import Upload, UploadError, check_length, receive
from .work import Busy, Pool, WorkQueue

STATIC = Path(__file__).parent / "static"
MAX_SIDE = 4096  # larger pictures (a clip's or a camera frame's) are refused before they are decoded
log = logging.getLogger("signrec.serve")


@dataclass
class ServeOptions:
    """The server's limits and the live window (the same settings as `signrec live`)."""

    max_mb: float = 100.0  # uploads over this are refused with 413
    workers: int = 1  # clips recognised at a time (one Holistic each)
    queue: int = 8  # clips waiting behind them at most; more get 503 with Retry-After
    live_sessions: int = 2  # camera sessions at a time (one Holistic each)
    top_k: int = 5  # glosses in an answer unless the request asks for another number
    max_frames: int = 900  # longer clips are refused (an isolated sign is a few seconds)
    max_frame_mb: float = 8.0  # largest camera frame over the WebSocket
    live: LiveConfig = field(default_factory=LiveConfig)
    quiet: bool = True  # swallow Holistic's native start-up lines


class ClipError(Exception):
    """A clip that was received but cannot be recognised: HTTP `status`, a message, and what is known of it."""

    def __init__(self, status: int, message: str, extra: dict | None = None):
        super().__init__(message)
        self.status, self.extra = status, extra or {}


_MAKE = threading.Lock()


def new_holistic(quiet: bool = True) -> Holistic:
    """A Holistic that has run once (its first run prints start-up lines), made one at a time."""
    with _MAKE:
        h = Holistic(quiet=quiet)
        h.process_rgb(np.zeros((64, 64, 3), np.uint8))
        h.reset()
        return h


def recognise(holistic: Holistic, predictor: Predictor, upload: Upload, k: int, max_frames: int) -> dict:
    """The answer for an uploaded clip: `signrec predict --json`'s numbers for it (the same extraction and the
    same `predict_keypoints`), plus its length and the parts found in each frame. ClipError when it cannot be
    used: not a video, cut off, too long, or no person in it."""
    name = upload.name
    try:
        check_complete(upload.path, name=name)
        info = probe(upload.path)
        if max(info.width, info.height) > MAX_SIDE:
            raise ClipError(422, f"{name}: {info.width}x{info.height} is larger than this server takes ({MAX_SIDE} "
                                 f"pixels a side); MediaPipe works on small pictures anyway")  # fmt: skip
        if info.frame_count > max_frames:
            raise ClipError(422, f"{name}: {info.frame_count} frames is longer than this server takes "
                                 f"({max_frames} frames, signrec serve --max-frames): send the sign alone")  # fmt: skip
        clip = extract_video(upload.path, FrameRange(1, max_frames), holistic)
        check_complete(upload.path, clip.frames, info.frame_count, name)
    except VideoError as e:
        raise ClipError(422, str(e).replace(str(upload.path), name)) from None
    try:
        prediction = predict_keypoints(predictor, clip.keypoints, name, k)
    except ValueError as e:  # a clip the model cannot take (longer than a fixed-length ONNX export)
        raise ClipError(422, f"{name}: {e}") from None
    found = layout.presence(clip.keypoints)  # (frames, parts)
    answer = {**prediction.to_dict(), "fps": round(clip.fps, 3) or None,
              "seconds": round(clip.frames / clip.fps, 3) if clip.fps else None,
              "presence": {p: found[:, i].astype(int).tolist() for i, p in enumerate(layout.PARTS)}}  # fmt: skip
    try:
        check_person(clip.keypoints, DEFAULT_MIN_PERSON, name)
    except NoPersonError as e:
        about = {key: answer[key] for key in ("input", "frames", "fps", "seconds", "found", "presence")}
        raise ClipError(422, f"{e}: the recogniser needs a signer in view, with hands visible", about) from None
    return answer


def image_size(data: bytes) -> tuple[int, int] | None:
    """(width, height) from a PNG or JPEG header, without decoding; None for anything else."""
    if data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) >= 24:
        return int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    if data[:2] != b"\xff\xd8":
        return None
    i = 2
    while i + 9 <= len(data) and data[i] == 0xFF:
        marker = data[i + 1]
        if marker == 0xFF:  # padding
            i += 1
            continue
        if 0xC0 <= marker <= 0xCF and marker not in (0xC4, 0xC8, 0xCC):  # a start of frame: the size
            return int.from_bytes(data[i + 7 : i + 9], "big"), int.from_bytes(data[i + 5 : i + 7], "big")
        i += 2 + int.from_bytes(data[i + 2 : i + 4], "big")
    return None


def live_frame(stream: LiveStream, data: bytes) -> dict:
    """One camera frame (JPEG or PNG bytes) through the live path; what the page shows for it."""
    import cv2

    size = image_size(data)
    if size is None:
        raise ValueError("not an image: send each frame as JPEG or PNG bytes")
    if max(size) > MAX_SIDE:  # checked before decoding: a small PNG can hold a huge picture
        raise ValueError(f"a {size[0]}x{size[1]} picture is larger than {MAX_SIDE} pixels a side: send smaller frames")
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        raise ValueError("not an image: send each frame as JPEG or PNG bytes")
    t = time.perf_counter()
    _, step = stream.process(cv2.cvtColor(image, cv2.COLOR_BGR2RGB))
    window = stream.window
    parts = layout.presence(stream.row[None])[0]
    return {"frame": window.frames, "shown": window.shown, "predicted": step is not None,
            "gloss": step.gloss if step else None, "probability": round(step.probability, 6) if step else None,
            "parts": {p: bool(f) for p, f in zip(layout.PARTS, parts, strict=True)}, "status": window.status(),
            "ms": round((time.perf_counter() - t) * 1e3, 1)}  # fmt: skip


# --- what /docs shows --------------------------------------------------------------------------------------------


class Gloss(BaseModel):
    gloss: str
    probability: float


class PredictionAnswer(BaseModel):
    input: str = Field(description="the uploaded file's name")
    frames: int = Field(description="frames decoded and run through MediaPipe Holistic")
    error: str = Field(description="always empty here (errors are answered with a 4xx status)")
    top: list[Gloss] = Field(description="the top_k glosses, most probable first")
    probabilities: dict[str, float] = Field(description="every gloss the model knows")
    found: dict[str, float] = Field(description="share of frames in which pose, face, left and right hand were found")
    fps: float | None = Field(description="frames per second, as the file says")
    seconds: float | None = Field(description="the clip's length")
    presence: dict[str, list[int]] = Field(description="per part, 1 for each frame in which it was found, else 0")


class Problem(BaseModel):
    detail: str = Field(description="what went wrong, for people")


UPLOAD_BODY = {"requestBody": {"required": True, "content": {
    "multipart/form-data": {"schema": {"type": "object", "required": ["file"],
                                       "properties": {"file": {"type": "string", "format": "binary"}}}},
    "application/octet-stream": {"schema": {"type": "string", "format": "binary"}},
}}}  # fmt: skip


def _refuse(status: int, message: str, extra: dict | None = None, retry_after: int | None = None) -> JSONResponse:
    """An error answer. A 413 also closes the connection, so that the rest of a large body is never read
    (clients that want the answer before sending use `Expect: 100-continue`, as curl does); after other errors
    the connection stays usable (uvicorn skips what is left of the body)."""
    headers = {"Retry-After": str(retry_after)} if retry_after else {}
    if status == 413:
        headers["Connection"] = "close"
    return JSONResponse({"detail": message, **(extra or {})}, status, headers=headers)


def create_app(model: str | Path | Predictor, options: ServeOptions | None = None,
               on_ready: Callable[[], None] | None = None) -> FastAPI:  # fmt: skip
    """The web app for a run folder, model.pt, model.keras or model.onnx. Workers and their Holistics start
    with the app (its lifespan; then `on_ready()` is called) and stop with it; uploads live in a temporary
    folder removed at the end."""
    options = options or ServeOptions()
    predictor = load_predictor(model)
    limit = int(options.max_mb * 1e6)
    live_config = options.live
    state: dict[str, Any] = {}
    name = Path(str(model)).name if not isinstance(model, Predictor) else "model"

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        if predictor.backend == "torch":
            import torch

            torch.set_num_threads(1)  # as `signrec live`: the model is small, a second thread competes with Holistic
        state["uploads"] = Path(tempfile.mkdtemp(prefix="signrec-serve-"))
        state["work"] = WorkQueue(options.workers, options.queue, partial(new_holistic, options.quiet), Holistic.close)
        state["live"] = Pool(options.live_sessions, partial(new_holistic, options.quiet), Holistic.close)
        state["live_threads"] = ThreadPoolExecutor(max(1, options.live_sessions), thread_name_prefix="signrec-live")
        if on_ready is not None:
            on_ready()
        try:
            yield
        finally:
            state["work"].close()
            state["live_threads"].shutdown(wait=True)
            state["live"].close()
            shutil.rmtree(state["uploads"], ignore_errors=True)

    app = FastAPI(title="signrec", version=__version__, lifespan=lifespan, docs_url=None, redoc_url=None,
                  description="Recognise an isolated sign in a video clip, or live from a camera, with a signrec "
                  f"model ({len(predictor.labels)} glosses). The page at / does the same for people.")  # fmt: skip
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.exception_handler(Exception)
    async def unexpected(request: Request, error: Exception) -> JSONResponse:
        # the traceback still goes to the console (uvicorn logs it); the client gets a readable answer
        return JSONResponse({"detail": f"the server failed on this request ({type(error).__name__}: {error}); "
                                       f"its console says more"}, 500)  # fmt: skip

    @app.get("/", include_in_schema=False)
    async def page() -> FileResponse:
        return FileResponse(STATIC / "index.html")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> FileResponse:
        return FileResponse(STATIC / "docs.html")

    @app.get("/api/info", summary="The model and this server's limits")
    async def info() -> dict:
        window = live_config.window or default_window(predictor)
        return {"model": name, "backend": predictor.backend, "framework": predictor.framework,
                "labels": predictor.labels, "max_mb": options.max_mb, "max_frames": options.max_frames,
                "top_k": options.top_k, "workers": options.workers, "queue": options.queue,
                "live": {"window": window, "stride": live_config.stride, "threshold": live_config.threshold,
                         "stable": live_config.stable, "sessions": options.live_sessions}}  # fmt: skip

    @app.post(
        "/api/predict",
        summary="Recognise the sign in an uploaded clip",
        description="Send the clip as a multipart form (field `file`: `curl -F file=@clip.mp4 URL/api/predict`) or "
        "as the body (`Content-Type: video/mp4` or `application/octet-stream`, the name in `X-Filename`). The "
        "answer carries the same numbers as `signrec predict --json` for the same clip, plus the clip's length "
        "and the parts found in each frame.",
        openapi_extra=UPLOAD_BODY,
        responses={200: {"model": PredictionAnswer, "description": "the prediction"},
                   400: {"model": Problem, "description": "a malformed or incomplete upload"},
                   413: {"model": Problem, "description": "over the size limit; answered before the rest is read"},
                   415: {"model": Problem, "description": "neither a form nor a video body"},
                   422: {"model": Problem, "description": "not a video, cut off, too long, or no person in it"},
                   503: {"model": Problem, "description": "busy: the queue is full; see Retry-After (seconds)"}},
    )  # fmt: skip
    async def predict(request: Request, top_k: int = Query(options.top_k, ge=1, le=1000,
                                                           description="how many glosses to list")) -> Response:  # fmt: skip
        t = time.perf_counter()
        try:
            check_length(request, limit)
            slot = state["work"].admit()
        except UploadError as e:
            log.info(f"refused an upload ({e.status}): {e}")
            return _refuse(e.status, str(e))
        except Busy as e:
            log.info(f"refused an upload (503): {e}")
            return _refuse(503, str(e), retry_after=e.retry_after)
        with slot:
            try:
                upload = await receive(request, state["uploads"], limit)
            except UploadError as e:
                log.info(f"refused an upload ({e.status}): {e}")
                return _refuse(e.status, str(e))
            except ClientDisconnect:
                log.info("an upload stopped before its end (the client went away)")
                return Response(status_code=400)  # nobody is listening
            try:
                answer = await slot.run(recognise, predictor, upload, top_k, options.max_frames,
                                        cleanup=partial(upload.path.unlink, missing_ok=True))  # fmt: skip
            except ClipError as e:
                log.info(f"{upload.name}: {e.status} {e}")
                return _refuse(e.status, str(e), e.extra)
        best = answer["top"][0] if answer["top"] else {"gloss": "?", "probability": 0}
        log.info(f"{upload.name} ({answer['frames']} frames): {best['gloss']} {best['probability']:.0%} "
                 f"[{time.perf_counter() - t:.1f} s]")  # fmt: skip
        return JSONResponse(answer)

    @app.websocket("/api/live")
    async def live(ws: WebSocket) -> None:
        """Camera frames in (binary JPEG or PNG), one JSON answer out per frame, in order."""
        await ws.accept()
        loop = asyncio.get_running_loop()
        try:
            holistic = await loop.run_in_executor(state["live_threads"], state["live"].acquire)
        except Busy as e:
            await ws.send_json({"error": str(e)})
            await ws.close(1013)  # try again later
            return
        stream = LiveStream(predictor, live_config, holistic)
        log.info(f"camera session started (window {stream.window.window} frames)")
        max_bytes = int(options.max_frame_mb * 1e6)
        try:
            await ws.send_json({"ready": True, "window": stream.window.window, "min_frames": stream.window.min_frames,
                                "labels": predictor.labels, "no_sign": NO_SIGN})  # fmt: skip
            while True:
                message = await ws.receive()
                if message["type"] == "websocket.disconnect":
                    break
                data = message.get("bytes")
                if data is None:
                    await ws.send_json({"error": "send frames as binary messages (JPEG or PNG bytes)"})
                    continue
                if len(data) > max_bytes:
                    await ws.send_json({"error": f"a frame of {len(data) / 1e6:.1f} MB is over the limit of "
                                                 f"{options.max_frame_mb:g} MB: send smaller frames"})  # fmt: skip
                    continue
                try:
                    answer = await loop.run_in_executor(state["live_threads"], live_frame, stream, data)
                except ValueError as e:
                    answer = {"error": f"frame {stream.window.frames + 1}: {e}"}
                await ws.send_json(answer)
        except WebSocketDisconnect:
            pass
        finally:
            state["live"].release(holistic)
            log.info(f"camera session ended after {stream.window.frames} frames")

    return app
