"""How a training run ends early on request: a signal (Ctrl-C, a scheduler's SIGTERM) after the best model so far
was saved. Light to import, so that the command line can catch it without loading PyTorch."""

from __future__ import annotations

import signal


class Interrupted(Exception):
    """Training was stopped by a signal; the best model so far has been saved as a usable run."""

    def __init__(self, signum: int, message: str = ""):
        super().__init__(message or f"training stopped by {signal.Signals(signum).name}")
        self.signum = int(signum)

    @property
    def exit_status(self) -> int:
        """128 + the signal number: 130 for SIGINT, 143 for SIGTERM, as shells report them."""
        return 128 + self.signum


class SecondaryRank(Exception):
    """A secondary process of distributed training (global rank > 0) has done its part; rank 0 writes the run.

    The command line ends such a process quietly with status 0, which is what the launcher expects."""

    def __init__(self, rank: int):
        super().__init__(f"rank {rank} of a distributed run: done (rank 0 writes the run folder)")
        self.rank = rank
