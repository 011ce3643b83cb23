#!/usr/bin/env bash
# The one command that sets up and runs every check and test (what CI runs).
set -euo pipefail
cd "$(dirname "$0")/.."
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$HOME/.cache/osstorchconnector/target}"

step() { printf '\n== %s ==\n' "$*"; }

step "environment"
bash scripts/dev-env.sh
. .venv/bin/activate

step "rust: fmt, clippy, unit tests"
cargo fmt --all -- --check
cargo clippy --all-targets --features python --locked -- -D warnings
cargo test --locked

step "python: ruff, mypy, stubtest"
ruff check python tests examples benches
ruff format --check python tests examples benches
mypy python/osstorchconnector
# The hand-written stub must match the compiled extension.
python -m mypy.stubtest osstorchconnector._core --allowlist python/stubtest-allowlist.txt

step "test servers: s3s-fs (built once, cached outside the clone)"
# The `s3_server` fixture (tests/s3_server.py) starts this binary.
S3S_FS="$(bash scripts/s3s_fs.sh)"
export S3S_FS

step "python: pytest"
python -m pytest "$@"
