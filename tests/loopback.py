"""A real HTTP server on 127.0.0.1 for download tests, serving real files and the failures WLASL links show.

Routes (NAME is a file in the served folder):
    /v/NAME            the file, Content-Type from its suffix, Content-Length set
    /gone/NAME         404
    /html/NAME         200 with an HTML page (what dead links often answer), Content-Type text/html
    /html-as-swf/NAME  200 with an HTML page but Content-Type application/x-shockwave-flash
    /slow/NAME         waits `slow_seconds` before answering
    /cut/NAME          announces the whole file, sends half, closes the connection
    /flaky/NAME        503 on the first request for NAME, the file afterwards
    /drip/NAME         the file after 0.3 s (to see how many downloads run at once)
    /meta/NAME         the file as application/json
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

TYPES = {".mp4": "video/mp4", ".swf": "application/x-shockwave-flash", ".json": "application/json"}
HTML = b"<!DOCTYPE html><html><head><title>Page not found</title></head><body>Sorry, this sign moved.</body></html>"


class LoopbackServer:
    def __init__(self, folder: Path, slow_seconds: float = 3.0):
        self.folder, self.slow_seconds = Path(folder), slow_seconds
        self.hits: Counter = Counter()
        self.active = 0
        self.max_active = 0
        self._lock = threading.Lock()
        server = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                with server._lock:
                    server.hits[self.path] += 1
                    server.active += 1
                    server.max_active = max(server.max_active, server.active)
                    first = server.hits[self.path] == 1
                try:
                    server._answer(self, first)
                except (BrokenPipeError, ConnectionResetError):
                    pass
                finally:
                    with server._lock:
                        server.active -= 1

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}"

    def _answer(self, h: BaseHTTPRequestHandler, first: bool) -> None:
        parts = h.path.strip("/").split("/", 1)
        route, name = (parts + [""])[:2]
        path = self.folder / name
        if route == "gone" or not path.is_file():
            return self._send(h, 404, b"not found", "text/plain")
        body = path.read_bytes()
        kind = TYPES.get(path.suffix, "application/octet-stream")
        if route == "html":
            return self._send(h, 200, HTML, "text/html; charset=utf-8")
        if route == "html-as-swf":
            return self._send(h, 200, HTML, "application/x-shockwave-flash")
        if route == "slow":
            time.sleep(self.slow_seconds)
        if route == "drip":
            time.sleep(0.3)
        if route == "flaky" and first:
            return self._send(h, 503, b"busy", "text/plain")
        if route == "cut":
            h.send_response(200)
            h.send_header("Content-Type", kind)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body[: len(body) // 2])
            h.wfile.flush()
            h.close_connection = True
            return None
        if route == "meta":
            kind = "application/json"
        return self._send(h, 200, body, kind)

    @staticmethod
    def _send(h: BaseHTTPRequestHandler, code: int, body: bytes, kind: str) -> None:
        h.send_response(code)
        h.send_header("Content-Type", kind)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        h.wfile.write(body)

    def __enter__(self) -> LoopbackServer:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
