"""Small file helpers shared by every stage: atomic writes, CSV manifests, safe `.npy` loading."""

from __future__ import annotations

import csv
import hashlib
import json
import os
import re
from collections.abc import Iterable
from pathlib import Path

import numpy as np

PARTIAL_SUFFIX = ".partial"


def _tmp_name(path: Path) -> Path:
    return path.with_name(f"{path.name}{PARTIAL_SUFFIX}")


def atomic_save_npy(path: str | os.PathLike, array: np.ndarray) -> None:
    """Save an array so that `path` either does not exist or holds the whole array."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    with open(tmp, "wb") as f:
        np.save(f, array, allow_pickle=False)
    os.replace(tmp, path)


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def atomic_write_json(path: str | os.PathLike, obj: object) -> None:
    atomic_write_text(path, json.dumps(obj, indent=2, sort_keys=False, default=str) + "\n")


def clean_partials(folder: str | os.PathLike) -> int:
    """Remove temporary files an interrupted run left below `folder`; returns how many."""
    n = 0
    for p in Path(folder).rglob(f"*{PARTIAL_SUFFIX}*"):
        if p.is_file():
            p.unlink()
            n += 1
    return n


def read_csv_rows(path: str | os.PathLike) -> list[dict]:
    with open(path, newline="", encoding="utf-8") as f:
        return list(csv.DictReader(f))


def write_csv_atomic(path: str | os.PathLike, rows: Iterable[dict], fields: list[str]) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = _tmp_name(path)
    with open(tmp, "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=fields, extrasaction="ignore")
        w.writeheader()
        for r in rows:
            w.writerow({k: ("" if r.get(k) is None else r.get(k)) for k in fields})
    os.replace(tmp, path)


class KeypointFileError(ValueError):
    """A keypoint file that cannot be used; the message names the file and the problem."""


def load_npy(path: str | os.PathLike) -> np.ndarray:
    """Load a `.npy` file without running code from it (no pickles); errors name the file."""
    try:
        arr = np.load(path, allow_pickle=False)
    except ValueError as e:
        raise KeypointFileError(f"{path}: not a plain numeric .npy file ({e})") from e
    except (OSError, EOFError) as e:
        raise KeypointFileError(f"{path}: unreadable or truncated .npy file ({e})") from e
    if not isinstance(arr, np.ndarray):
        raise KeypointFileError(f"{path}: holds an archive, not one array")
    return arr


def gloss_folder(gloss: str) -> str:
    """A safe folder name for a gloss: "thank you" -> "thank_you", "don't want" -> "don_t_want"."""
    name = re.sub(r"[^A-Za-z0-9._-]+", "_", gloss.strip()).strip("._")
    if not name:
        name = "gloss_" + hashlib.sha1(gloss.encode()).hexdigest()[:8]
    return name


def count(n: int, word: str, plural: str | None = None) -> str:
    """`1 clip`, `3 clips`, `2 glosses` (with `plural`)."""
    return f"{n} {word if n == 1 else plural or word + 's'}"
