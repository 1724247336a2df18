#!/usr/bin/env bash
# Create .venv and install cg_helpers. Idempotent; safe to re-run.
#   bash scripts/setup.sh        runtime only (CLI, notebooks)
#   bash scripts/setup.sh dev    + tests, notebook execution, benchmarks, transformers, browser tests
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PY" -m venv .venv
  .venv/bin/python -m pip install -q --upgrade pip
fi
req=requirements.txt
[ "${1:-}" = "dev" ] && req=requirements-dev.txt
.venv/bin/python -m pip install -q -r "$req"
.venv/bin/python -m pip install -q --no-deps -e .
# A Jupyter kernel that uses this environment (for papermill and JupyterLab).
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null 2>&1 || true
