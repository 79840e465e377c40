"""Which process of a distributed training run this is, read from what its launcher put in the environment.

Training on several devices or machines runs one process per device, each running the same command:

- `signrec train --devices N --strategy ddp` on one machine: Lightning starts processes 1..N-1 itself, as copies
  of the same command with `LOCAL_RANK` set (and `NODE_RANK` on the other machines of a multi-node run);
- torchrun sets `RANK` (and `LOCAL_RANK`, `WORLD_SIZE`);
- SLURM's srun sets `SLURM_PROCID`.

Only the primary process (global rank 0) writes the run folder; the others train and leave. Light to import: the
runner asks before it imports PyTorch, and the pipeline before it does anything.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable

WAIT_SECONDS = 600.0  # how long a secondary process waits for the primary to prepare the run folder


def is_primary() -> bool:
    """Whether this process is rank 0 (or not part of a distributed launch at all)."""
    env = os.environ
    if "RANK" in env:  # torchrun: the global rank itself
        return int(env["RANK"]) == 0
    return all(int(env.get(k) or 0) == 0 for k in ("LOCAL_RANK", "NODE_RANK", "SLURM_PROCID"))


def env_rank() -> int:
    """This process's rank as far as the environment tells (for messages; the trainer knows it exactly)."""
    env = os.environ
    for key in ("RANK", "SLURM_PROCID", "LOCAL_RANK"):
        if env.get(key):
            return int(env[key])
    return 0


def launched_externally() -> bool:
    """Whether torchrun or srun started several processes of this command (rather than Lightning itself)."""
    env = os.environ
    return ("RANK" in env and int(env.get("WORLD_SIZE") or 1) > 1) or int(env.get("SLURM_PROCID") or 0) != 0


def wait_for_run(read: Callable[[], dict | None], fingerprint: str, where: str, timeout: float = WAIT_SECONDS) -> dict:
    """On a secondary process: the run record `read()` gives once the primary has written it for this
    fingerprint (status `running`, or `finished` when the run is reused)."""
    deadline = time.monotonic() + timeout
    while True:
        run = read() or {}
        if run.get("fingerprint", {}).get("id") == fingerprint and run.get("status") in ("running", "finished"):
            return run
        if time.monotonic() > deadline:
            raise TimeoutError(f"{where}: rank 0 did not start this run within {timeout:.0f} s (is it running the "
                               f"same command on the same data?)")  # fmt: skip
        time.sleep(0.2)
