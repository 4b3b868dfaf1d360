# huntwire developer commands. `make demo` and `make test` install what they need themselves.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
PY := $(VENV)/bin/python
BIN := $(VENV)/bin

.PHONY: setup demo test lint validate pytest bench clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(PY) || $(PYTHON) -m venv $(VENV)
	$(PY) -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(PY) -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

setup: $(VENV)/.installed node_modules/.installed

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

validate: setup
	$(BIN)/huntwire validate

pytest: setup
	$(BIN)/pytest -q

test: lint validate pytest

demo: setup
	$(BIN)/huntwire eval --events DeviceProcessEvents=samples/DeviceProcessEvents.jsonl \
		--events DeviceNetworkEvents=samples/DeviceNetworkEvents.jsonl --now 2026-11-27T23:00:00Z

clean:
	rm -rf $(VENV) node_modules out .mypy_cache .ruff_cache .pytest_cache
