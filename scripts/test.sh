#!/usr/bin/env bash
# Run the test suite: `bash scripts/test.sh [pytest args...]`, e.g. `-q -x -k cli`.
# Sets up .venv and the test infrastructure first if needed (scripts/setup.sh --test: sshd,
# munge, SLURM, ... and the test extra). Works from any directory. Exits with pytest's status,
# except that "no tests collected" (5) counts as a failure.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
bash scripts/setup.sh --test
status=0
.venv/bin/python -m pytest "$@" || status=$?
if [ "$status" -eq 5 ]; then
  echo "test: pytest collected no tests; treating that as a failure" >&2
  exit 1
fi
exit "$status"
