"""The bounded work behind the web app: a fixed number of worker threads, each with its own Holistic (tracking
state belongs to one clip at a time, so a Holistic is never shared), at most `waiting` clips queued behind them,
and a pool of Holistics for camera sessions.

A request that finds the queue full is refused at once (503 with Retry-After) instead of piling up: memory and
disk in use stay bounded by `workers + waiting` uploads, whatever the number of clients.
"""

from __future__ import annotations

import asyncio
import math
import queue
import statistics
import threading
import time
from collections import deque
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

# Until a clip has been timed, a busy server asks clients to come back after this many seconds per clip ahead.
FIRST_GUESS_SECONDS = 3.0
MAX_RETRY_AFTER = 120


def give_back_memory() -> None:
    """Return freed heap memory to the system (glibc's malloc_trim; elsewhere nothing).

    MediaPipe rebuilds its graph on every `reset()`, between clips; glibc keeps the freed memory, and a
    worker's resident memory grows by about 130 MB over its first 50 clips before it levels off. Trimming after
    each clip (about 7 ms) keeps it where it started."""
    import ctypes
    import ctypes.util

    try:
        ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):  # not glibc
        pass


class Busy(Exception):
    """No room: the message says so and `retry_after` (seconds) when to try again."""

    def __init__(self, message: str, retry_after: int):
        super().__init__(message)
        self.retry_after = retry_after


class WorkQueue:
    """`workers` threads, each owning one `make()` object (a Holistic) for its life, and at most `workers +
    waiting` jobs admitted at a time. Admit before reading an upload (`admit` raises Busy when full), then
    `await slot.run(fn, ...)`: `fn(state, ...)` runs in a worker thread."""

    def __init__(self, workers: int, waiting: int, make: Callable[[], Any], close: Callable[[Any], None]):
        if workers < 1 or waiting < 0:
            raise ValueError(f"need at least one worker and no negative queue, got {workers} and {waiting}")
        self.workers, self.capacity, self._close = workers, workers + waiting, close
        self._jobs: queue.Queue = queue.Queue()
        self._lock = threading.Lock()
        self.admitted = 0
        self._seconds: deque = deque(maxlen=20)  # recent job durations, for Retry-After
        # made here, one after the other: Holistic's start-up redirects file descriptor 2 while it runs
        self._states = [make() for _ in range(workers)]
        self._threads = [threading.Thread(target=self._work, args=(s,), name=f"signrec-worker-{i}", daemon=True)
                         for i, s in enumerate(self._states)]  # fmt: skip
        for t in self._threads:
            t.start()

    def admit(self) -> Slot:
        """A place in the queue, or Busy."""
        with self._lock:
            if self.admitted >= self.capacity:
                wait = self.retry_after()
                raise Busy(f"the server is busy: {self.admitted} clips are being recognised or waiting (at most "
                           f"{self.capacity}); try again in {wait} s", wait)  # fmt: skip
            self.admitted += 1
        return Slot(self)

    def retry_after(self) -> int:
        """Seconds until a place is likely to be free: the clips ahead, shared by the workers, at the recent pace."""
        per_clip = statistics.median(self._seconds) if self._seconds else FIRST_GUESS_SECONDS
        return max(1, min(MAX_RETRY_AFTER, math.ceil(per_clip * max(1, self.admitted) / self.workers)))

    def _release(self) -> None:
        with self._lock:
            self.admitted -= 1

    def _work(self, state: Any) -> None:
        while (job := self._jobs.get()) is not None:
            fn, args, future, slot, cleanup = job
            result, error = None, None
            started = future.set_running_or_notify_cancel()  # False when the request gave up while waiting
            if started:
                t = time.perf_counter()
                try:
                    result = fn(state, *args)
                except BaseException as e:  # noqa: BLE001 - handed to the waiting request
                    error = e
                self._seconds.append(time.perf_counter() - t)
            try:
                if cleanup is not None:
                    cleanup()
            except OSError as e:
                error = error or e
            # the place and the files are given back before the answer, so that a client's next request finds them
            slot._done()
            if started:
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(result)
            give_back_memory()  # after the answer, so that it costs the client nothing

    def close(self) -> None:
        """Stop the workers after the jobs already queued, then close their states."""
        for _ in self._threads:
            self._jobs.put(None)
        for t in self._threads:
            t.join(timeout=60)
        for s in self._states:
            self._close(s)


class Slot:
    """An admitted job's place. Its place is given back when the job finishes (even if the request stopped
    waiting for it), or on leaving the `with` block when no job was started."""

    def __init__(self, work: WorkQueue):
        self.work, self._submitted, self._released = work, False, False

    async def run(self, fn: Callable[..., Any], *args: Any, cleanup: Callable[[], None] | None = None) -> Any:
        """`fn(state, *args)` in a worker; `cleanup()` runs after it in the worker, also when it never started."""
        future: Future = Future()
        self._submitted = True
        self.work._jobs.put((fn, args, future, self, cleanup))
        return await asyncio.wrap_future(future)

    def _done(self) -> None:
        if not self._released:
            self._released = True
            self.work._release()

    def __enter__(self) -> Slot:
        return self

    def __exit__(self, *exc: object) -> None:
        if not self._submitted:
            self._done()


class Pool:
    """At most `size` objects, made on demand (one at a time) and reused: the Holistics of camera sessions."""

    def __init__(self, size: int, make: Callable[[], Any], close: Callable[[Any], None]):
        self.size, self._make, self._close = size, make, close
        self._idle: list[Any] = []
        self._all: list[Any] = []
        self._lock = threading.Lock()
        self.in_use = 0

    def acquire(self) -> Any:
        """An idle object, a new one while fewer than `size` exist, or Busy. Blocks while making one."""
        with self._lock:
            if self._idle:
                self.in_use += 1
                return self._idle.pop()
            if len(self._all) >= self.size:
                raise Busy(f"the server is busy: {self.in_use} camera session(s) are running (at most {self.size}); "
                           f"close another tab or try again later", 10)  # fmt: skip
            obj = self._make()
            self._all.append(obj)
            self.in_use += 1
            return obj

    def release(self, obj: Any) -> None:
        with self._lock:
            self.in_use -= 1
            self._idle.append(obj)

    def close(self) -> None:
        with self._lock:
            for obj in self._all:
                self._close(obj)
            self._all.clear()
            self._idle.clear()
