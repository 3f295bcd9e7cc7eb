#!/usr/bin/env bash
# Run the demo: optimize the classic paraboloid and print the optimizer's results.
# Sets up .venv first if needed (scripts/setup.sh: python3-venv and the package, nothing the
# tests need). Works from any directory.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh
exec .venv/bin/openmdao-like run examples/paraboloid.py "$@"
