#!/usr/bin/env bash
# Create (or reuse) the project's virtual environment and install the pinned stack into it.
#
# Idempotent: a stamp file records a hash of the requirement files, so a second run with nothing
# changed returns at once. mmcv 2.1.0 has no wheel for this torch on PyPI, so pip builds it from
# source with compiled CPU/CUDA ops (about 12 minutes on 2 cores); pip caches the built wheel, so
# later environments on the same machine reuse it.
#
# Usage: bash tools/setup_env.sh            # into ./.venv (or $INFOPRO_VENV)
#        INFOPRO_VENV=none bash tools/setup_env.sh   # into the Python on PATH (your own env)
set -euo pipefail
repo="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
venv="${INFOPRO_VENV:-$repo/.venv}"
python_bin="${PYTHON:-python3}"

if [ "$venv" != "none" ]; then
  if [ ! -x "$venv/bin/python" ]; then
    echo "[setup] creating virtual environment $venv"
    "$python_bin" -m venv "$venv"
  fi
  py="$venv/bin/python"
  stamp="$venv/.infopro-seg-installed"
else
  py="$(command -v "$python_bin")"
  stamp="$repo/.infopro-seg-installed"
fi

want="$(cat "$repo/requirements/runtime.txt" "$repo/requirements/tests.txt" "$repo/setup.py" \
        "$repo/tools/setup_env.sh" | sha256sum | cut -d' ' -f1)"
if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$want" ]; then
  echo "[setup] environment up to date ($py)"
  exit 0
fi

# The registry mirror prints a warning per package that it has no local copy of; drop those.
pip() { "$py" -m pip --disable-pip-version-check "$@" 2> >(grep -v "is ignored: it is neither a file" >&2); }
req() { grep -E "^$1[=<>]" "$repo/requirements/runtime.txt" | head -n1; }

echo "[setup] installing build prerequisites"
# mmcv's setup.py imports pkg_resources (gone in setuptools>=81) and torch at build time.
pip install -q "$(req torch)" 'setuptools<81' ninja wheel "$(req numpy)" "$(req opencv-python)"

if ! "$py" -c "import mmcv, mmcv.ops" >/dev/null 2>&1; then
  echo "[setup] building mmcv with compiled ops (about 12 minutes the first time; cached after)"
  MMCV_WITH_OPS=1 MAX_JOBS="${MAX_JOBS:-2}" pip install -q --no-build-isolation "$(req mmcv)"
fi

echo "[setup] installing the pinned stack and infopro-seg"
pip install -q -r "$repo/requirements/runtime.txt" -r "$repo/requirements/tests.txt"
pip install -q --no-build-isolation --no-deps -e "$repo"
"$py" - <<'PY'
import mmcv, mmcv.ops, mmengine, mmseg, torch, numpy, PIL, cv2
import infopro_seg
print(f"[setup] ok: torch {torch.__version__}, mmcv {mmcv.__version__}, mmengine {mmengine.__version__}, "
      f"mmseg {mmseg.__version__}, numpy {numpy.__version__}, pillow {PIL.__version__}, opencv {cv2.__version__}, "
      f"infopro_seg {infopro_seg.__version__}")
PY
echo "$want" > "$stamp"
