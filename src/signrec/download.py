"""Fetching video files: plain HTTP(S) with timeouts, retries, a size cap and per-host limits, and yt-dlp for
YouTube. A fetched file is checked to be a real video before it is kept, and it only ever appears under its
final name once it is complete.

Failures are classified: `Missing` for links that are gone for good (HTTP 404/410/403, an HTML page in place
of a video, a removed YouTube video), `DownloadError` for everything else (timeouts, cut connections, files
over the size cap, undecodable files), which a later run may retry.
"""

from __future__ import annotations

import contextlib
import http.client
import os
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from .video import VIDEO_SUFFIXES, VideoError, iter_frames

USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) signrec (+https://github.com/signrec)"
YOUTUBE_HOSTS = ("youtube.com", "youtu.be")
_PERMANENT_HTTP = (401, 403, 404, 410, 451)
_HTML_STARTS = (b"<!doctype html", b"<html", b"<head", b"<?xml", b"<body")


class DownloadError(Exception):
    """A download that failed; a later run may succeed (network trouble, a file too large, a bad file)."""


class Missing(DownloadError):
    """The link is dead for good: the video is gone from its site."""


class TooLarge(DownloadError):
    """The file is larger than the size cap; trying again would not help."""


@dataclass
class FetchConfig:
    jobs: int = 4  # downloads at a time
    per_host: int = 2  # downloads at a time from one host
    timeout: float = 30.0  # seconds without data before a try is given up
    retries: int = 3  # further tries after a transient failure
    backoff: float = 2.0  # seconds before the first retry, doubling each time
    max_bytes: int = 1 << 30  # refuse files larger than this
    ytdlp_hosts: tuple[str, ...] = YOUTUBE_HOSTS  # hosts fetched through yt-dlp (a suffix match)
    user_agent: str = USER_AGENT


def host_of(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def uses_ytdlp(url: str, config: FetchConfig) -> bool:
    host = host_of(url)
    return any(host == h or host.endswith("." + h) for h in config.ytdlp_hosts)


class HostLimiter:
    """At most `per_host` concurrent downloads from any one host (thread-safe)."""

    def __init__(self, per_host: int):
        self.per_host, self._lock, self._sems = max(1, per_host), threading.Lock(), {}

    @contextlib.contextmanager
    def hold(self, url: str):
        host = host_of(url)
        with self._lock:
            sem = self._sems.setdefault(host, threading.BoundedSemaphore(self.per_host))
        with sem:
            yield


def check_video(path: str | os.PathLike) -> None:
    """Raise (Missing for an HTML page, DownloadError otherwise) unless `path` is a video with a decodable frame."""
    path = Path(path)
    size = path.stat().st_size
    if size == 0:
        raise DownloadError(f"{path}: empty file (0 bytes)")
    with open(path, "rb") as f:
        head = f.read(1024).lstrip().lower()
    if head.startswith(_HTML_STARTS) or b"<html" in head:
        raise Missing(f"{path}: the link answers with an HTML page, not a video (the video is probably gone)")
    try:
        next(iter_frames(path))
    except (VideoError, StopIteration) as e:
        kind = "a Flash (.swf) file with no video FFmpeg can decode" if head[:3] in (b"fws", b"cws", b"zws") else None
        raise DownloadError(f"{path}: {kind or 'not a decodable video'} ({e})") from None


@dataclass
class Progress:
    """Shared byte counter for a progress bar; `on_bytes` is called from download threads."""

    on_bytes: Callable[[int], None] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    total: int = 0

    def add(self, n: int) -> None:
        with self._lock:
            self.total += n
        if self.on_bytes is not None:
            self.on_bytes(n)


def _suffix_for(url: str, content_type: str = "") -> str:
    suffix = Path(urllib.parse.urlsplit(url).path).suffix.lower()
    if suffix in VIDEO_SUFFIXES or suffix == ".swf":
        return suffix
    for key, ext in (("webm", ".webm"), ("quicktime", ".mov"), ("flash", ".swf"), ("flv", ".flv")):
        if key in content_type:
            return ext
    return ".mp4"


def _http_once(url: str, part: Path, config: FetchConfig, progress: Progress | None) -> str:
    """One try: stream `url` into `part`; returns the Content-Type."""
    request = urllib.request.Request(url, headers={"User-Agent": config.user_agent, "Accept": "*/*"})
    with urllib.request.urlopen(request, timeout=config.timeout) as response:
        length = response.headers.get("Content-Length")
        if length is not None and int(length) > config.max_bytes:
            raise TooLarge(f"{url}: {int(length):,} bytes is over the cap of {config.max_bytes:,}")
        content_type = (response.headers.get("Content-Type") or "").lower()
        got = 0
        with open(part, "wb") as f:
            while chunk := response.read(1 << 16):
                got += len(chunk)
                if got > config.max_bytes:
                    raise TooLarge(f"{url}: more than the cap of {config.max_bytes:,} bytes")
                f.write(chunk)
                if progress is not None:
                    progress.add(len(chunk))
        if length is not None and got < int(length):
            raise http.client.IncompleteRead(b"", int(length) - got)
    if "text/html" in content_type:
        raise Missing(f"{url}: answers with an HTML page (Content-Type {content_type}), not a video")
    return content_type


def http_download(url: str, dest_stem: str | os.PathLike, config: FetchConfig | None = None,
                  progress: Progress | None = None) -> Path:  # fmt: skip
    """Download `url` to `dest_stem` + a video suffix, retrying transient failures with exponential backoff.

    The file is written under a `.partial` name and renamed only when complete and checked to be a video.
    Returns the final path. Raises Missing or DownloadError, naming the URL and the reason.
    """
    config = config or FetchConfig()
    scheme = urllib.parse.urlsplit(url).scheme
    if scheme not in ("http", "https"):
        raise DownloadError(f"{url}: not an http(s) URL")
    dest_stem = Path(dest_stem)
    dest_stem.parent.mkdir(parents=True, exist_ok=True)
    part = dest_stem.with_name(dest_stem.name + ".partial")
    last: Exception | None = None
    for attempt in range(config.retries + 1):
        if attempt:
            time.sleep(config.backoff * 2 ** (attempt - 1))
        try:
            content_type = _http_once(url, part, config, progress)
            final = dest_stem.with_name(dest_stem.name + _suffix_for(url, content_type))
            check_video(part)
            os.replace(part, final)
            return final
        except urllib.error.HTTPError as e:
            last = e
            if e.code in _PERMANENT_HTTP:
                raise Missing(f"{url}: HTTP {e.code} {e.reason}") from None
        except Missing as e:
            raise Missing(str(e).replace(str(part), url)) from None
        except TooLarge:
            raise
        except DownloadError as e:
            last = DownloadError(str(e).replace(str(part), url))  # a bad file: maybe a truncated answer
        except (urllib.error.URLError, http.client.HTTPException, TimeoutError, ConnectionError, OSError) as e:
            last = e
        finally:
            part.unlink(missing_ok=True)
    raise DownloadError(f"{url}: failed after {config.retries + 1} tries: {_reason(last)}")


def _reason(e: Exception | None) -> str:
    if isinstance(e, urllib.error.HTTPError):
        return f"HTTP {e.code} {e.reason}"
    if isinstance(e, urllib.error.URLError):
        return f"{type(e.reason).__name__}: {e.reason}"
    if isinstance(e, http.client.IncompleteRead):
        return f"connection closed early ({e.expected} bytes short)"
    if isinstance(e, TimeoutError):
        return "timed out"
    return f"{type(e).__name__}: {e}"


_YTDLP_GONE = ("video unavailable", "private video", "has been removed", "account associated", "not available",
               "http error 404", "http error 410", "http error 403", "does not exist", "unsupported url")  # fmt: skip


def ytdlp_download(url: str, dest_stem: str | os.PathLike, config: FetchConfig | None = None,
                   progress: Progress | None = None) -> Path:  # fmt: skip
    """Download `url` with yt-dlp's Python API (best single file with video, mp4 preferred) to `dest_stem`.<ext>.

    yt-dlp writes its own `.part` files; the result is checked to be a video before it gets its final name.
    """
    import yt_dlp

    config = config or FetchConfig()
    dest_stem = Path(dest_stem)
    dest_stem.parent.mkdir(parents=True, exist_ok=True)
    work = dest_stem.with_name(dest_stem.name + ".partial.ytdlp")
    last_bytes = [0]

    def hook(d: dict) -> None:
        if progress is not None and d.get("status") in ("downloading", "finished"):
            done = int(d.get("downloaded_bytes") or 0)
            if done > last_bytes[0]:
                progress.add(done - last_bytes[0])
                last_bytes[0] = done

    options = {
        "outtmpl": str(work) + ".%(ext)s",
        "format": "best[ext=mp4][vcodec!=none]/best[vcodec!=none]/best",
        "quiet": True,
        "no_warnings": True,
        "noprogress": True,
        "noplaylist": True,
        "socket_timeout": config.timeout,
        "retries": config.retries,
        "fragment_retries": config.retries,
        "max_filesize": config.max_bytes,
        "overwrites": True,
        "progress_hooks": [hook],
        "http_headers": {"User-Agent": config.user_agent},
        "logger": _QuietLogger(),
    }
    try:
        with yt_dlp.YoutubeDL(options) as ydl:
            info = ydl.extract_info(url, download=True)
            produced = Path(ydl.prepare_filename(info))
    except yt_dlp.utils.DownloadError as e:
        _remove_partials(work)
        message = str(e).replace("ERROR: ", "")
        if any(g in message.lower() for g in _YTDLP_GONE):
            raise Missing(f"{url}: {message}") from None
        raise DownloadError(f"{url}: {message}") from None
    if not produced.exists():
        _remove_partials(work)
        raise DownloadError(f"{url}: yt-dlp produced no file (over the cap of {config.max_bytes:,} bytes?)")
    try:
        check_video(produced)
    except DownloadError as e:
        _remove_partials(work)
        raise type(e)(str(e).replace(str(produced), url)) from None
    final = dest_stem.with_name(dest_stem.name + (produced.suffix or ".mp4"))
    os.replace(produced, final)
    _remove_partials(work)
    return final


def _remove_partials(work: Path) -> None:
    for p in work.parent.glob(work.name + "*"):
        p.unlink(missing_ok=True)


class _QuietLogger:
    """yt-dlp's messages stay out of the progress bar; errors come back as exceptions."""

    def debug(self, msg: str) -> None:
        pass

    def info(self, msg: str) -> None:
        pass

    def warning(self, msg: str) -> None:
        pass

    def error(self, msg: str) -> None:
        pass


def download(url: str, dest_stem: str | os.PathLike, config: FetchConfig | None = None,
             progress: Progress | None = None) -> Path:  # fmt: skip
    """yt-dlp for YouTube (or `config.ytdlp_hosts`), plain HTTP for everything else."""
    config = config or FetchConfig()
    fetch = ytdlp_download if uses_ytdlp(url, config) else http_download
    return fetch(url, dest_stem, config, progress)
