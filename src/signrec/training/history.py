"""Per-epoch metrics as CSV (same columns for both frameworks), plus an epoch-level progress bar."""

from __future__ import annotations

import csv
import os
import sys
import time
from pathlib import Path

from .config import HISTORY_FIELDS


class History:
    """Appends one row per epoch to `path` and shows an epoch progress bar with the latest metrics."""

    def __init__(self, path: str | os.PathLike, max_epochs: int, progress: bool = True, desc: str = "train"):
        from tqdm import tqdm

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._f = open(self.path, "w", newline="")  # noqa: SIM115 - open for the whole run; close() closes it
        self._w = csv.DictWriter(self._f, fieldnames=HISTORY_FIELDS)
        self._w.writeheader()
        self._bar = tqdm(total=max_epochs, unit="epoch", desc=desc, disable=not progress, file=sys.stderr)
        self._t = time.perf_counter()
        self.rows: list[dict] = []

    def epoch(self, epoch: int, **metrics: float) -> None:
        now = time.perf_counter()
        row = {"epoch": epoch, **{k: round(float(v), 6) for k, v in metrics.items()}, "seconds": round(now - self._t, 4)}
        self._t = now
        self.rows.append(row)
        self._w.writerow({k: row.get(k, "") for k in HISTORY_FIELDS})
        self._f.flush()
        self._bar.set_postfix_str(
            f"loss {row.get('train_loss', 0):.3f} val_loss {row.get('val_loss', 0):.3f} val_acc {row.get('val_acc', 0):.2f}"
        )
        self._bar.update(1)

    def close(self) -> None:
        self._bar.close()
        self._f.close()

    @property
    def seconds_per_epoch(self) -> float:
        return sum(r["seconds"] for r in self.rows) / len(self.rows) if self.rows else 0.0
