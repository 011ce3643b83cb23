#!/usr/bin/env bash
# Installs s3s-fs, the S3 server the integration tests run (tests/conftest.py `s3_server`),
# once, outside the clone, and prints the binary's path. A later run finds it and does nothing.
#
# 0.14.1 is pinned: later releases need a newer rustc than this project's toolchain. s3s-fs
# verifies AWS SigV4 when started with --access-key/--secret-key.
set -euo pipefail

VERSION=0.14.1
ROOT="${S3S_FS_ROOT:-$HOME/.cache/osstorchconnector/s3s-fs}"
BIN="$ROOT/bin/s3s-fs"

if [ -x "$BIN" ] && "$BIN" --version 2>/dev/null | grep -qF "s3s-fs $VERSION"; then
  echo "$BIN"
  exit 0
fi

echo "building s3s-fs $VERSION into $ROOT (once; several minutes)" >&2
# Its own target directory: the project's build cache stays the project's.
CARGO_TARGET_DIR="$ROOT/target" cargo install s3s-fs --version "$VERSION" \
  --features binary --locked --root "$ROOT" >&2
# The build tree is only needed to build; the binary is all the tests use.
rm -rf "$ROOT/target"
echo "$BIN"
