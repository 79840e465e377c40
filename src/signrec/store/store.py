"""Reading and writing a keypoint store: a folder of `<gloss>/<id>.npy` arrays and one `manifest.csv`.

Each array holds only the layout parts its source has (a hands-only source: 126 values a frame, not 1662), as
float32 or float16. A store is validated once, when it is written or opened; reading a clip is then a plain
memory-mapped load, expanded to the full `(frames, 1662)` layout with zeros for the parts not stored. Nothing
is held in memory but the manifest, so a job can train on more clips than fit in RAM.

A plain folder of `<gloss>/<id>.npy` files of 1662 float32 values a frame (what older signrec versions wrote,
and what many tutorials produce) is a store too; anything else gets one error that says what was found and
how to import it.
"""

from __future__ import annotations

import hashlib
import os
import time
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path

import numpy as np

from .. import layout
from ..io import KeypointFileError, atomic_save_npy, clean_partials, load_npy, read_csv_rows, write_csv_atomic
from .schema import COLUMNS, DTYPES, MANIFEST_NAME, Clip, order_columns, value


class NotAStoreError(ValueError):
    """A folder that is not a keypoint store; the message says what was found and what to do."""


def _npy_header(path: Path) -> tuple[tuple[int, ...], np.dtype]:
    """Shape and dtype of a `.npy` file from its header alone; errors name the file."""
    try:
        with open(path, "rb") as f:
            version = np.lib.format.read_magic(f)
            shape, _, dtype = np.lib.format._read_array_header(f, version)  # the header only
    except (ValueError, OSError, EOFError, SyntaxError) as e:
        raise KeypointFileError(f"{path}: unreadable or truncated .npy file ({e})") from e
    if not np.issubdtype(dtype, np.number):
        raise KeypointFileError(f"{path}: holds {dtype} values, not numbers (signrec never loads pickled objects)")
    return shape, dtype


def describe_folder(root: Path) -> str:
    """What a folder holds, in words, for errors about folders that are not in the expected layout."""
    if not root.exists():
        return "it does not exist"
    if not root.is_dir():
        return "it is a file, not a folder"
    top = [p for p in root.iterdir() if not p.name.startswith(".")]
    npy_top = [p for p in top if p.suffix == ".npy"]
    dirs = [p for p in top if p.is_dir()]
    videos = sum(1 for p in top if p.suffix.lower() in (".mp4", ".mov", ".avi", ".mkv", ".webm", ".swf"))
    index = [p.name for p in top if p.name in ("index.csv", MANIFEST_NAME)]
    found = []
    if npy_top:
        found.append(f"{len(npy_top)} .npy files directly inside it (no <gloss>/ folders)")
    if videos:
        found.append(f"{videos} video files directly inside it")
    if dirs:
        found.append(f"{len(dirs)} folders ({', '.join(sorted(d.name for d in dirs)[:4])}{', ...' if len(dirs) > 4 else ''})")
    if index:
        found.append(" and ".join(index))
    return "it holds " + "; ".join(found) if found else "it is empty"


def layout_error(root: Path, problem: str) -> NotAStoreError:
    """The one message for a keypoint folder in the wrong layout: what was expected, found, and the fix."""
    return NotAStoreError(
        f"{root}: not a signrec keypoint store: {problem}. Expected <gloss>/<id>.npy arrays of (frames, 1662) "
        f"values with an optional manifest.csv; {describe_folder(root)}. Import other layouts first with "
        f"`signrec data import {root} --out KEYPOINTS` (tutorial MP_Data folders, 258- or 126-value rows, an "
        f"index.csv with gloss/signer/split columns, .pose files); `signrec run --keypoints {root}` does that for you."
    )


class KeypointStore:
    """The clips of a store folder (status ok), read on demand. Views (`select`) share the folder."""

    def __init__(self, root: str | os.PathLike, clips: list[Clip], failed: list[dict] | None = None,
                 columns: list[str] | None = None):  # fmt: skip
        self.root = Path(root)
        self.clips = clips
        self.failed = failed or []
        self.columns = columns or list(COLUMNS)
        self._by_path = {c.path: c for c in clips}

    # -- opening -------------------------------------------------------------------------------------------

    @classmethod
    def open(cls, root: str | os.PathLike, check_files: bool = True) -> KeypointStore:
        """Open a store folder; the manifest and the arrays' headers are checked here, once."""
        root = Path(root)
        if not root.is_dir():
            raise FileNotFoundError(f"{root}: no such keypoint folder")
        manifest = root / MANIFEST_NAME
        if manifest.exists():
            rows = read_csv_rows(manifest)
            missing = [c for c in ("path", "gloss") if rows and c not in rows[0]]
            if missing:
                raise layout_error(root, f"its manifest.csv has no {' or '.join(missing)} column")
            ok = [r for r in rows if r.get("status", "ok") in ("", "ok")]
            failed = [r for r in rows if r.get("status", "ok") not in ("", "ok")]
            columns = list(rows[0]) if rows else list(COLUMNS)
        else:
            ok, failed, columns = cls._scan(root), [], list(COLUMNS)
        clips = [cls._clip(root, r, check_files) for r in ok]
        if not clips:
            raise layout_error(root, "no clips in it")
        return cls(root, clips, failed, columns)

    @staticmethod
    def _scan(root: Path) -> list[dict]:
        """Rows for a plain `<gloss>/<id>.npy` folder of 1662-value arrays (no manifest)."""
        files = sorted(root.glob("*/*.npy"))
        if not files:
            raise layout_error(root, "no <gloss>/<id>.npy files")
        if (root / "index.csv").exists():
            raise layout_error(root, "it has an index.csv but no manifest.csv")
        rows = []
        for f in files:
            shape, _ = _npy_header(f)
            if len(shape) != 2 or shape[1] != layout.NUM_FEATURES:
                raise layout_error(root, f"{f.relative_to(root)} holds an array of shape {shape}, not (frames, "
                                         f"{layout.NUM_FEATURES})")  # fmt: skip
            rows.append({"path": f.relative_to(root).as_posix(), "gloss": f.parent.name, "id": f.stem,
                         "frames": shape[0], "parts": layout.parts_label(layout.PARTS)})  # fmt: skip
        return rows

    @staticmethod
    def _clip(root: Path, row: dict, check_files: bool) -> Clip:
        path = row["path"]
        file = root / path
        if row.get("parts"):
            parts = layout.check_parts(row["parts"])
            frames = int(float(row.get("frames") or 0))
            dtype = row.get("dtype") or "float32"
            if check_files and not file.exists():
                raise KeypointFileError(f"{file}: listed in {root / MANIFEST_NAME} but missing")
        else:  # a manifest from before parts were recorded: every array is the full layout
            if not file.exists():
                raise KeypointFileError(f"{file}: listed in {root / MANIFEST_NAME} but missing")
            shape, dt = _npy_header(file)
            if len(shape) != 2 or shape[1] != layout.NUM_FEATURES:
                raise KeypointFileError(f"{file}: expected keypoints of shape (frames, {layout.NUM_FEATURES}), "
                                        f"got {shape}")  # fmt: skip
            parts, frames, dtype = layout.PARTS, shape[0], str(dt)
        if dtype not in DTYPES:
            raise KeypointFileError(f"{file}: dtype {dtype} in the manifest; a store holds {' or '.join(DTYPES)}")
        return Clip(path=path, gloss=row["gloss"], frames=frames, parts=parts, dtype=dtype,
                    signer=value(row, "signer"), split=value(row, "split"), id=value(row, "id") or Path(path).stem,
                    meta=row)  # fmt: skip

    # -- what is in it ---------------------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.clips)

    def __iter__(self) -> Iterator[Clip]:
        return iter(self.clips)

    @property
    def glosses(self) -> list[str]:
        """Label order: sorted gloss names (stable across runs and frameworks)."""
        return sorted({c.gloss for c in self.clips})

    @property
    def signers(self) -> list[str]:
        return sorted({c.signer for c in self.clips if c.signer})

    @property
    def parts(self) -> tuple[str, ...]:
        """The parts every clip has (what a model trained on all of them can use)."""
        common = set(layout.PARTS)
        for c in self.clips:
            common &= set(c.parts)
        return tuple(p for p in layout.PARTS if p in common)

    def counts(self) -> Counter:
        return Counter(c.gloss for c in self.clips)

    def get(self, path: str) -> Clip:
        try:
            return self._by_path[path]
        except KeyError:
            raise KeyError(f"{self.root}: no clip {path!r} in this store") from None

    def subset(self, paths: Iterable[str]) -> list[Clip]:
        paths = list(paths)
        missing = [p for p in paths if p not in self._by_path]
        if missing:
            raise KeyError(f"{self.root}: the split names {len(missing)} clips that are not in the data, e.g. {missing[:3]}")
        return [self._by_path[p] for p in paths]

    def select(self, keep: Callable[[Clip], bool]) -> KeypointStore:
        """A view of the clips for which `keep(clip)` holds."""
        return KeypointStore(self.root, [c for c in self.clips if keep(c)], self.failed, self.columns)

    def fingerprint(self) -> str:
        """A hash of what the clips are (paths, labels, splits, sizes), for keying results by their data."""
        h = hashlib.sha256()
        for c in sorted(self.clips, key=lambda c: c.path):
            h.update(f"{c.path}|{c.gloss}|{c.signer}|{c.split}|{c.frames}|{'+'.join(c.parts)}|{c.dtype}\n".encode())
        return h.hexdigest()[:16]

    # -- reading ---------------------------------------------------------------------------------------------

    def read_stored(self, clip: Clip | str) -> np.ndarray:
        """The clip's array as stored: `(frames, width of its parts)`, float32 or float16, memory-mapped."""
        clip = self.get(clip) if isinstance(clip, str) else clip
        file = self.root / clip.path
        try:
            arr = np.load(file, mmap_mode="r", allow_pickle=False)
        except (ValueError, OSError, EOFError) as e:
            raise KeypointFileError(f"{file}: unreadable or truncated .npy file ({e})") from e
        if arr.shape != (clip.frames, clip.width) and not (clip.frames == 0 and arr.ndim == 2):
            raise KeypointFileError(f"{file}: holds {arr.shape}, the manifest says ({clip.frames}, {clip.width}) "
                                    f"for parts {'+'.join(clip.parts)}")  # fmt: skip
        return arr

    def read(self, clip: Clip | str) -> np.ndarray:
        """The clip as `(frames, 1662)` float32, the parts it does not store as zeros (missing)."""
        clip = self.get(clip) if isinstance(clip, str) else clip
        return layout.expand(np.asarray(self.read_stored(clip)), clip.parts)

    def read_many(self, clips: Iterable[Clip]) -> Iterator[np.ndarray]:
        for c in clips:
            yield self.read(c)


def keypoints_digest(keypoints: np.ndarray) -> str:
    """A clip known by its keypoints (`KeypointStore.read`'s `(frames, 1662)`): the same values give the same digest
    wherever they are stored, under whatever name, as float32 or rounded to float16 (a store may keep them so)."""
    x = np.ascontiguousarray(keypoints, dtype=np.float16)
    return hashlib.sha1(x.tobytes() + repr(x.shape).encode()).hexdigest()


def open_store(root: str | os.PathLike | KeypointStore) -> KeypointStore:
    """A store from a folder (or the store itself, so that a job can pass an opened one on)."""
    return root if isinstance(root, KeypointStore) else KeypointStore.open(root)


# ---------------------------------------------------------------------------------------------------------------
# Writing


def check_keypoints(arr: np.ndarray, source: object, width: int | None = None) -> np.ndarray:
    """`arr` as a 2-D float array; errors name `source` and the problem (validation happens here, on write)."""
    if not isinstance(arr, np.ndarray) or not np.issubdtype(arr.dtype, np.number):
        raise KeypointFileError(f"{source}: not a numeric array ({getattr(arr, 'dtype', type(arr).__name__)})")
    if arr.ndim != 2 or len(arr) == 0:
        raise KeypointFileError(f"{source}: expected (frames, values) with at least one frame, got shape {arr.shape}")
    if width is not None and arr.shape[1] != width:
        raise KeypointFileError(f"{source}: expected {width} values per frame, got {arr.shape[1]}")
    if not np.isfinite(arr).all():
        raise KeypointFileError(f"{source}: contains NaN or infinite values")
    return arr


def write_array(root: str | os.PathLike, rel: str, keypoints: np.ndarray, parts: tuple[str, ...] = layout.PARTS,
                dtype: str = "float32", source: object = None) -> dict:  # fmt: skip
    """Validate and write one clip atomically as `root/rel`, keeping only `parts`; returns its manifest values.

    `keypoints` is either the full `(frames, 1662)` layout or already only `parts`' columns. Safe to call from
    worker processes: it touches nothing but the clip's own file.
    """
    parts = layout.check_parts(parts)
    if dtype not in DTYPES:
        raise ValueError(f"dtype must be one of {', '.join(DTYPES)}, got {dtype!r}")
    arr = np.asarray(keypoints)
    check_keypoints(arr, source or rel)
    if arr.shape[1] == layout.NUM_FEATURES:
        full = arr.astype(np.float32, copy=False)
        arr = full[:, layout.part_columns(parts)] if parts != layout.PARTS else full
    else:
        check_keypoints(arr, source or rel, layout.parts_width(parts))
        full = layout.expand(arr.astype(np.float32), parts)
    atomic_save_npy(Path(root) / rel, np.ascontiguousarray(arr, dtype=dtype))
    found = layout.presence_summary(full)
    return {"path": rel, "status": "ok", "error": "", "frames": len(arr), "parts": layout.parts_label(parts),
            "dtype": dtype, **{p: round(found[p], 4) for p in layout.PARTS}}  # fmt: skip


class StoreWriter:
    """Adds clips to a store folder and keeps its manifest; a killed run leaves only whole files behind.

    Arrays are written under a temporary name and renamed; the manifest is rewritten atomically every
    `save_every` seconds and on `close()`. Rows already in the manifest are kept, so a rerun adds to a store.
    """

    def __init__(self, root: str | os.PathLike, save_every: float = 30.0):
        self.root = Path(root)
        self.root.mkdir(parents=True, exist_ok=True)
        clean_partials(self.root)
        manifest = self.root / MANIFEST_NAME
        self.rows: dict[str, dict] = {r["path"]: r for r in read_csv_rows(manifest)} if manifest.exists() else {}
        self.save_every = save_every
        self._saved = time.monotonic()

    def has(self, rel: str) -> bool:
        """Whether the clip is already stored (a row with status ok and its file)."""
        row = self.rows.get(rel)
        return bool(row) and row.get("status", "ok") == "ok" and (self.root / rel).exists()

    def row_for(self, rel: str) -> dict | None:
        return self.rows.get(rel)

    def add(self, row: dict) -> None:
        """Record a clip's row (from `write_array`, or a failure with status and error)."""
        self.rows[row["path"]] = row
        if time.monotonic() - self._saved > self.save_every:
            self.flush()

    def write(self, rel: str, keypoints: np.ndarray, parts: tuple[str, ...] = layout.PARTS, dtype: str = "float32",
              **meta: object) -> dict:  # fmt: skip
        row = {**meta, **write_array(self.root, rel, keypoints, parts, dtype, meta.get("source"))}
        self.add(row)
        return row

    def adopt(self, rel: str, parts: tuple[str, ...] = layout.PARTS, **meta: object) -> dict | None:
        """Record a clip whose array is on disk but whose row was lost (a run killed before it saved the
        manifest): a file with its final name is complete, since arrays are renamed into place only when whole.
        Returns the row, or None when there is no usable file."""
        file = self.root / rel
        if not file.exists():
            return None
        try:
            arr = check_keypoints(load_npy(file), file, layout.parts_width(parts))
        except KeypointFileError:
            return None
        found = layout.presence_summary(layout.expand(arr.astype(np.float32), parts))
        row = {**meta, "path": rel, "status": "ok", "error": "", "frames": len(arr), "parts": layout.parts_label(parts),
               "dtype": str(arr.dtype), **{p: round(found[p], 4) for p in layout.PARTS}}  # fmt: skip
        self.add(row)
        return row

    def flush(self) -> None:
        rows = sorted(self.rows.values(), key=lambda r: r["path"])
        write_csv_atomic(self.root / MANIFEST_NAME, rows, order_columns(rows))
        self._saved = time.monotonic()

    def close(self) -> None:
        self.flush()

    def __enter__(self) -> StoreWriter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def load_array_file(path: str | os.PathLike) -> np.ndarray:
    """A single keypoint `.npy` file (not in a store), checked; errors name the file."""
    return check_keypoints(load_npy(path), path)
