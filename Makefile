# Set-up and checks. `make setup` makes .venv with everything pinned; `make test` runs the whole suite.
PY ?= python3
VENV ?= .venv
BIN = $(VENV)/bin

.PHONY: setup test lint bench

setup:
	$(PY) -m venv $(VENV)
	$(BIN)/pip install --upgrade pip
	$(BIN)/pip install -e ".[dev]" -c constraints.txt

test:
	$(BIN)/python -m pytest

lint:
	$(BIN)/ruff check src tests benchmarks

bench:
	$(BIN)/python benchmarks/bench_extract.py
