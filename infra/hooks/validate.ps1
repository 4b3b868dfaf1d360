# azd prepackage/predeploy hook (azure.yaml) on Windows: the same checks as validate.sh, then
# `python -m shared validate --manifest hunts/huntwire.manifest.json` with the venv's python.
$ErrorActionPreference = 'Stop'
$py = if ($env:HUNTWIRE_PYTHON) { $env:HUNTWIRE_PYTHON } else { '.venv\Scripts\python.exe' }
function Fail([string]$message) { [Console]::Error.WriteLine("huntwire deploy hook: $message"); exit 1 }
if (-not (Test-Path $py)) { Fail "$py not found: create the Python 3.11 venv with the dev dependencies first (py -3.11 -m venv .venv; .venv\Scripts\pip install -r requirements-dev.txt -e .; npm ci), or set HUNTWIRE_PYTHON" }
& $py -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'
if ($LASTEXITCODE -ne 0) { Fail "$py is not Python 3.11 (the version the function runs)" }
& $py -c 'import shared, yaml, duckdb' 2>$null
if ($LASTEXITCODE -ne 0) { Fail "$py lacks huntwire's dependencies: pip install -r requirements-dev.txt -e ." }
if (-not (Get-Command node -ErrorAction SilentlyContinue)) { Fail "node not found: install Node.js 20 (Microsoft's KQL parser runs on it)" }
if (-not (Test-Path 'node_modules\@kusto\language-service-next')) { Fail "node_modules\@kusto\language-service-next missing: run npm ci" }
& $py -m shared validate --manifest hunts/huntwire.manifest.json
exit $LASTEXITCODE
