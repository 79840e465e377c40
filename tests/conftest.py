"""Shared test fixtures. Real data comes from one setting: SIGNREC_DATA (default ../shared/data)."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
DATA = Path(os.environ.get("SIGNREC_DATA", REPO.parent / "shared" / "data")).resolve()

# Keras and matplotlib write to the home folder unless told otherwise; keep tests self-contained.
_home = tempfile.mkdtemp(prefix="signrec-test-home-")
os.environ.setdefault("KERAS_HOME", os.path.join(_home, "keras"))
os.environ.setdefault("MPLCONFIGDIR", os.path.join(_home, "matplotlib"))
os.environ.setdefault("MPLBACKEND", "Agg")


def pytest_sessionstart(session: pytest.Session) -> None:
    # The data is required: a missing folder must fail the run, not skip tests.
    if not (DATA / "README.md").exists():
        raise pytest.UsageError(
            f"real test data not found at {DATA}: set SIGNREC_DATA to the shared data folder (../shared/data)"
        )


@pytest.fixture(scope="session")
def data_dir() -> Path:
    return DATA


@pytest.fixture(scope="session")
def clips(data_dir: Path) -> Path:
    return data_dir / "videos" / "clips"


def link_tree(root: Path, files: dict[str, Path]) -> Path:
    """Build a folder of symbolic links `{relative name: real file}` (real data, no copies)."""
    for rel, src in files.items():
        dest = root / rel
        dest.parent.mkdir(parents=True, exist_ok=True)
        dest.symlink_to(src)
    return root
