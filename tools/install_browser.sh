#!/usr/bin/env bash
# Install what the browser tests (pytest -m browser) need: Debian's Chromium and the Python
# playwright package. Idempotent: does nothing that is already done.
# Never runs `playwright install` (it downloads browsers from the internet and fails offline);
# the tests launch the system Chromium through playwright's executable_path instead.
#
# Usage: bash tools/install_browser.sh [path/to/python]   (default: .venv/bin/python)
set -euo pipefail

PYTHON="${1:-.venv/bin/python}"

if [ ! -x /usr/bin/chromium ]; then
    SUDO=""
    if [ "$(id -u)" != "0" ]; then SUDO="sudo"; fi
    if ! apt-cache policy chromium 2>/dev/null | grep -q "Candidate: [0-9]"; then
        $SUDO apt-get update -qq
    fi
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq chromium
fi
/usr/bin/chromium --version

if ! "$PYTHON" -c "import playwright.sync_api" 2>/dev/null; then
    "$PYTHON" -m pip install -q "$(grep -E '^playwright==' requirements-dev.txt || echo playwright)"
fi
"$PYTHON" -c "import playwright.sync_api; print('playwright python package: ok')"
