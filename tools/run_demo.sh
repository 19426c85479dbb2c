#!/usr/bin/env bash
# The main job on the embedded default, from a fresh clone: set up .venv (idempotent), generate
# and convert the synthetic Cityscapes set if no real one is there, train InfoPro, evaluate.
#   bash tools/run_demo.sh [--e2e] [--iters N] [--data-root DIR]
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
bash "$repo/tools/setup_env.sh"
py="${INFOPRO_VENV:-$repo/.venv}/bin/python"
[ "${INFOPRO_VENV:-}" = none ] && py=python3
exec "$py" "$repo/tools/demo.py" "$@"
