# Set-up and checks. `make setup` makes .venv from the lock (every package at its exact version);
# `make test` runs the whole suite; `make test-fast` skips the slow tests (what to run between edits).
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup python3.11 chromium test test-fast lint lock bench

setup: python3.11 chromium
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==26.3
	$(BIN)/pip install -r requirements.lock
	$(BIN)/pip install --no-deps -e .
	$(BIN)/pip check

# The lock is for Python 3.11: checked before anything is installed.
python3.11:
	@$(PY) -c 'import sys; sys.exit(0 if sys.version_info[:2] == (3, 11) else "make setup: the lock is for Python 3.11; $(PY) is " + sys.version.split()[0] + ": give PY=python3.11")'

# The web app's tests drive Debian's Chromium with Playwright (whose own browser download may be out of reach):
# installed as root where it is missing; otherwise said how.
chromium:
	@if [ ! -x /usr/bin/chromium ]; then \
	  if [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null; then \
	    apt-get update && DEBIAN_FRONTEND=noninteractive apt-get install -y chromium; \
	  else \
	    echo "make setup: no /usr/bin/chromium, which the web app's tests need: sudo apt-get install -y chromium" >&2; \
	  fi; \
	fi

test:
	$(BIN)/python -m pytest

test-fast:
	$(BIN)/python -m pytest -m "not slow"

lint:
	$(BIN)/ruff check src tests benchmarks

# Regenerate the lock from the working environment after changing dependencies in pyproject.toml.
lock:
	$(BIN)/pip install -e ".[all]" -c constraints.txt
	$(BIN)/pip check
	$(BIN)/pip freeze --exclude-editable | sed '/^-e /d' > requirements.lock

bench:
	$(BIN)/python benchmarks/bench_extract.py
