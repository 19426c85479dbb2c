#!/usr/bin/env bash
# The test suite, from a fresh clone: set up .venv (idempotent), then run pytest (CPU).
#   bash tools/run_tests.sh [pytest args...]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/tools/setup_env.sh"
py="${INFOPRO_VENV:-$repo/.venv}/bin/python"
[ "${INFOPRO_VENV:-}" = none ] && py=python3
cd "$repo"
exec "$py" -m pytest "$@"
