#!/usr/bin/env bash
# Sets up and builds ditgen; safe to run again (it only installs what is missing).
#   scripts/setup.sh            install dependencies, configure and build (Release, ninja, ccache)
# Environment:
#   BUILD_DIR       build folder (default: build)
#   DITGEN_VENV     Python venv that provides LibTorch when no python3 has torch 2.11 (default ~/.cache/ditgen/venv)
#   DITGEN_NO_APT=1 never call apt-get (machines without network, e.g. the GPU machine)
set -euo pipefail

root="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
build="${BUILD_DIR:-$root/build}"
torch_version="2.11.0"
say() { printf '[setup] %s\n' "$*" >&2; }

# 1. Debian packages.
packages=(build-essential cmake ninja-build ccache pkg-config git python3 python3-venv python3-pip
          libcli11-dev libspdlog-dev libstb-dev libavcodec-dev libavformat-dev libavutil-dev libswscale-dev
          catch2 libyaml-cpp-dev nlohmann-json3-dev dataset-fashion-mnist zlib1g-dev libgloo-dev
          clang libclang-rt-14-dev)  # clang: the fuzz targets (tests' fuzz_smoke)
if [ "${DITGEN_NO_APT:-0}" != 1 ] && command -v dpkg-query >/dev/null; then
  missing=()
  for p in "${packages[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "ok installed" || missing+=("$p")
  done
  if [ ${#missing[@]} -gt 0 ]; then
    say "installing: ${missing[*]}"
    sudo=""; [ "$(id -u)" = 0 ] || sudo="sudo"
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

# 2. LibTorch: a python3 that already has torch 2.11 (the GPU machine), else the PyPI wheel in a venv.
has_torch() { "$1" -c "import torch, sys; sys.exit(0 if torch.__version__.startswith('$torch_version') else 1)" 2>/dev/null; }
python=""
for candidate in "${DITGEN_PYTHON:-}" python3; do
  if [ -n "$candidate" ] && has_torch "$candidate"; then python="$candidate"; break; fi
done
if [ -z "$python" ]; then
  venv="${DITGEN_VENV:-$HOME/.cache/ditgen/venv}"
  [ -x "$venv/bin/python" ] || { say "creating $venv"; python3 -m venv "$venv"; }
  if ! has_torch "$venv/bin/python"; then
    say "installing torch==$torch_version from PyPI into $venv (a few GB, once)"
    "$venv/bin/pip" install -q --upgrade pip
    "$venv/bin/pip" install -q "torch==$torch_version" numpy safetensors
  fi
  python="$venv/bin/python"
  # CUTLASS's headers for the Hopper int8 GEMM (pinned; --no-deps leaves torch alone). Optional: without
  # them the build leaves that kernel out.
  if ! "$python" -c "import cutlass_library" 2>/dev/null; then
    "$venv/bin/pip" install -q --no-deps "nvidia-cutlass==4.2.0.0" || say "nvidia-cutlass not installed: no Hopper int8 GEMM"
  fi
fi
torch_prefix="$("$python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
say "LibTorch from $torch_prefix"

# 3. Configure and build. ccache keeps rebuilds cheap; these settings let it cache precompiled headers.
export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
launcher=()
command -v ccache >/dev/null && launcher=(-DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache)
cmake -S "$root" -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" \
  -DDITGEN_PYTHON="$python" "${launcher[@]}" ${DITGEN_CMAKE_ARGS:-} >/dev/null
cmake --build "$build" -j "$(nproc)"

say "ready: $build/bin/ditgen (to install it: scripts/install.sh PREFIX)"
