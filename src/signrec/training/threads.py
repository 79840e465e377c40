"""Choosing how many CPU threads (and data-loading workers) training uses, by measuring, not by luck.

PyTorch's default (one thread per core) is fast on an idle machine, but on a small CPU that is also busy
(keypoint extraction, a second job) its threads wait for each other and an epoch can take several times as
long as with one thread. So before training, a few real training steps are timed at each candidate thread
count, on the machine as it is now, and the fastest wins; so is the time to load and preprocess a batch, to
decide whether a background data worker pays. `--threads N` skips the measurement. On a GPU nothing is timed:
the cores (or the N given) make batches in several workers beside the training process (`gpu_workers`).
"""

from __future__ import annotations

import copy
import os
import statistics
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

STEPS = 3  # timed training steps per candidate (after one warm-up step)
# What starting a spawned data worker costs once (a fresh interpreter importing torch and signrec): about 4 s on
# an idle 2-core machine, 10-12 s on a busy one (measured with benchmarks/bench_threads.py's busy process).
WORKER_START_SECONDS = 10.0
# On a GPU the training step leaves the CPU free and is short, so batches (augmentation and features, numpy) are
# what an epoch waits for: this many worker processes at most make them, at least one core left to the training
# process.
MAX_GPU_WORKERS = 8


@dataclass
class ThreadChoice:
    threads: int
    workers: int  # DataLoader worker processes (0: batches are made in the training process)
    measured: dict[str, float] = field(default_factory=dict)  # candidate -> seconds per step (median)
    data_seconds: float = 0.0  # seconds to read, augment and preprocess one batch
    how: str = "measured"

    def to_dict(self) -> dict:
        return asdict(self)


def cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - not Linux
        return os.cpu_count() or 1


def set_interop_threads(n: int = 1) -> None:
    """Inter-op threads (parallel independent operators) help little for these models; PyTorch allows
    setting them only before its first parallel work, so this is called early and is harmless later."""
    import torch

    try:
        torch.set_num_interop_threads(n)
    except RuntimeError:
        pass


def _time_steps(step: Callable[[], None], threads: int, give_up_after: float = float("inf")) -> float:
    """Median seconds per step at `threads`; stops early (returning the one slow time) when a step takes longer
    than `give_up_after`, as a busy machine's extra threads can make them take many times as long."""
    import torch

    torch.set_num_threads(threads)
    times = []
    for i in range(STEPS + 1):  # the first is a warm-up (and TorchScript's first compile), not counted
        t = time.perf_counter()
        step()
        took = time.perf_counter() - t
        if i and took > give_up_after:
            return took
        if i:
            times.append(took)
    return statistics.median(times)


def can_spawn() -> bool:
    """Whether a spawned process can re-create this one's `__main__` without running it again.

    A spawned worker imports the main script; a script read from stdin cannot be imported, and one without an
    `if __name__ == "__main__":` guard would start training again in the worker, which dies, and the parent then
    waits for it forever (CPython's spawn blocks writing to the dead child's pipe). So: no worker in either case.
    """
    import re
    import sys

    main_file = getattr(sys.modules.get("__main__"), "__file__", None)
    if main_file is None:  # an interactive session or `python -m` of a package without a file: nothing re-run
        return True
    try:
        source = Path(main_file).read_text(errors="replace")
    except OSError:
        return False
    return re.search(r"""__name__\s*==\s*["']__main__["']""", source) is not None


def choose(model: Any, batch: tuple, loss_fn: Callable, make_batch: Callable[[], Any] | None = None,
           fixed: int | None = None, planned_steps: int | None = None, accelerator: bool = False,
           bf16: bool = False) -> ThreadChoice:  # fmt: skip
    """Pick threads and workers for training `model` on batches like `batch` = (x, mask, y).

    A deep copy of the model takes the timed steps, so training starts from the same weights either way, and the
    random state is put back (how many steps the measurement takes depends on the load; the run must not).
    `make_batch` builds one batch from the data (read + augment + preprocess + pad), timed to see whether a
    background worker would hide it; `planned_steps` (steps per epoch x epochs at most) says how much making
    batches could cost over the whole run, to weigh against what starting a worker costs. With `accelerator`
    (training on a GPU) nothing is timed: the CPU only makes batches, so up to MAX_GPU_WORKERS workers make them
    on this process's cores (`fixed` when given: --threads, or each process's share of the machine; see
    `gpu_workers`). With `bf16` the timed steps run under bfloat16 autocast, as training will.
    """
    import torch

    set_interop_threads(1)
    n = cores()
    data = 0.0
    if make_batch is not None:
        t = time.perf_counter()
        make_batch()
        data = time.perf_counter() - t
    if accelerator:
        share = fixed or n
        workers = gpu_workers(share, data, planned_steps) if can_spawn() else 0
        threads = max(1, share - workers)
        torch.set_num_threads(threads)
        return ThreadChoice(threads, workers, {}, data,
                            f"GPU: {workers} data worker{'s' if workers != 1 else ''} on {share} cores")  # fmt: skip
    if fixed is not None:
        torch.set_num_threads(fixed)
        return ThreadChoice(fixed, 0, {}, data, "given")
    with torch.random.fork_rng(devices=[]):
        return _measure(model, batch, loss_fn, data, n, planned_steps, bf16)


def gpu_workers(cores: int, data_seconds: float, planned_steps: int | None) -> int:
    """Data workers beside a GPU on `cores` cores: at least one core for the training process, the others
    (MAX_GPU_WORKERS at most) making batches, when making them over the run costs more than starting the workers;
    else none."""
    if cores < 2 or data_seconds <= 0 or not _repays_workers(data_seconds, planned_steps):
        return 0
    return min(MAX_GPU_WORKERS, cores - 1)


def _repays_workers(data_seconds: float, planned_steps: int | None) -> bool:
    """Whether making batches over the whole run (`planned_steps` of them at most; None: unknown, a long run) costs
    enough to repay starting worker processes."""
    return planned_steps is None or data_seconds * planned_steps > 3 * WORKER_START_SECONDS


def _measure(model: Any, batch: tuple, loss_fn: Callable, data: float, n: int, planned_steps: int | None,
             bf16: bool = False) -> ThreadChoice:  # fmt: skip
    import torch

    probe = copy.deepcopy(model).train()
    opt = torch.optim.SGD(probe.parameters(), lr=0.0)
    x, mask, y = batch

    def step() -> None:
        opt.zero_grad(set_to_none=True)
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            logits = probe(x, mask)
        loss_fn(logits.float(), y).backward()

    measured = {"1": _time_steps(step, 1)}
    if n > 1:
        measured[str(n)] = _time_steps(step, n, give_up_after=1.5 * measured["1"])
    threads = int(min(measured, key=measured.get))
    # In place, a step costs making its batch plus training on it. With a worker process making the batches on a
    # core of its own, training has one core fewer and a step costs the longer of the two. The worker is chosen
    # when that is faster, making a batch takes at least half as long as a training step (below that, passing
    # batches between processes eats the gain: the reference recipe's 10 ms batches were slower through a
    # worker), the run is long enough to repay starting it, and a spawned process can start (see `can_spawn`).
    # (WLASL300, best recipe: 1 thread 0.28 s a step, 2 threads 0.16 s, a batch 0.32 s: in place 0.48 s a step,
    # with a worker 0.32 s; choosing by the training step alone took the slower one.)
    workers = 0
    if n > 1 and data > 0 and _repays_workers(data, planned_steps):
        if str(n - 1) not in measured:
            measured[str(n - 1)] = _time_steps(step, n - 1, give_up_after=1.5 * measured["1"])
        threads = int(min(measured, key=measured.get))  # in place, with every count measured
        beside = min((t for t in measured if int(t) < n), key=lambda t: max(measured[t], data))  # one core fewer
        in_place, with_worker = measured[str(threads)] + data, max(measured[beside], data)
        if with_worker < in_place and data >= 0.5 * measured[beside] and can_spawn():
            threads, workers = int(beside), 1
    torch.set_num_threads(threads)
    return ThreadChoice(threads, workers, measured, data)
