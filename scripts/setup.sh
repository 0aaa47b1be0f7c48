#!/usr/bin/env bash
# Set up nas-onnx on a fresh Debian/Ubuntu machine, idempotently:
#   system packages  dataset-fashion-mnist (the default real data set);
#                    without --runtime also redis-server (distributed-study tests)
#                    and python3-torch (independent gradient reference in the tests)
#   npm packages     npm ci (onnxruntime-node 1.29.0 pinned; ONNXRUNTIME_NODE_INSTALL=skip skips its CUDA 12 download)
#   build            tsc → dist/
# Usage: bash scripts/setup.sh [--runtime]
set -euo pipefail
cd "$(dirname "$0")/.."

need=()
[ -d /usr/share/datasets/fashion-mnist ] || need+=(dataset-fashion-mnist)
if [ "${1:-}" != "--runtime" ]; then
  command -v redis-server >/dev/null 2>&1 || need+=(redis-server)
  /usr/bin/python3 -c 'import torch' >/dev/null 2>&1 || need+=(python3-torch)
fi
if [ ${#need[@]} -gt 0 ]; then
  SUDO=
  [ "$(id -u)" = 0 ] || SUDO=sudo
  echo "setup: installing ${need[*]}" >&2
  export DEBIAN_FRONTEND=noninteractive
  $SUDO apt-get install -y -q "${need[@]}" >/dev/null 2>&1 || {
    $SUDO apt-get update -q >/dev/null
    $SUDO apt-get install -y -q "${need[@]}" >/dev/null
  }
fi
if [ ! -d node_modules ] || [ package-lock.json -nt node_modules/.package-lock.json ]; then
  ONNXRUNTIME_NODE_INSTALL=skip npm ci --no-audit --no-fund --loglevel=error
fi
npm run build --silent
echo "setup: ok" >&2
