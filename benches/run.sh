#!/usr/bin/env bash
# End-to-end benchmark: bash benches/run.sh [--quick] [harness options, see harness.py --help]
# Checkpoint save/load benchmark: bash benches/run.sh --checkpoint [see checkpoint.py --help]
#
# Prepares what it needs, then runs benches/harness.py:
#   - nginx-light + the echo module + wrk from Debian (apt) when missing;
#   - our client: the repository's .venv with the extension built (scripts/test.sh makes it);
#   - peers, each in its own venv under $BENCH_HOME (~/.cache/osstorchconnector-bench), so they
#     never clash with ours (the official package has our import name):
#       official/  osstorchconnector==1.2.3 (Alibaba), torch
#       peers/     s3torchconnector (tenacity for its DCP), boto3, torch
#       harness/   matplotlib, psutil, crcmod-plus (the harness itself)
# Everything it starts listens on 127.0.0.1 only and stops by itself.
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
repo="$(dirname "$here")"
export BENCH_HOME="${BENCH_HOME:-$HOME/.cache/osstorchconnector-bench}"
mkdir -p "$BENCH_HOME"

need_apt=()
command -v nginx >/dev/null || need_apt+=(nginx-light)
[ -f /usr/lib/nginx/modules/ngx_http_echo_module.so ] || need_apt+=(libnginx-mod-http-echo)
command -v wrk >/dev/null || need_apt+=(wrk)
if [ ${#need_apt[@]} -gt 0 ]; then
  echo "installing ${need_apt[*]} (apt)"
  apt-get update -qq
  DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  # Debian starts the packaged nginx service on port 80: the benchmark runs its own instance.
  if command -v service >/dev/null; then service nginx stop >/dev/null 2>&1 || true; fi
fi

if [ ! -x "$repo/.venv/bin/python" ] || ! "$repo/.venv/bin/python" -c "import osstorchconnector._core, torch" 2>/dev/null; then
  echo "our client is not built: run 'bash scripts/test.sh' (creates .venv and builds the extension)" >&2
  exit 1
fi

# venv NAME PACKAGE... : creates $BENCH_HOME/NAME with the packages unless it already has them
venv() {
  local name="$1"; shift
  local dir="$BENCH_HOME/$name"
  local stamp="$dir/.bench-packages"
  if [ -f "$stamp" ] && [ "$(cat "$stamp")" = "$*" ]; then return; fi
  echo "preparing $dir: $*"
  python3 -m venv "$dir"
  "$dir/bin/pip" install -q "$@"
  echo "$*" > "$stamp"
}
venv harness matplotlib psutil crcmod-plus
venv peers s3torchconnector boto3 numpy tenacity
venv official osstorchconnector==1.2.3 numpy

if [ "${1:-}" = "--checkpoint" ]; then
  shift
  exec "$BENCH_HOME/harness/bin/python" "$here/checkpoint.py" "$@"
fi
exec "$BENCH_HOME/harness/bin/python" "$here/harness.py" "$@"
