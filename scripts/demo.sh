#!/usr/bin/env bash
# The main job: set up .venv (pinned tools, torch, the extension built from this checkout),
# then run the demo. Extra arguments go to examples/demo.py (e.g. --objects 500).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dev-env.sh
exec .venv/bin/python examples/demo.py "$@"
