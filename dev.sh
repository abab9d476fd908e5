#!/usr/bin/env bash
# Developer entry point. Works on a fresh machine with Python 3.11 and nothing else:
#   ./dev.sh demo   set up .venv and run the stress test of the reference strategies over the built-in scenarios
#   ./dev.sh test   set up .venv and run the test suite
#   ./dev.sh docs   set up .venv with the docs extra and build the documentation site (site/, strict)
#   ./dev.sh setup  only set up .venv
set -euo pipefail
cd "$(dirname "$0")"
PY="${PYTHON:-python3.11}"
command -v "$PY" >/dev/null 2>&1 || PY=python3
VENV=.venv
# step MESSAGE COMMAND...: one line for the step; the command's output only when it fails (in full)
step() {
  local msg="$1" log
  shift
  echo "$msg"
  log="$(mktemp)"
  if ! "$@" >"$log" 2>&1; then
    cat "$log" >&2
    rm -f "$log"
    echo "dev.sh: failed: $msg" >&2
    exit 1
  fi
  rm -f "$log"
}
setup() {
  if [ ! -x "$VENV/bin/python" ]; then
    step "setting up .venv ($("$PY" --version 2>&1)) ..." "$PY" -m venv "$VENV"
  fi
  # re-install when pyproject.toml changed since the last install
  if [ ! -f "$VENV/.installed" ] || [ pyproject.toml -nt "$VENV/.installed" ]; then
    step "upgrading pip in .venv ..." "$VENV/bin/python" -m pip install --disable-pip-version-check --upgrade pip
    step "installing deleverage and its dependencies into .venv (pip install -e .[dev]) ..." \
      "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".[dev]"
    touch "$VENV/.installed"
  fi
}
cmd="${1:-help}"; shift || true
case "$cmd" in
  setup) setup ;;
  demo)  setup; "$VENV/bin/deleverage" demo "$@" ;;
  test)  setup; "$VENV/bin/python" -m pytest -q "$@" ;;
  docs)  setup  # the docs extra (mkdocs, Material, mkdocstrings), then a strict build into site/
         if [ ! -x "$VENV/bin/mkdocs" ] || [ pyproject.toml -nt "$VENV/.docs-installed" ]; then
           step "installing the docs extra into .venv (pip install -e .[dev,docs]) ..." \
             "$VENV/bin/python" -m pip install --disable-pip-version-check -e ".[dev,docs]"
           touch "$VENV/.docs-installed"
         fi
         NO_MKDOCS_2_WARNING=1 "$VENV/bin/mkdocs" build --strict "$@" ;;
  *) echo "usage: ./dev.sh demo|test|docs|setup" >&2; exit 2 ;;
esac
