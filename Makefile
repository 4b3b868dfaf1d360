# huntwire developer commands. `make demo` and `make test` install what they need themselves;
# every set-up step is skipped when its inputs have not changed.
SHELL := /bin/bash
PYTHON ?= python3
VENV := .venv
BIN := $(VENV)/bin
INFRA_VENV := .venv-infra
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

.PHONY: setup demo demo-mssp local test lint validate infra-check pytest bench browser clean

$(VENV)/.installed: requirements.txt requirements-dev.txt pyproject.toml
	test -x $(BIN)/python || $(PYTHON) -m venv $(VENV)
	$(BIN)/python -m pip install --quiet --disable-pip-version-check -r requirements-dev.txt
	$(BIN)/python -m pip install --quiet --disable-pip-version-check --no-deps -e .
	touch $@

$(INFRA_VENV)/.installed: requirements-infra.txt
	test -x $(INFRA_VENV)/bin/python || $(PYTHON) -m venv $(INFRA_VENV)
	$(INFRA_VENV)/bin/python -m pip install --quiet --disable-pip-version-check -r requirements-infra.txt
	touch $@

node_modules/.installed: package.json package-lock.json
	npm ci --no-audit --no-fund --loglevel=error
	touch $@

# Headless Chromium (Debian package) renders the Teams card preview and its browser test.
browser:
	@command -v chromium >/dev/null || { $(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
		chromium fonts-dejavu-core >/dev/null; }
	@command -v chromium >/dev/null || { echo "chromium could not be installed" >&2; exit 1; }

setup: $(VENV)/.installed node_modules/.installed

lint: setup
	$(BIN)/ruff check .
	$(BIN)/mypy

validate: setup
	$(BIN)/huntwire validate --manifest "$$(mktemp)"

pytest: setup browser $(INFRA_VENV)/.installed
	$(BIN)/pytest -q

# Bicep: every file parses and checkov finds no failed check (tests/test_infra.py runs the same).
infra-check: $(INFRA_VENV)/.installed
	$(INFRA_VENV)/bin/python tools/check_bicep.py
	$(INFRA_VENV)/bin/checkov --directory infra --framework bicep --skip-download \
		--skip-path 'graph-app-role\.bicep' --compact --quiet

test: lint validate pytest

demo: setup browser
	$(BIN)/python -m devtools.demo

# Azurite and a local Teams webhook until Ctrl-C, settings in out/local.env, so `huntwire run`,
# `status` and `suppressions` can be tried by hand (README "Trying it locally").
local: setup
	$(BIN)/python -m devtools.local_env

# Three customer tenants end to end (one not consented, announced once).
demo-mssp: setup
	$(BIN)/python -m devtools.demo_mssp

bench: setup
	$(BIN)/python bench/bench_ledger.py
	$(BIN)/python bench/bench_suppress.py
	$(BIN)/python bench/bench_incidents.py
	$(BIN)/python bench/bench_scale.py
	$(BIN)/python bench/bench_large_answer.py
	$(BIN)/python bench/bench_hunts.py
	$(BIN)/python bench/bench_tenancy.py
	$(BIN)/python bench/bench_run_cost.py

clean:
	rm -rf $(VENV) $(INFRA_VENV) node_modules out .mypy_cache .ruff_cache .pytest_cache
