#!/usr/bin/env bash
# The main job: set up .venv (pinned tools, the extension built from this checkout, the demo's
# packages), then run the demo. Extra arguments go to examples/demo.py (e.g. --objects 500).
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/dev-env.sh
# dev-env.sh installs these today; asking again keeps the demo working if it stops. The
# constraints file pins whichever of them it lists and leaves the others free.
.venv/bin/python -m pip install --quiet -c constraints.txt torch pillow tqdm
# torchvision is optional: without it the demo does the same resize/crop/normalize by hand.
.venv/bin/python -m pip install --quiet -c constraints.txt torchvision ||
  echo "demo.sh: torchvision not installed; using the demo's PIL + torch preprocessing" >&2
exec .venv/bin/python examples/demo.py "$@"
