#!/usr/bin/env bash
# Creates (or updates) the project's virtualenv in .venv with pinned tools and the extension
# built from this checkout. Source-free: run it, then `. .venv/bin/activate`.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
# Rust build artefacts outside the clone, so fresh clones (CI) reuse them.
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/osstorchconnector/target}"

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
. .venv/bin/activate
python -m pip install --quiet --upgrade pip
python -m pip install --quiet -c constraints.txt -r requirements-dev.txt "$@"
# Build the extension in release mode: tests measure nothing, but a debug build of the
# HTTP stack makes the suite several times slower.
maturin develop --release --quiet
