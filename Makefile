# Two commands matter: `make demo` and `make test`. Both set up .venv first.
PYTHON ?= python3
VENV   ?= .venv
BIN     = $(VENV)/bin
STAMP   = $(VENV)/.installed

.PHONY: install demo test lint typecheck unit bench docs clean

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	touch $(STAMP)

install: $(STAMP)

demo: install
	$(BIN)/advertisex demo

lint: install
	$(BIN)/ruff check advertisex tests bench
	$(BIN)/ruff format --check advertisex tests bench

typecheck: install
	$(BIN)/mypy

unit: install
	$(BIN)/python -m pytest -q

test: lint typecheck unit

docs: install
	$(BIN)/python -m advertisex.model.reasons > docs/reasons.md
	$(BIN)/python -m advertisex.config > docs/configuration.md

bench: install
	$(BIN)/python bench/process.py

clean:
	rm -rf $(VENV) advertisex-data .pytest_cache .mypy_cache .ruff_cache
