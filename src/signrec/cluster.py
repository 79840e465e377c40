"""Keypoint extraction on a Dask cluster: the engine behind `signrec extract --scheduler`.

`--scheduler local:N` starts a `LocalCluster` of N single-threaded worker processes on this machine;
`--scheduler tcp://host:8786` uses a cluster that is already running (`dask scheduler` + `dask worker`, dask-jobqueue
on SLURM, Kubernetes; see docs/cluster.md). Dask schedules, balances and re-runs; signrec only submits clips:

- Each task is `extract.extract_clip`, the very function the built-in process pool runs, so the arrays are the
  same. Each worker thread opens one Holistic on its first clip and reuses it. Like the built-in pool, workers
  should be single-threaded processes, about one per core (`dask worker --nthreads 1 --nworkers CORES`; a
  LocalCluster always is): Holistic spreads one clip over more than one core by itself, and a second process per
  two cores still adds about half again (BENCHMARKS.md), while threads of one process share its interpreter.
- Workers send the keypoints back (about 400 KB for a 60-frame clip) and this process writes them through the
  store. Worker nodes need not see the output folder, and a worker killed in the middle of a clip never leaves a
  file behind: Dask runs its clips again on another worker (a clip that kills its worker every time is recorded
  as failed and skipped).
- The client never opens a video: even the frame counts for the progress bar are read on the workers.

Dask is imported only here and only when a scheduler is given; `parse_scheduler` is light, so the command line
checks `--scheduler` before any heavy import.
"""

from __future__ import annotations

import dataclasses
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .extract import ClipResult, Job

LOCAL = "local"
_ADDRESS = re.compile(r"^(tcp|tls)://(\[[0-9a-fA-F:]+\]|[A-Za-z0-9_.-]+):(\d{1,5})$")
CONNECT_TIMEOUT = "distributed.comm.timeouts.connect"  # Dask's own setting (30 s unless configured)


class ClusterError(EnvironmentError):
    """The cluster cannot do the work (no scheduler at the address, workers without signrec, ...)."""


@dataclass(frozen=True)
class Scheduler:
    """Where clips run: `address` of a running Dask scheduler, or a LocalCluster of `workers` processes."""

    address: str | None = None
    workers: int | None = None  # LocalCluster size; None = one per core

    @property
    def is_local(self) -> bool:
        return self.address is None

    def __str__(self) -> str:
        return self.address or (f"{LOCAL}:{self.workers}" if self.workers else LOCAL)


def parse_scheduler(text: str) -> Scheduler:
    """`local` (one worker per core), `local:N` or a scheduler address `tcp://HOST:PORT` (also `tls://`).

    Raises ValueError saying what is wrong; imports nothing heavy."""
    text = text.strip()
    if text == LOCAL or text.startswith(f"{LOCAL}:"):
        n = text[len(LOCAL) + 1:]
        if not n:
            return Scheduler()
        if not n.isdigit() or int(n) < 1:
            raise ValueError(f"--scheduler {text}: expected local:N with N a positive number of worker processes")
        return Scheduler(workers=int(n))
    m = _ADDRESS.match(text)
    if not m:
        raise ValueError(f"--scheduler {text}: expected local, local:N or a Dask scheduler address such as "
                         f"tcp://HOST:8786")  # fmt: skip
    if not 0 < int(m.group(3)) < 65536:
        raise ValueError(f"--scheduler {text}: port {m.group(3)} is not a TCP port")
    return Scheduler(address=text)


def require_dask() -> None:
    """Dask is an optional dependency: a clear error with the install hint when it is missing (imports nothing)."""
    import importlib.util

    if importlib.util.find_spec("distributed") is None:
        raise ClusterError("--scheduler needs Dask distributed, which is not installed: pip install 'signrec[cluster]'")


def _extract_task(job: Job, min_person: float, dataset: str, log_path: str | None) -> ClipResult:
    """What a Dask worker runs for one clip (the pool's task, after the same once-per-process setup)."""
    from .extract import extract_clip, worker_setup

    worker_setup(log_path)
    return extract_clip(job, min_person, dataset)


def _frames_task(job: Job) -> int:
    from .extract import expected_frames

    return expected_frames(job)


class DaskEngine:
    """Runs clips on a Dask cluster; the same interface as `extract.ProcessPool` (frames, results, close)."""

    def __init__(self, scheduler: Scheduler, log_path: str | None = None):
        require_dask()
        import dask
        from dask.distributed import Client, LocalCluster

        self.scheduler = scheduler
        self.cluster = None
        self.notes: list[str] = []
        if scheduler.is_local:
            n = scheduler.workers or os.cpu_count() or 1
            # Loopback only, a free port, no dashboard port clash with other clusters; Dask's own chatter
            # (start-up, a worker restarted) stays out of the progress bar.
            self.cluster = LocalCluster(n_workers=n, threads_per_worker=1, processes=True, host="127.0.0.1",
                                        scheduler_port=0, dashboard_address=":0", silence_logs=logging.ERROR)  # fmt: skip
            try:
                self.client = Client(self.cluster)
            except BaseException:
                self.cluster.close(timeout=30)
                raise
            self.log_path = log_path  # same machine: workers' native log lines go to OUT/extract.log
            self.description = f"Dask LocalCluster ({n} worker{'s' if n > 1 else ''} x 1 thread)"
            return
        timeout = dask.config.get(CONNECT_TIMEOUT)
        try:
            self.client = Client(scheduler.address, timeout=timeout)
        except OSError as e:
            raise ClusterError(
                f"--scheduler {scheduler.address}: no Dask scheduler answered within {timeout} ({e}). Start one with "
                f"`dask scheduler` and workers with `dask worker {scheduler.address} --nthreads 1`, or use "
                f"--scheduler local:N for workers on this machine"
            ) from None
        self.log_path = None  # remote workers keep their logs where their cluster puts them
        workers = self.client.scheduler_info(n_workers=-1).get("workers", {})
        threads = sorted({w.get("nthreads", 1) for w in workers.values()})
        self.description = (f"Dask cluster at {scheduler.address} ({len(workers)} workers, "
                            f"{sum(w.get('nthreads', 1) for w in workers.values())} threads)")  # fmt: skip
        if not workers:
            self.notes.append(f"the Dask cluster at {scheduler.address} had no workers when the run started; "
                              f"clips waited for workers to join")  # fmt: skip
        if threads and max(threads) > 1:
            self.notes.append(f"some Dask workers run {max(threads)} threads, each with its own Holistic; signrec "
                              f"is measured with single-threaded worker processes, about one per core (`dask worker "
                              f"--nthreads 1 --nworkers CORES`)")  # fmt: skip

    def _remote(self, job: Job) -> Job:
        """The job as a worker sees it: an absolute path, since a worker's working folder is not ours."""
        return dataclasses.replace(job, source=os.path.abspath(job.source))

    def frames(self, jobs: list[Job]) -> list[int]:
        """Expected frames per job, read from the containers on the workers (this process opens no video)."""
        futures = self.client.map(_frames_task, [self._remote(j) for j in jobs], pure=False)
        try:
            return [int(n) for n in self.client.gather(futures)]
        finally:
            self.client.cancel(futures)

    def results(self, jobs: list[Job], min_person: float, dataset: str) -> Iterator[tuple[Job, ClipResult]]:
        """(job, result) as workers finish them, in any order; a clip re-run after its worker died comes once."""
        from dask.distributed import as_completed
        from distributed.client import FutureCancelledError
        from distributed.scheduler import KilledWorker

        from .extract import failed_clip

        futures = self.client.map(_extract_task, [self._remote(j) for j in jobs], min_person=min_person,
                                  dataset=dataset, log_path=self.log_path, pure=False)  # fmt: skip
        job_of = {f.key: j for f, j in zip(futures, jobs)}
        done = as_completed(futures, loop=self.client.loop)  # not the default client's (another Client here)
        del futures  # as_completed holds each future until it is done; then we let go of it (and its array)
        for future in done:
            job = job_of.pop(future.key)
            try:
                result = future.result()
            except KilledWorker:
                result = failed_clip(job, dataset, f"{job.source}: the Dask worker died each time it ran this clip (a "
                                     f"crash in MediaPipe or FFmpeg, or out of memory); Dask gave up after "
                                     f"distributed.scheduler.allowed-failures + 1 tries")  # fmt: skip
            except ImportError as e:
                raise ClusterError(f"the Dask workers cannot run signrec ({e}); install the same signrec version "
                                   f"in the workers' environment") from None  # fmt: skip
            except FutureCancelledError as e:
                raise ClusterError(f"the Dask cluster dropped the clips ({e}); the clips stored so far are kept: run "
                                   f"the same command again to finish") from None  # fmt: skip
            finally:
                future.release()
            result.row["source"] = job.source  # as given here, like the pool writes it
            yield job, result

    def close(self) -> None:
        self.client.close(timeout=30)
        if self.cluster is not None:
            self.cluster.close(timeout=30)

    def __enter__(self) -> DaskEngine:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
