"""Importing keypoints people already have into signrec's layout: `OUT/<gloss>/<id>.npy` (T, 1662) + manifest.

Recognised trees below SRC (the gloss is the folder that holds a sequence):
- the popular tutorial layout `<action>/<sequence>/<frame>.npy`, one file of one frame per frame number;
- `<gloss>/<id>.npy`, one `(T, values)` file per sequence;
- either of these below further folders (for example `<signer>/<gloss>/...`): the folders between SRC and the
  gloss are recorded in the manifest's `group` column (or the column named by `group_as`) and prefix the id.

Rows of 1662 values are kept; rows of a known subset's size (258 = pose + hands, 126 = hands, 132 = pose) are
mapped into the 1662 layout with the other parts marked missing (zeros). Anything else is refused, naming the
file and the shape.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from . import layout
from .extract import MANIFEST_NAME, write_manifest
from .io import KeypointFileError, atomic_save_npy, load_npy
from .wlasl import gloss_folder


@dataclass
class Sequence:
    id: str
    gloss: str
    group: str
    source: Path
    frame_files: list[Path] | None = None  # tutorial layout: one file per frame


@dataclass
class ImportSummary:
    ok: int = 0
    failed: int = 0
    widths: dict[int, int] = field(default_factory=dict)  # values per frame -> sequences
    problems: list[str] = field(default_factory=list)

    def report(self) -> str:
        mapped = ", ".join(f"{n} x {w} values" for w, n in sorted(self.widths.items()))
        lines = [f"{self.ok} sequences imported ({mapped or 'none'}), {self.failed} refused"]
        lines += ["  " + p for p in self.problems[:10]]
        if len(self.problems) > 10:
            lines.append(f"  ... and {len(self.problems) - 10} more (see the manifest)")
        return "\n".join(lines)


def _frame_number(p: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", p.stem)
    return (int(digits[-1]) if digits else -1, p.name)


def find_sequences(src: str | os.PathLike) -> list[Sequence]:
    """Every sequence below `src`, in a stable order."""
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder")
    found: list[Sequence] = []
    for d, dirs, files in os.walk(src, followlinks=True):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        here = Path(d)
        npys = sorted(here / f for f in files if f.endswith(".npy") and not f.startswith("."))
        if not npys or here == src:
            continue
        rel = here.relative_to(src)
        if _is_frame_folder(npys):  # <gloss>/<sequence>/<frame>.npy
            gloss, group = rel.parent.name, rel.parent.parent.as_posix()
            found.append(Sequence(rel.name, gloss, _group(group), here, sorted(npys, key=_frame_number)))
        else:  # <gloss>/<id>.npy
            for p in npys:
                found.append(Sequence(p.stem, rel.name, _group(rel.parent.as_posix()), p))
    if not found:
        raise FileNotFoundError(f"{src}: no .npy keypoint files found below it")
    return found


def _group(posix: str) -> str:
    return "" if posix in (".", "") else posix


def _is_frame_folder(npys: list[Path]) -> bool:
    """A folder of single frames: its first file holds one row (1-D)."""
    try:
        return np.load(npys[0], mmap_mode="r", allow_pickle=False).ndim == 1  # reads the header only
    except Exception:  # noqa: BLE001 - unreadable: decided (and reported) when the sequence is loaded
        return False


def load_sequence(seq: Sequence) -> tuple[np.ndarray, int]:
    """The sequence as (T, 1662) float32 and its original values per frame; errors name the file."""
    if seq.frame_files is not None:
        rows = [load_npy(p) for p in seq.frame_files]
        for p, r in zip(seq.frame_files, rows, strict=True):
            if r.ndim != 1 or r.shape != rows[0].shape:
                raise KeypointFileError(f"{p}: frame of shape {r.shape}, unlike {seq.frame_files[0].name} {rows[0].shape}")
        arr = np.stack(rows)
    else:
        arr = load_npy(seq.source)
        if arr.ndim != 2:
            raise KeypointFileError(f"{seq.source}: expected (frames, values), got shape {arr.shape}")
    if len(arr) == 0:
        raise KeypointFileError(f"{seq.source}: no frames")
    if not np.issubdtype(arr.dtype, np.number):
        raise KeypointFileError(f"{seq.source}: not numeric (dtype {arr.dtype})")
    width = arr.shape[1]
    arr = arr.astype(np.float32, copy=False)
    if not np.isfinite(arr).all():
        raise KeypointFileError(f"{seq.source}: contains NaN or infinite values")
    if width == layout.NUM_FEATURES:
        return np.ascontiguousarray(arr), width
    subset = layout.subset_for_width(width)
    if subset is None:
        known = ", ".join(f"{layout.subset_size(s)} ({s})" for s in layout.SUBSETS)
        raise KeypointFileError(f"{seq.source}: {width} values per frame cannot be mapped to the 1662 layout "
                                f"(known sizes: {known})")  # fmt: skip
    return layout.expand_subset(arr, subset), width


def import_keypoints(src: str | os.PathLike, out: str | os.PathLike, group_as: str = "group",
                     progress: bool = True) -> ImportSummary:  # fmt: skip
    """Convert every sequence below `src` into `out/<gloss>/<id>.npy` with a manifest; refused sequences are
    recorded (status failed, with the reason) and skipped. Files already imported are not rewritten."""
    from tqdm import tqdm

    out = Path(out)
    sequences = find_sequences(src)
    summary = ImportSummary()
    rows = []
    seen: dict[str, Sequence] = {}
    for seq in tqdm(sequences, unit="seq", desc="import", disable=not progress, dynamic_ncols=True):
        sid = f"{seq.group.replace('/', '_')}_{seq.id}" if seq.group else seq.id
        dest = out / gloss_folder(seq.gloss) / f"{sid}.npy"
        key = dest.as_posix()
        if key in seen:
            raise ValueError(f"{seq.source} and {seen[key].source} would both become {dest}")
        seen[key] = seq
        row = {"id": sid, "gloss": seq.gloss, "path": dest.relative_to(out).as_posix(), "source": str(seq.source),
               "frame_start": 1, "frame_end": -1, group_as: seq.group}  # fmt: skip
        try:
            keypoints, width = load_sequence(seq)
        except KeypointFileError as e:
            summary.failed += 1
            summary.problems.append(str(e))
            rows.append({**row, "status": "failed", "error": str(e)})
            continue
        if not dest.exists():
            atomic_save_npy(dest, keypoints)
        summary.ok += 1
        summary.widths[width] = summary.widths.get(width, 0) + 1
        found = layout.presence_summary(keypoints)
        rows.append({**row, "status": "ok", "error": "", "frames": len(keypoints), "values_per_frame": width,
                     **{k: round(v, 4) for k, v in found.items()}})  # fmt: skip
    write_manifest(out / MANIFEST_NAME, rows)
    return summary
