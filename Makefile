# cnnlab: `make demo` runs the embedded tour (no downloads), `make test` runs lint + tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CNNLAB_DATA ?= $(abspath ../shared/data)
export CNNLAB_DATA

.PHONY: venv demo test test-all test-fast lint bench clean

venv: $(STAMP)

$(STAMP): pyproject.toml
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -e ".[dev]"
	touch $(STAMP)

demo: $(STAMP)
	$(VENV)/bin/cnnlab demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks

# The default run: everything but tests marked slow (real-data tests skip when ../shared/data is absent).
test: lint
	$(PY) -m pytest -n 2 -q -m "not slow"

test-all: lint
	$(PY) -m pytest -n 2 -q

test-fast: $(STAMP)
	$(PY) -m pytest -n 2 -q -m "not slow and not realdata"

bench: $(STAMP)
	$(PY) benchmarks/run_all.py

clean:
	rm -rf $(VENV) build *.egg-info
