"""Helpers shared by the benchmark programs: where the real data is, its stores, and how to print a result table."""

from __future__ import annotations

import os
import platform
from pathlib import Path

from signrec.store import KeypointStore, import_keypoints, open_store

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SIGNREC_DATA", REPO.parent / "shared" / "data")).resolve()


def require_data() -> Path:
    if not (DATA / "README.md").exists():
        raise SystemExit(f"real data not found at {DATA}: set SIGNREC_DATA to the shared data folder")
    return DATA


def shared_store(src: Path, work: Path, name: str, aliases: dict[str, str] | None = None) -> KeypointStore:
    """A store for a shared keypoint folder: the folder itself when it is one, else its import into
    WORK/stores/NAME (done once; a rerun imports nothing)."""
    if not aliases:
        try:
            return open_store(src)
        except ValueError:
            pass
    target = work / "stores" / name
    import_keypoints(src, target, aliases=aliases, progress=False)
    return open_store(target)


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
