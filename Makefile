# cnnlab: `make demo` runs the embedded tour (no downloads), `make test` runs lint + tests.
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
STAMP := $(VENV)/.installed
CNNLAB_DATA ?= $(abspath ../shared/data)
export CNNLAB_DATA

.PHONY: venv demo test test-all test-fast lint bench lock clean

venv: $(STAMP)

# installs come from the lock file: every machine gets the versions that were tested
$(STAMP): pyproject.toml requirements.lock
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.lock
	$(PY) -m pip install -q --no-deps -e .
	touch $(STAMP)

# re-resolve pyproject's ranges in a fresh venv and freeze them (an upgrade: run `make test`, commit both)
lock:
	rm -rf .venv-lock
	$(PYTHON) -m venv .venv-lock
	.venv-lock/bin/python -m pip install -q --upgrade pip
	.venv-lock/bin/python -m pip install -q -e ".[dev]"
	$(PYTHON) tools/write_lock.py .venv-lock requirements.lock
	rm -rf .venv-lock

demo: $(STAMP)
	$(VENV)/bin/cnnlab demo

lint: $(STAMP)
	$(VENV)/bin/ruff check src tests benchmarks tools

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
