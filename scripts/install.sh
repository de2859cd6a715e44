#!/usr/bin/env bash
# Installs ditgen under a prefix: the CLI, the LibTorch libraries it loads, the shipped models and the
# compute-schedule presets. The installed ditgen needs neither the source tree nor ~/.cache/ditgen.
#   scripts/install.sh PREFIX      e.g. scripts/install.sh /usr/local, or scripts/install.sh ~/.local
# Brings the build up to date first (scripts/setup.sh, with its environment variables, where there is none).
set -euo pipefail
[ $# -eq 1 ] || { echo "usage: scripts/install.sh PREFIX" >&2; exit 2; }
root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
if [ -f "$build/CMakeCache.txt" ]; then cmake --build "$build"; else BUILD_DIR="$build" bash "$root/scripts/setup.sh"; fi
cmake --install "$build" --prefix "$1"
echo "[install] $1/bin/ditgen (libraries in $1/lib/ditgen, models and schedules in $1/share/ditgen)" >&2
