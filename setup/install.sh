#!/usr/bin/env bash
# Creates or reuses the virtual environment and installs what ocrframe needs, once:
#   1. Debian packages from setup/debian-packages.txt (fonts and the word list for the synthetic data),
#   2. torch: kept if the venv (or, with a system torch, the interpreter) already has one, e.g. a
#      CUDA build; otherwise the pinned CPU build $TORCH_SPEC,
#   3. the core with its test extras and every plugin under plugins/, editable.
# A stamp file skips all of it until one of the inputs changes.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}
TORCH_SPEC=${TORCH_SPEC:-torch==2.13.0}
STAMP="$VENV/.ocrframe-installed"
INPUTS=(pyproject.toml plugins/*/pyproject.toml setup/debian-packages.txt setup/install.sh)

if [ -f "$STAMP" ] && [ -z "$(find "${INPUTS[@]}" -newer "$STAMP" 2>/dev/null)" ]; then
  exit 0
fi

# 1. Debian packages
missing=()
for pkg in $(grep -v '^\s*#' setup/debian-packages.txt | awk '{print $1}'); do
  dpkg-query -W -f='${Status}' "$pkg" 2>/dev/null | grep -q "install ok installed" || missing+=("$pkg")
done
if [ ${#missing[@]} -gt 0 ]; then
  echo "installing Debian packages: ${missing[*]}"
  if [ "$(id -u)" = 0 ]; then SUDO=""; elif sudo -n true 2>/dev/null; then SUDO="sudo -n"; else SUDO=none; fi
  if [ "$SUDO" = none ] || ! command -v apt-get >/dev/null; then
    echo "error: cannot install ${missing[*]} (needs apt-get as root). Install them, then re-run." >&2
    exit 1
  fi
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi

# 2. The environment and torch
if [ ! -x "$VENV/bin/python" ]; then
  if "$PYTHON" -c "import torch" 2>/dev/null; then
    echo "$PYTHON already has torch $("$PYTHON" -c 'import torch; print(torch.__version__)'): reusing it"
    "$PYTHON" -m venv --system-site-packages "$VENV"
  else
    "$PYTHON" -m venv "$VENV"
  fi
fi
LOG="$VENV/install.log"
pip_install() {  # quiet unless it fails: build back-ends print pages of warnings
  "$VENV/bin/python" -m pip install --disable-pip-version-check "$@" >>"$LOG" 2>&1 \
    || { tail -n 40 "$LOG" >&2; echo "error: pip install $* failed (full log: $LOG)" >&2; exit 1; }
}
if ! "$VENV/bin/python" -c "import torch" 2>/dev/null; then
  echo "installing $TORCH_SPEC (CPU build) before anything can pull a CUDA build"
  pip_install "$TORCH_SPEC"
fi

# 3. ocrframe and its plugins
plugins=()
for p in plugins/*/; do plugins+=(-e "$p"); done
pip_install -e ".[test]" "${plugins[@]}"
touch "$STAMP"
echo "ready: $VENV ($("$VENV/bin/python" -c 'import torch; print("torch", torch.__version__)'))"
