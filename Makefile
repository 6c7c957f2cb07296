# Two commands on a fresh machine: `make demo` and `make test`. Each creates .venv when it is
# missing and (re)installs the project when pyproject.toml changed, so both are idempotent.
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
STAMP := $(VENV)/.installed

.PHONY: demo test check bench integration venv clean

.venv/bin/python:
	$(PYTHON) -m venv $(VENV)

$(STAMP): pyproject.toml .venv/bin/python
	$(BIN)/python -m pip install --quiet --upgrade pip
	$(BIN)/python -m pip install --quiet -e '.[dev]'
	@touch $(STAMP)

venv: $(STAMP)

# `make demo SECONDS=10` for a shorter run (the story is compressed to fit; 10 s or more).
demo: $(STAMP)
	$(BIN)/edge demo $(if $(SECONDS),--seconds $(SECONDS))

test: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider -n 2 || test $$? -eq 5

check: $(STAMP)
	$(BIN)/python tools/linktree.py build/typecheck
	MYPYPATH=build/typecheck $(BIN)/python -m mypy -p edge
	$(BIN)/python -m ruff check .
	$(BIN)/python -m ruff format --check .

bench: $(STAMP)
	$(BIN)/python -m pytest -q -p no:cacheprovider tests/bench -s -o testpaths=tests/bench -o 'norecursedirs=.* build'

clean:
	rm -rf $(VENV) build *.egg-info
