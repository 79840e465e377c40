"""Importers: adapters from keypoints people already have into a store.

Recognised below SRC (the gloss is the folder that holds a sequence, unless an index names it):
- the tutorial layout `<action>/<sequence>/<frame>.npy`, one file of one frame per frame number;
- `<gloss>/<id>.npy`, one `(frames, values)` array per sequence, float32 or float16;
- `<gloss>/<id>.pose` files of the pose-format package (MediaPipe Holistic components);
- any of these below further folders (`<signer>/<gloss>/...`): those folders go into the column named by
  `group_as` (default `group`; `signer` makes them the signer) and prefix the clip id.

Rows of 1662 values are the full layout; 258 (pose + hands), 126 (hands) and 132 (pose) are the layout's
subsets. A part that is zero in every frame of every clip of a source (the pose of a Hands-only extraction,
the face left out of a 258-value set) is not stored at all. Anything else is refused, naming the file and
the shape.

An index beside the files (`SRC/index.csv`, `SRC/manifest.csv`, or `SRC.csv` next to the folder) keeps its
columns: gloss (as spelt there, "a lot" rather than the folder "a_lot"), signer, split, and any others such as
`wlasl100`. Rows are matched to files by `path` (relative to SRC, or to the index's folder) or by id.
Importing the same folder again imports only what is new.
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .. import layout
from ..io import KeypointFileError, count, gloss_folder, load_npy, read_csv_rows
from .schema import MANIFEST_NAME, value
from .store import KeypointStore, NotAStoreError, StoreWriter, check_keypoints, layout_error, open_store

INDEX_NAMES = ("index.csv", MANIFEST_NAME)
# Index columns that the store spells its own way, or that describe the source file rather than the clip.
_SKIP_COLUMNS = {"path", "status", "error", "parts", "dtype", "frames", *layout.PARTS}


@dataclass
class Sequence:
    """One sequence found below SRC, before it is read."""

    id: str
    gloss: str
    group: str
    source: Path
    frame_files: list[Path] | None = None  # tutorial layout: one file per frame
    meta: dict = field(default_factory=dict)  # the index row, when there is one

    @property
    def kind(self) -> str:
        return "frames" if self.frame_files is not None else self.source.suffix.lstrip(".")


@dataclass
class ImportSummary:
    ok: int = 0
    skipped: int = 0  # already in the store from an earlier import
    failed: int = 0
    widths: dict[int, int] = field(default_factory=dict)  # values per frame in the source -> sequences
    parts: dict[str, str] = field(default_factory=dict)  # dataset -> parts stored
    index: str = ""
    problems: list[str] = field(default_factory=list)
    unmatched: list[str] = field(default_factory=list)  # index rows (path, else id) that name no file in the source

    def report(self) -> str:
        mapped = ", ".join(f"{n} x {w} values" for w, n in sorted(self.widths.items()))
        lines = [f"{self.ok} sequences imported ({mapped or 'none new'}), {self.skipped} already imported, {self.failed} refused"]
        lines += [f"stored parts of {d}: {p}" for d, p in self.parts.items()]
        if self.index:
            lines.append(f"columns taken from {self.index}")
        if self.unmatched:
            shown = ", ".join(self.unmatched[:5]) + (", ..." if len(self.unmatched) > 5 else "")
            verb = "names" if len(self.unmatched) == 1 else "name"
            lines.append(f"{count(len(self.unmatched), 'row')} of {self.index} {verb} no file there ({shown})")
        lines += ["  " + p for p in self.problems[:10]]
        if len(self.problems) > 10:
            lines.append(f"  ... and {len(self.problems) - 10} more (see the manifest)")
        return "\n".join(lines)


def _frame_number(p: Path) -> tuple[int, str]:
    digits = re.findall(r"\d+", p.stem)
    return (int(digits[-1]) if digits else -1, p.name)


def _group(posix: str) -> str:
    return "" if posix in (".", "") else posix


def _is_frame_folder(npys: list[Path]) -> bool:
    """A folder of single frames: its first file holds one row (1-D)."""
    try:
        return np.load(npys[0], mmap_mode="r", allow_pickle=False).ndim == 1  # reads the header only
    except Exception:  # noqa: BLE001 - unreadable: decided (and reported) when the sequence is loaded
        return False


def find_index(src: Path, index: str | os.PathLike | None = None) -> Path | None:
    """The index CSV that describes `src`: given, inside it, or beside it named for it."""
    if index is not None:
        if not Path(index).is_file():
            raise FileNotFoundError(f"{index}: no such index file")
        return Path(index)
    for name in INDEX_NAMES:
        if (src / name).is_file():
            return src / name
    beside = src.parent / f"{src.name}.csv"
    return beside if beside.is_file() else None


def _index_rows(index: Path, src: Path) -> tuple[dict[str, dict], dict[str, dict]]:
    """Index rows keyed by path relative to `src`, and by id."""
    by_path, by_id = {}, {}
    for row in read_csv_rows(index):
        if row.get("path"):
            rel = Path(row["path"])
            if rel.parts and rel.parts[0] == src.name and index.parent != src:  # "webcam/x/y.npy" beside webcam/
                rel = Path(*rel.parts[1:])
            by_path[rel.as_posix()] = row
        if value(row, "id"):
            by_id[value(row, "id")] = row
    return by_path, by_id


def find_sequences(src: str | os.PathLike, index: str | os.PathLike | None = None
                   ) -> tuple[list[Sequence], Path | None, list[str]]:  # fmt: skip
    """Every sequence below `src` in a stable order, each with its index row; the index used; and its rows that name
    no file found (by path, else id)."""
    src = Path(src)
    if not src.is_dir():
        raise FileNotFoundError(f"{src}: no such folder")
    index_file = find_index(src, index)
    by_path, by_id = _index_rows(index_file, src) if index_file else ({}, {})
    found: list[Sequence] = []
    loose = 0
    for d, dirs, files in os.walk(src, followlinks=True):
        dirs[:] = sorted(x for x in dirs if not x.startswith("."))
        here = Path(d)
        seqs = sorted(here / f for f in files if f.endswith((".npy", ".pose")) and not f.startswith("."))
        if not seqs:
            continue
        if here == src:
            loose += len(seqs)
            if not by_path and not by_id:
                continue
        rel = here.relative_to(src)
        npys = [p for p in seqs if p.suffix == ".npy"]
        named = any(p.relative_to(src).as_posix() in by_path for p in npys)  # the index names them as clips
        if npys and here != src and not named and _is_frame_folder(npys):  # <gloss>/<sequence>/<frame>.npy
            gloss, group = rel.parent.name, rel.parent.parent.as_posix()
            key = rel.as_posix()
            found.append(Sequence(rel.name, gloss, _group(group), here, sorted(npys, key=_frame_number),
                                  by_path.get(key) or by_id.get(rel.name, {})))  # fmt: skip
            continue
        for p in seqs:  # <gloss>/<id>.npy or .pose
            row = by_path.get(p.relative_to(src).as_posix()) or by_id.get(p.stem, {})
            gloss = rel.name if here != src else ""
            found.append(Sequence(p.stem, gloss, _group(rel.parent.as_posix()) if here != src else "", p, None, row))
    if not found:
        problem = (f"{loose} .npy files lie directly in it and no index names their glosses" if loose
                   else "no .npy or .pose keypoint files below it")  # fmt: skip
        raise layout_error(src, problem)
    used = {id(seq.meta) for seq in found}
    rows = {id(r): r for r in (*by_path.values(), *by_id.values())}  # each row once: those with a path first
    unmatched = [r.get("path") or value(r, "id") for k, r in rows.items() if k not in used]
    return found, index_file, unmatched


def load_sequence(seq: Sequence) -> np.ndarray:
    """The sequence as stored in its source: `(frames, values)`; errors name the file."""
    if seq.kind == "pose":
        from .posefmt import read_pose

        return read_pose(seq.source)
    if seq.frame_files is not None:
        rows = [load_npy(p) for p in seq.frame_files]
        for p, r in zip(seq.frame_files, rows, strict=True):
            if r.ndim != 1 or r.shape != rows[0].shape:
                raise KeypointFileError(f"{p}: frame of shape {r.shape}, unlike {seq.frame_files[0].name} {rows[0].shape}")
        arr = np.stack(rows)
    else:
        arr = load_npy(seq.source)
    return check_keypoints(arr, seq.source)


def source_parts(width: int, source: object) -> tuple[str, ...]:
    """The layout parts a row of `width` values holds."""
    if width == layout.NUM_FEATURES:
        return layout.PARTS
    subset = layout.subset_for_width(width)
    if subset is None:
        known = ", ".join(f"{layout.subset_size(s)} ({s})" for s in layout.SUBSETS)
        raise KeypointFileError(f"{source}: {width} values per frame cannot be mapped to the 1662 layout "
                                f"(known sizes: {known})")  # fmt: skip
    return layout.SUBSETS[subset]


def _full(arr: np.ndarray, source: object) -> np.ndarray:
    """A source array as `(frames, 1662)` float32 (the parts it lacks as zeros)."""
    if arr.shape[1] == layout.NUM_FEATURES:
        return arr.astype(np.float32, copy=False)
    return layout.expand(arr.astype(np.float32), source_parts(arr.shape[1], source))


def import_keypoints(
    src: str | os.PathLike,
    out: str | os.PathLike,
    group_as: str = "group",
    dtype: str = "auto",
    aliases: dict[str, str] | None = None,
    index: str | os.PathLike | None = None,
    dataset: str | None = None,
    progress: bool = True,
) -> ImportSummary:
    """Import every sequence below `src` into the store `out`; refused sequences are recorded (status failed,
    with the reason) and skipped. Sequences imported before (same source file) are not read again.

    `dtype`: float32, float16, or auto (float16 when the source is float16). `aliases` renames glosses
    (`{"thankyou": "thanks"}`); the source's own name is kept in the `source_gloss` column.
    """
    from tqdm import tqdm

    src = Path(src)
    sequences, index_file, unmatched = find_sequences(src, index)
    dataset = dataset or src.name
    aliases = aliases or {}
    summary = ImportSummary(index=str(index_file or ""), unmatched=unmatched)
    with StoreWriter(out) as writer:
        done_sources = {os.path.abspath(r.get("source") or "") for r in writer.rows.values()
                        if r.get("status") == "ok" and writer.has(r["path"])}  # fmt: skip
        todo = [s for s in sequences if os.path.abspath(s.source) not in done_sources]
        summary.skipped = len(sequences) - len(todo)
        known_parts = {r.get("dataset"): r.get("parts") for r in writer.rows.values() if r.get("status") == "ok"}
        parts = layout.check_parts(known_parts[dataset]) if known_parts.get(dataset) else _parts_in(todo, progress)
        if todo:
            summary.parts[dataset] = layout.parts_label(parts)
        seen: dict[str, Sequence] = {}
        for seq in tqdm(todo, unit="seq", desc="import", disable=not progress, dynamic_ncols=True):
            source_gloss = value(seq.meta, "gloss") or seq.gloss
            gloss = aliases.get(source_gloss, source_gloss)
            group = value(seq.meta, group_as) or seq.group
            sid = value(seq.meta, "id") or (f"{seq.group.replace('/', '_')}_{seq.id}" if seq.group else seq.id)
            rel = f"{gloss_folder(gloss)}/{sid}.npy" if gloss else f"{sid}.npy"
            if rel in seen:
                raise ValueError(f"{seq.source} and {seen[rel].source} would both become {Path(out) / rel}")
            seen[rel] = seq
            extra = {k: v for k, v in seq.meta.items() if k not in _SKIP_COLUMNS and v not in (None, "")}
            signer = value(seq.meta, "signer") or (group if group_as == "signer" else "")
            row = {**extra, "id": sid, "gloss": gloss, "signer": signer, "source": os.path.abspath(seq.source),
                   "dataset": dataset, "frame_start": 1, "frame_end": -1}  # fmt: skip
            if group_as != "signer":
                row[group_as] = group
            if source_gloss != gloss:
                row["source_gloss"] = source_gloss
            try:
                if not gloss:
                    raise KeypointFileError(f"{seq.source}: no gloss (not in a <gloss>/ folder, no gloss in the index)")
                arr = load_sequence(seq)
                full = _full(arr, seq.source)
                kind = "float16" if dtype == "float16" or (dtype == "auto" and arr.dtype == np.float16) else "float32"
                writer.write(rel, full, parts, kind, **row)
            except KeypointFileError as e:
                summary.failed += 1
                summary.problems.append(str(e))
                writer.add({**row, "path": rel, "status": "failed", "error": str(e)})
                continue
            summary.ok += 1
            summary.widths[arr.shape[1]] = summary.widths.get(arr.shape[1], 0) + 1
    return summary


def _parts_in(sequences: list[Sequence], progress: bool) -> tuple[str, ...]:
    """The parts found (non-zero) anywhere in the sequences: a part a source never has is not stored. The two
    hands count as one part here: a few clips with only right hands still stand for sources with both."""
    from tqdm import tqdm

    found: set[str] = set()
    for seq in tqdm(sequences, unit="seq", desc="scan", disable=not progress, dynamic_ncols=True):
        try:
            found |= set(layout.parts_found(_full(load_sequence(seq), seq.source)))
        except KeypointFileError:
            continue  # refused (and reported) when it is imported
        if found == set(layout.PARTS):
            break
    if found & {"left_hand", "right_hand"}:  # the hands go together: a source with one has the other's place
        found |= {"left_hand", "right_hand"}
    return layout.check_parts(found) if found else layout.PARTS


def open_or_import(sources: list[Path], into: Path, aliases: dict[str, str] | None = None, progress: bool = True,
                   log=print) -> tuple[KeypointStore, str]:  # fmt: skip
    """A store for keypoint folders, and "reused" or "done": one folder that is already a store is used in place;
    anything else (a folder with an index.csv, other layouts, several sources, gloss aliases) is imported into the
    store `into` (again: only what is new)."""
    if len(sources) == 1 and not aliases:
        try:
            return open_store(sources[0]), "reused"
        except NotAStoreError as e:
            log(f"{sources[0]}: {str(e).split(': ', 2)[-1].split('. ')[0]}; importing it into {into}")
    _check_sources(into, sources)
    imported = 0
    for src in sources:
        summary = import_keypoints(src, into, aliases=aliases, progress=progress)
        log(summary.report())
        imported += summary.ok
        if summary.failed and not summary.ok and not summary.skipped:
            raise ValueError(f"{src}: no sequence could be imported ({summary.problems[0]})")
    return open_store(into), "done" if imported else "reused"


def _check_sources(into: Path, sources: list[Path]) -> None:
    """Refuse to import `sources` into a store that holds clips imported from elsewhere (another folder given the
    same output): their clips would replace or join the others, and a split made for those would be used on the
    mixture. Importing the same folders again (a resumed or repeated job) only adds what is new."""
    if not (into / MANIFEST_NAME).exists():
        return
    roots = [Path(os.path.abspath(s)) for s in sources]  # as given, links not followed (sources are recorded so)
    for row in read_csv_rows(into / MANIFEST_NAME):
        source = Path(os.path.abspath(row.get("source") or ""))  # (relative in stores made before release 19)
        if not any(root == source or root in source.parents for root in roots):
            origin = next((p for p in source.parents if p.name == row.get("dataset")), source.parent)
            raise ValueError(f"{into} holds keypoints imported from {origin}, not from {', '.join(map(str, sources))}: "
                             f"give another output folder")  # fmt: skip
