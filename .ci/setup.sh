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
TORCH_PIN=$(grep -E '^torch==' .ci/constraints.txt)
# PyTorch's own index of CPU-only wheels: on a machine without an NVIDIA GPU it gives the ~200 MB CPU
# build of the pinned version, where the default package index would give the CUDA build (several GB).
CPU_INDEX=https://download.pytorch.org/whl/cpu

install_torch() {
  if "$VENV/bin/python" -c "import torch" >/dev/null 2>&1; then
    return
  fi
  if command -v nvidia-smi >/dev/null 2>&1 && nvidia-smi -L >/dev/null 2>&1; then
    echo "[setup] NVIDIA GPU found: installing the CUDA build of $TORCH_PIN"
    "$VENV/bin/python" -m pip install -q "$TORCH_PIN"
  elif "$VENV/bin/python" -c "import urllib.request as u; u.urlopen('$CPU_INDEX/torch/', timeout=5)" >/dev/null 2>&1; then
    echo "[setup] no NVIDIA GPU: installing the CPU build of $TORCH_PIN from PyTorch's CPU index"
    "$VENV/bin/python" -m pip install -q "$TORCH_PIN" --extra-index-url "$CPU_INDEX"  # "+cpu" ranks first
  else
    echo "[setup] no NVIDIA GPU and PyTorch's CPU index is out of reach: installing $TORCH_PIN from the configured"
    echo "[setup] package index (a local CPU wheel where one is configured; from PyPI on Linux x86_64 this is the"
    echo "[setup] CUDA build, several GB: install the CPU build by hand first to avoid that)"
    "$VENV/bin/python" -m pip install -q -c .ci/constraints.txt "$TORCH_PIN"
  fi
}

if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ .ci/constraints.txt -nt "$stamp" ]; then
  echo "[setup] installing Python packages into $VENV"
  "$VENV/bin/python" -m pip install -q --upgrade pip
  # torch first; the constraint keeps every later step on the version (and build) installed here.
  install_torch
  "$VENV/bin/python" -m pip install -q -c .ci/constraints.txt -e ".[raytrace,notebooks,dev]"
  "$VENV/bin/python" -m ipykernel install --sys-prefix --name python3 >/dev/null
  touch "$stamp"
fi
# The data version the reference set and the shipped models were trained on (data/v1), from git history.
restore_v1() { "$VENV/bin/python" -m scadf_lib.dataversions restore 1 >/dev/null 2>&1; }
if ! restore_v1; then
  if [ "$(git rev-parse --is-shallow-repository 2>/dev/null)" = "true" ]; then
    echo "[setup] shallow clone: fetching the history that holds data version 1"
    git fetch -q --unshallow 2>/dev/null || true
  fi
  restore_v1 || echo "[setup] WARNING: data version 1 could not be restored (a clone without history?); the tests and notebooks that use the shipped models are skipped"
fi
# Notebooks in git: strip outputs and diff/merge with nbdime. Absolute paths, so that `git diff` and
# `git merge` work without activating the venv (local repo config only).
if [ -d .git ]; then
  venv_bin="$(cd "$VENV/bin" && pwd)"
  git config filter.nbstrip.clean "$venv_bin/python -m scadf_lib.nbstrip" || true
  git config filter.nbstrip.smudge cat || true
  git config filter.nbstrip.required true || true
  "$venv_bin/nbdime" config-git --enable >/dev/null 2>&1 || true
  git config diff.jupyternotebook.command "$venv_bin/git-nbdiffdriver diff" || true
  git config merge.jupyternotebook.driver "$venv_bin/git-nbmergedriver merge %O %A %B %L %P" || true
  git config difftool.nbdime.cmd "$venv_bin/git-nbdifftool diff \"\$LOCAL\" \"\$REMOTE\" \"\$BASE\"" || true
  git config mergetool.nbdime.cmd "$venv_bin/git-nbmergetool merge \"\$BASE\" \"\$LOCAL\" \"\$REMOTE\" \"\$MERGED\"" || true
fi
