#!/usr/bin/env bash
# Creates or refreshes the project venv (.venv) with everything the workbook and its tests need,
# system packages included. Idempotent: a second run only checks.
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# Sionna RT's CPU backend (Dr.Jit LLVM) needs libLLVM >= 15; 19 is the tested one.
if ! ls /usr/lib/x86_64-linux-gnu/libLLVM.so.19* /usr/lib/*/libLLVM-19.so* >/dev/null 2>&1; then
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  if command -v apt-get >/dev/null 2>&1; then
    echo "[setup] installing libllvm19 (CPU ray-tracing backend)"
    $SUDO apt-get update -qq && $SUDO apt-get install -y -qq libllvm19 >/dev/null \
      || echo "[setup] WARNING: could not install libllvm19; ray-tracing tests will be skipped"
  else
    echo "[setup] WARNING: no apt-get; install LLVM 19 yourself for CPU ray tracing"
  fi
fi

stamp="$VENV/.installed"
if [ ! -x "$VENV/bin/python" ]; then
  "$PYTHON" -m venv "$VENV"
fi
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ .ci/constraints.txt -nt "$stamp" ]; then
  echo "[setup] installing Python packages into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first, from the pinned CPU wheel; the constraint keeps every later step on it.
  "$VENV/bin/python" -m pip install -q -c .ci/constraints.txt "torch==2.13.0"
  "$VENV/bin/python" -m pip install -q -c .ci/constraints.txt -e ".[raytrace,notebooks,dev]"
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
  touch "$stamp"
fi
# Notebooks in git: strip outputs and diff with nbdime (local repo config only).
if [ -d .git ]; then
  git config filter.nbstrip.clean "$VENV/bin/python -m scadf_lib.nbstrip" || true
  git config filter.nbstrip.smudge cat || true
  git config filter.nbstrip.required true || true
  "$VENV/bin/nbdime" config-git --enable >/dev/null 2>&1 || true
fi
