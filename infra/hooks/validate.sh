#!/bin/sh
# azd prepackage/predeploy hook (azure.yaml): validate the hunts with Microsoft's KQL parser and
# write the manifest the function ships (hunts/huntwire.manifest.json). It needs what
# `make setup` installs: the Python 3.11 venv with the dev dependencies (.venv) and Node.js 20
# with node_modules (the parser). Each missing piece is one line saying how to get it.
set -eu
PY="${HUNTWIRE_PYTHON:-.venv/bin/python}"
fail() { echo "huntwire deploy hook: $*" >&2; exit 1; }
[ -x "$PY" ] || fail "$PY not found: run 'make setup' first (Python 3.11 venv with requirements-dev.txt, and npm ci), or set HUNTWIRE_PYTHON to such a python"
"$PY" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))' \
  || fail "$PY is not Python 3.11 (the version the function runs); recreate the venv with 'make setup PYTHON=python3.11'"
"$PY" -c 'import shared, yaml, duckdb' 2>/dev/null \
  || fail "$PY lacks huntwire's dependencies: run 'make setup' (requirements-dev.txt)"
command -v node >/dev/null 2>&1 || fail "node not found: install Node.js 20 (Microsoft's KQL parser runs on it)"
[ -d node_modules/@kusto/language-service-next ] || fail "node_modules/@kusto/language-service-next missing: run 'make setup' (npm ci)"
exec "$PY" -m shared validate --manifest hunts/huntwire.manifest.json
