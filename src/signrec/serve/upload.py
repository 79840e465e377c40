"""Receiving an uploaded clip: streamed to a temporary file as it arrives, never held in memory, and refused
(413) as soon as it is known to be over the limit: from Content-Length before reading anything, and while
reading for a body whose length is not announced (chunked transfer).

Two forms are taken: a multipart form with the clip in a field named `file` (what browsers and `curl -F` send),
or the clip itself as the body (`Content-Type: video/...` or `application/octet-stream`, name in `X-Filename`).
"""

from __future__ import annotations

import os
import re
import uuid
from dataclasses import dataclass
from pathlib import Path

from python_multipart.exceptions import MultipartParseError
from python_multipart.multipart import MultipartParser, parse_options_header
from starlette.requests import Request

from ..video import VIDEO_SUFFIXES

FIELD = "file"
FORM_ALLOWANCE = 64 * 1024  # a form's own headers and boundaries around the file, on top of the limit


class UploadError(Exception):
    """An upload that is refused: HTTP `status` and a message for people."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    path: Path  # the temporary file; whoever takes the upload deletes it
    name: str  # the file's own name as the client gave it (for messages and the answer)
    size: int


def too_large(limit: int) -> UploadError:
    return UploadError(413, f"the clip is larger than this server's limit of {limit / 1e6:g} MB "
                            f"(signrec serve --max-mb); send a shorter or smaller clip")  # fmt: skip


def check_length(request: Request, limit: int) -> None:
    """Refuse at once, before any of the body is read, an upload whose announced length is over the limit."""
    announced = request.headers.get("content-length")
    if announced is None:
        return
    if not announced.isdigit():
        raise UploadError(400, f"Content-Length {announced!r} is not a number of bytes")
    form = request.headers.get("content-type", "").lower().startswith("multipart/")
    if int(announced) > limit + (FORM_ALLOWANCE if form else 0):
        raise too_large(limit)


def safe_name(name: str) -> str:
    """The client's file name without folders or odd characters (it only appears in messages)."""
    base = re.split(r"[\\/]", name or "")[-1]
    return re.sub(r"[^\w. ()+-]", "_", base)[:120] or "clip"


async def receive(request: Request, folder: Path, limit: int) -> Upload:
    """Stream the request's clip into a new file in `folder`; UploadError when it is refused. The file is
    removed again when anything goes wrong (including the client going away, `ClientDisconnect`)."""
    check_length(request, limit)
    kind, options = parse_options_header(request.headers.get("content-type", ""))
    kind = kind.decode("latin-1").lower()
    path = folder / f"upload-{uuid.uuid4().hex}"
    received = 0
    try:
        # a local temporary file: each write is a short copy of one chunk, cheaper than a hop to a thread
        with open(path, "wb") as out:  # noqa: ASYNC230
            if kind == "multipart/form-data":
                boundary = options.get(b"boundary")
                if not boundary:
                    raise UploadError(400, "a multipart upload without a boundary in its Content-Type")
                form = _FilePart(out)
                parser = MultipartParser(boundary, form.callbacks())
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > limit + FORM_ALLOWANCE:
                        raise too_large(limit)
                    try:
                        parser.write(chunk)
                    except MultipartParseError as e:
                        raise UploadError(400, f"the upload is not a valid multipart form ({e})") from None
                    if form.size > limit:
                        raise too_large(limit)
                parser.finalize()
                if not form.ended:
                    raise UploadError(400, "the upload ended before the form did: it was cut off on the way "
                                           "(a dropped connection?); send it again")  # fmt: skip
                if form.name is None:
                    raise UploadError(400, f"no file in the form: send the clip in a field named '{FIELD}' "
                                           f"(curl -F {FIELD}=@clip.mp4 ...)")  # fmt: skip
                name, size = form.name, form.size
            elif kind.startswith("video/") or kind == "application/octet-stream":
                async for chunk in request.stream():
                    received += len(chunk)
                    if received > limit:
                        raise too_large(limit)
                    out.write(chunk)
                name, size = request.headers.get("x-filename", "clip"), received
            else:
                raise UploadError(415, f"send the clip as a multipart form (field '{FIELD}') or as the body with "
                                       f"Content-Type video/... or application/octet-stream, not "
                                       f"{kind or 'no Content-Type'}")  # fmt: skip
        name = safe_name(name)
        suffix = Path(name).suffix.lower()
        if suffix in VIDEO_SUFFIXES:  # a hint for FFmpeg; it reads the contents either way
            path = path.rename(path.with_suffix(suffix))
        return Upload(path, name, size)
    except BaseException:
        path.unlink(missing_ok=True)
        raise


class _FilePart:
    """Callbacks for python-multipart's streaming parser: the first part with a file name (the `file` field of
    signrec's page and of `curl -F file=@clip.mp4`) goes to `out`; other parts are skipped."""

    def __init__(self, out: os.PathLike | object):
        self.out = out
        self.name: str | None = None
        self.size = 0
        self.ended = False
        self._headers: dict[str, str] = {}
        self._field = self._value = b""
        self._writing = False

    def callbacks(self) -> dict:
        return {"on_part_begin": self._begin, "on_header_field": self._on_field, "on_header_value": self._on_value,
                "on_header_end": self._header_end, "on_headers_finished": self._headers_done,
                "on_part_data": self._data, "on_part_end": self._part_end, "on_end": self._end}  # fmt: skip

    def _begin(self) -> None:
        self._headers, self._writing = {}, False

    def _on_field(self, data: bytes, start: int, end: int) -> None:
        self._field += data[start:end]

    def _on_value(self, data: bytes, start: int, end: int) -> None:
        self._value += data[start:end]

    def _header_end(self) -> None:
        self._headers[self._field.decode("latin-1").lower()] = self._value.decode("utf-8", "replace")
        self._field = self._value = b""

    def _headers_done(self) -> None:
        _, params = parse_options_header(self._headers.get("content-disposition", ""))
        filename = params.get(b"filename")
        if filename is not None and self.name is None:
            self.name = filename.decode("utf-8", "replace") or "clip"
            self._writing = True

    def _data(self, data: bytes, start: int, end: int) -> None:
        if self._writing:
            self.out.write(data[start:end])  # type: ignore[attr-defined]
            self.size += end - start

    def _part_end(self) -> None:
        self._writing = False

    def _end(self) -> None:
        self.ended = True
