"""`signrec serve` as the user starts it, in a subprocess on 127.0.0.1 (any free port), and plain HTTP to it.

The server's temporary folder (TMPDIR) is its own, so a test can see that no upload is left behind; its console
output is kept, so a test can see that it stays readable.
"""

from __future__ import annotations

import http.client
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path

READY = re.compile(r"ready at (http://127\.0\.0\.1:(\d+))/")


class ServeProcess:
    def __init__(self, model: Path, tmp: Path, *args: str, start_timeout: float = 180):
        self.tmp = Path(tmp)
        self.tmp.mkdir(parents=True, exist_ok=True)
        env = {**os.environ, "TMPDIR": str(self.tmp), "PYTHONUNBUFFERED": "1"}
        cmd = [sys.executable, "-m", "signrec.cli", "serve", str(model), "--port", "0", *args]
        self.proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.url = ""
        self.port = 0
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        if not self._ready.wait(start_timeout) or not self.url:
            self.stop()
            raise RuntimeError("signrec serve did not start:\n" + "\n".join(self.lines))

    def _read(self) -> None:
        for line in self.proc.stdout:  # type: ignore[union-attr]
            self.lines.append(line.rstrip("\n"))
            m = READY.search(line)
            if m and not self.url:
                self.url, self.port = m.group(1), int(m.group(2))
                self._ready.set()
        self._ready.set()  # the process ended

    @property
    def pid(self) -> int:
        return self.proc.pid

    def upload_folders(self) -> list[Path]:
        """The server's own temporary folders (one while it runs, none after a clean stop)."""
        return sorted(self.tmp.glob("signrec-serve-*"))

    def leftovers(self) -> list[Path]:
        """Files in the server's temporary folders (uploads must be deleted after use)."""
        return [p for d in self.upload_folders() for p in d.rglob("*") if p.is_file()]

    def stop(self, timeout: float = 30) -> int:
        """SIGTERM (a graceful stop), then SIGKILL if it does not end in time; returns the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        self._reader.join(timeout=5)
        return self.proc.returncode

    def __enter__(self) -> ServeProcess:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def multipart(name: str, data: bytes, field: str = "file") -> tuple[bytes, str]:
    """A multipart/form-data body with one file, and its Content-Type."""
    boundary = uuid.uuid4().hex
    head = (f'--{boundary}\r\nContent-Disposition: form-data; name="{field}"; filename="{name}"\r\n'
            f"Content-Type: application/octet-stream\r\n\r\n").encode()  # fmt: skip
    return head + data + f"\r\n--{boundary}--\r\n".encode(), f"multipart/form-data; boundary={boundary}"


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes):
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> dict:
        return json.loads(self.body)


def request(url: str, method: str = "GET", path: str = "/", body: bytes | None = None,
            headers: dict[str, str] | None = None, timeout: float = 120) -> Answer:  # fmt: skip
    """One request on a new connection, closed afterwards."""
    host, port = url.removeprefix("http://").split(":")
    conn = http.client.HTTPConnection(host, int(port), timeout=timeout)
    try:
        conn.request(method, path, body=body, headers={"Connection": "close", **(headers or {})})
        r = conn.getresponse()
        return Answer(r.status, {k.lower(): v for k, v in r.getheaders()}, r.read())
    finally:
        conn.close()


def upload(url: str, name: str, data: bytes, query: str = "", timeout: float = 120) -> Answer:
    body, kind = multipart(name, data)
    return request(url, "POST", f"/api/predict{query}", body, {"Content-Type": kind}, timeout)


def wait_for(check, timeout: float = 10, every: float = 0.1):
    """`check()`'s first truthy value within `timeout` seconds, else its last value."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value or time.monotonic() > end:
            return value
        time.sleep(every)
