#!/usr/bin/env bash
# The whole test suite built with AddressSanitizer and UndefinedBehaviorSanitizer (gcc, -O1, no CUDA
# kernels) and run under CTest. LibTorch itself is not instrumented; its one-time allocations at exit are
# not reported (detect_leaks=0), every read and write of ditgen's code is.
#   bash scripts/sanitize.sh            (after scripts/setup.sh; build dir: build-asan)
set -euo pipefail
cd "$(dirname "$0")/.."
build=${SANITIZE_BUILD_DIR:-build-asan}
mkdir -p "$build"
py=${DITGEN_PYTHON:-$(ls -d "${DITGEN_VENV:-$HOME/.cache/ditgen/venv}"/bin/python 2>/dev/null || command -v python3)}
torch_cmake=$("$py" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')
export CCACHE_SLOPPINESS="pch_defines,time_macros,include_file_mtime,include_file_ctime"
flags="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer"
cmake -S . -B "$build" -G Ninja -DCMAKE_BUILD_TYPE=RelWithDebInfo -DCMAKE_CXX_FLAGS_RELWITHDEBINFO="-O1 -g" \
  -DCMAKE_CXX_FLAGS="$flags" -DCMAKE_EXE_LINKER_FLAGS="-fsanitize=address,undefined" -DDITGEN_CUDA=OFF \
  -DCMAKE_PREFIX_PATH="$torch_cmake" -DDITGEN_PYTHON="$py" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache ${DITGEN_CMAKE_ARGS:-} > "$build/ditgen-build.log"
cmake --build "$build" -j "$(nproc)" >> "$build/ditgen-build.log" 2>&1 || { tail -30 "$build/ditgen-build.log"; exit 1; }
export ASAN_OPTIONS=detect_leaks=0:detect_odr_violation=0:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
ctest --test-dir "$build" --output-on-failure -j "$(nproc)" -LE "fuzz|install"  # fuzz targets carry their own sanitizers; the install test copies LibTorch once, in the main build
