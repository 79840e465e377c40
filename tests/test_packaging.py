"""The environment is the lock: every installed package at the locked version, and pip finds no conflict."""

from __future__ import annotations

import subprocess
import sys
from importlib import metadata

from conftest import REPO


def _lock() -> dict[str, str]:
    pins = {}
    for line in (REPO / "requirements.lock").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name, _, version = line.partition("==")
            assert version, f"requirements.lock: {line!r} is not pinned with =="
            pins[name.lower().replace("_", "-")] = version
    return pins


def test_pip_check_passes():
    r = subprocess.run([sys.executable, "-m", "pip", "check"], check=False, capture_output=True, text=True)
    assert r.returncode == 0, r.stdout + r.stderr


def test_installed_packages_are_the_locked_versions():
    pins = _lock()
    assert "torch" in pins and "mediapipe" in pins and "ruff" in pins
    installed = {d.metadata["Name"].lower().replace("_", "-"): d.version for d in metadata.distributions()}
    wrong = {n: (installed.get(n), v) for n, v in pins.items() if installed.get(n) != v}
    assert not wrong, f"installed vs locked: {wrong}"
    unlocked = set(installed) - set(pins) - {"signrec", "pip", "setuptools", "wheel"}
    assert not unlocked, f"installed but not in requirements.lock: {sorted(unlocked)}"
