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
