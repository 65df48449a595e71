# latkit: two commands do all the set-up on a fresh machine.
#   make demo   the main job on the local CPU device
#   make test   the test suite (what CI runs through .ci/run)
# Both create .venv, install torch==2.13.0 (CPU build) first, then latkit with the extras they need.
# .ci/constraints.txt pins torch so that no other package can pull a newer (CUDA) build.

PYTHON ?= python3
VENV   ?= .venv
BIN    := $(VENV)/bin
PIP    := PIP_CONSTRAINT=$(CURDIR)/.ci/constraints.txt $(BIN)/python -m pip
DEMO_OUT ?= out/demo

.PHONY: test test-all lint demo venv deps-test deps-demo adb-client clean help

help:
	@echo "make demo   - train, profile, fit, search and verify on the local CPU (see README)"
	@echo "make test   - run the test suite (slow/gpu/phone tests skipped; see README)"
	@echo "make test-all - also the slow tests"
	@echo "make lint   - ruff and the import-linter layer contracts (make test runs them first)"

$(BIN)/python:
	$(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install -q --upgrade pip setuptools wheel
	$(BIN)/python -m pip install -q torch==2.13.0

venv: $(BIN)/python

$(VENV)/.deps-test: pyproject.toml .ci/constraints.txt | $(BIN)/python
	$(PIP) install -q -e '.[tflite,android,dev,ref,parquet]'
	@touch $@

$(VENV)/.deps-demo: pyproject.toml .ci/constraints.txt | $(BIN)/python
	$(PIP) install -q -e '.[dev]'
	@touch $@

deps-test: $(VENV)/.deps-test
deps-demo: $(VENV)/.deps-demo

# Debian's adb client, to test the ADB device emulator against an independent peer.
# Best effort: the tests that need it skip with a reason where it cannot be installed.
adb-client:
	@command -v adb >/dev/null 2>&1 || { [ "$$(id -u)" = 0 ] && command -v apt-get >/dev/null 2>&1 && \
	  (timeout 300 apt-get install -y -qq adb >/dev/null 2>&1 || \
	   (timeout 300 apt-get update -qq >/dev/null 2>&1 && timeout 300 apt-get install -y -qq adb >/dev/null 2>&1)) ; } || \
	  echo "note: Debian's adb client not available; adb interop tests will be skipped"

# Lint: ruff's rules and import-linter's layer contracts (pyproject.toml), before any test runs.
lint: $(VENV)/.deps-test
	$(BIN)/ruff check .
	$(BIN)/lint-imports

test: lint $(VENV)/.deps-test adb-client
	$(BIN)/python -m pytest

test-all: $(VENV)/.deps-test adb-client
	$(BIN)/python -m pytest -m "not gpu and not phone"

demo: $(VENV)/.deps-demo
	$(BIN)/lat demo --out $(DEMO_OUT)

clean:
	rm -rf $(VENV) out .pytest_cache
