"""Helpers shared by the benchmark programs: where the real data is, and how to print a result table."""

from __future__ import annotations

import os
import platform
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SIGNREC_DATA", REPO.parent / "shared" / "data")).resolve()


def require_data() -> Path:
    if not (DATA / "README.md").exists():
        raise SystemExit(f"real data not found at {DATA}: set SIGNREC_DATA to the shared data folder")
    return DATA


def machine() -> str:
    return f"{platform.processor() or platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}"


def markdown_table(header: list[str], rows: list[list[object]]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join("---" for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(lines)
