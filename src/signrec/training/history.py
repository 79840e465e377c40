"""Per-epoch metrics as CSV (same columns for both frameworks), and honest progress lines.

Training stops at `max_epochs`, or when the validation loss has not improved for `patience` epochs, or when
`max_minutes` are up, whichever comes first; the progress line says the nearest of these, so the estimate never
counts to an epoch limit the run will not reach.
"""

from __future__ import annotations

import csv
import math
import os
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TextIO

from ..io import count, read_csv_rows, write_csv_atomic
from .config import HISTORY_FIELDS

PRINT_EVERY = 2.0  # seconds between progress lines (always one for an epoch that improves the best)


def epochs_left(epoch: int, best_epoch: int, patience: int, max_epochs: int) -> int:
    """The most epochs still to run after `epoch` if validation does not improve again."""
    return max(0, min(max_epochs - epoch, best_epoch + patience - epoch))


def eta_seconds(epoch: int, best_epoch: int, patience: int, max_epochs: int, seconds_per_epoch: float,
                elapsed: float = 0.0, max_minutes: float | None = None) -> float:  # fmt: skip
    """Seconds until training stops at the latest if validation does not improve (time cap included)."""
    return capped(epochs_left(epoch, best_epoch, patience, max_epochs) * seconds_per_epoch, elapsed, max_minutes)


def capped(seconds: float, elapsed: float, max_minutes: float | None) -> float:
    """`seconds` still to run, no more than what the time cap leaves."""
    return seconds if max_minutes is None else min(seconds, max(0.0, max_minutes * 60 - elapsed))


def epochs(n: int) -> str:
    """`1 epoch`, `3 epochs`: for progress lines."""
    return count(n, "epoch")


def format_seconds(s: float) -> str:
    if s < 90:
        return f"{s:.0f} s"
    if s < 5400:
        return f"{s / 60:.0f} min"
    return f"{s / 3600:.1f} h"


class History:
    """Appends one row per epoch to `path` (continuing it on resume) and prints progress lines.

    The file is opened at the first row, so that the other processes of a distributed run, which record nothing,
    never touch it."""

    def __init__(self, path: str | os.PathLike, max_epochs: int, patience: int, progress: bool = True,
                 desc: str = "train", max_minutes: float | None = None, resume: bool = False,
                 stream: TextIO | None = None, epochs_done: int | None = None,
                 left: Callable[[], tuple[int, str]] | None = None):  # fmt: skip
        self.path = Path(path)
        self.left = left  # epochs still to run and how to say it, where the schedule decides
        self.rows: list[dict] = []
        if resume and self.path.exists():
            self.rows = [{k: float(v) if k != "epoch" else int(v) for k, v in r.items() if v not in ("", None)}
                         for r in read_csv_rows(self.path)]  # fmt: skip
            if epochs_done is not None and any(r["epoch"] > epochs_done for r in self.rows):
                self.rows = [r for r in self.rows if r["epoch"] <= epochs_done]  # the resume point's epochs
                write_csv_atomic(self.path, self.rows, HISTORY_FIELDS)
        self._f: TextIO | None = None
        self._w: csv.DictWriter | None = None
        self.max_epochs, self.patience, self.max_minutes = max_epochs, patience, max_minutes
        self.progress, self.desc, self.stream = progress, desc, stream or sys.stderr
        self._start = self._t = time.perf_counter()
        self._printed = 0.0

    @property
    def best_epoch(self) -> int:
        """The epoch with the lowest validation loss (what early stopping and the saved model keep)."""
        scored = [r for r in self.rows if "val_loss" in r]
        return int(min(scored, key=lambda r: r["val_loss"])["epoch"]) if scored else 0

    @property
    def best(self) -> dict:
        b = self.best_epoch
        return next((r for r in self.rows if r["epoch"] == b), {})

    def epoch(self, epoch: int, **metrics: float) -> None:
        now = time.perf_counter()
        row = {"epoch": epoch, **{k: round(float(v), 6) for k, v in metrics.items() if v is not None},
               "seconds": round(now - self._t, 4)}  # fmt: skip
        self._t = now
        improved = not self.rows or row.get("val_loss", math.inf) < self.best.get("val_loss", math.inf)
        self.rows.append(row)
        if self._f is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._f = open(self.path, "a" if len(self.rows) > 1 else "w", newline="")  # noqa: SIM115 - open for the whole run
            self._w = csv.DictWriter(self._f, fieldnames=HISTORY_FIELDS)
            if len(self.rows) == 1:
                self._w.writeheader()
        self._w.writerow({k: row.get(k, "") for k in HISTORY_FIELDS})
        self._f.flush()
        last = epoch >= self.max_epochs or (self.left is not None and self.left()[0] == 0)  # the schedule's end
        if self.progress and (improved or now - self._printed >= PRINT_EVERY or last):
            print(self.line(), file=self.stream, flush=True)
            self._printed = now

    def line(self) -> str:
        """`epoch 12/300 | loss 1.23 / val 1.10 | val acc 61.0% | best 63.0% (epoch 9) | stops within 27 epochs
        unless val improves (~1 min)`."""
        r, best = self.rows[-1], self.best
        e, b = int(r["epoch"]), self.best_epoch
        elapsed, per_epoch = time.perf_counter() - self._start, self.seconds_per_epoch(recent=5)
        if self.left is not None:  # the schedule knows (the plateau schedule's decay), unless max epochs come first
            left, text = self.left()
            if e + left > self.max_epochs:
                left = self.max_epochs - e
                text = f"stops in {epochs(left)}, at max epochs"
            eta = capped(left * per_epoch, elapsed, self.max_minutes)
            when = f"{text} (~{format_seconds(eta)})" if left else "stopping"
        else:
            left = epochs_left(e, b, self.patience, self.max_epochs)
            eta = eta_seconds(e, b, self.patience, self.max_epochs, per_epoch, elapsed, self.max_minutes)
            when = f"stops within {epochs(left)} unless val improves (~{format_seconds(eta)})" if left else "stopping"
        if "val_loss" not in r:  # trained without validation (a refit)
            return f"{self.desc} epoch {e}/{self.max_epochs} | loss {r.get('train_loss', math.nan):.3f} | {when}"
        return (f"{self.desc} epoch {e}/{self.max_epochs} | loss {r.get('train_loss', math.nan):.3f} / val "
                f"{r.get('val_loss', math.nan):.3f} | val acc {r.get('val_acc', math.nan):.1%} | best "
                f"{best.get('val_acc', math.nan):.1%} (epoch {b}) | {when}")  # fmt: skip

    def close(self) -> None:
        if self._f is not None:
            self._f.close()

    def seconds_per_epoch(self, recent: int | None = None) -> float:
        rows = self.rows[-recent:] if recent else self.rows
        return statistics.median(r["seconds"] for r in rows) if rows else 0.0
