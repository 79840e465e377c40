# Set-up and checks. `make setup` makes .venv from the lock (every package at its exact version);
# `make test` runs the whole suite; `make test-fast` skips the slow tests (what to run between edits).
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup test test-fast lint lock bench

setup:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --quiet pip==26.3
	$(BIN)/pip install -r requirements.lock
	$(BIN)/pip install --no-deps -e .
	$(BIN)/pip check

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
