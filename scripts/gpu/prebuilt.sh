#!/usr/bin/env bash
# GPU stages without the 4-minute build on the device: the CLI and test binary built here against the same
# LibTorch wheel (torch 2.11.0+cu130), without FFmpeg, carried with the few libraries the GPU image lacks.
#   here:  bash scripts/gpu/prebuilt.sh pack        configure and build build-h100, pack build-h100/prebuilt.tar.xz
#   there: source scripts/gpu/prebuilt.sh use       (then e.g. bash scripts/gpu/quant.sh test speed)
#   carry: build-h100/prebuilt.tar.xz (about a third of the binaries' size: the tree that travels is small)
# The binaries hold this checkout's absolute path (their test data, their models): `use` links it to the
# device's copy.
prebuilt_root="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
case "${1:-}" in
  pack)
    set -euo pipefail
    cd "$prebuilt_root"
    venv="${DITGEN_VENV:-$HOME/.cache/ditgen/venv}"
    torch_prefix="$("$venv/bin/python" -c 'import torch.utils; print(torch.utils.cmake_prefix_path)')"
    cmake -S . -B build-h100 -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$torch_prefix" \
      -DDITGEN_PYTHON="$venv/bin/python" -DCMAKE_CXX_COMPILER_LAUNCHER=ccache -DCMAKE_CUDA_COMPILER_LAUNCHER=ccache \
      -DCMAKE_DISABLE_FIND_PACKAGE_PkgConfig=ON > /dev/null  # no FFmpeg there
    ninja -C build-h100 ditgen_cli ditgen_tests
    mkdir -p build-h100/carry/lib build-h100/carry/fashion-mnist
    # Libraries of this Debian the Ubuntu image lacks at these sonames; CUDA's runtime from the toolkit.
    for lib in $(ldd build-h100/tests/ditgen_tests | grep -oE '/[^ ]*lib(spdlog|yaml-cpp|fmt|cudart)\.so[^ ]*'); do
      cp -L "$lib" build-h100/carry/lib/
    done
    cp /usr/share/datasets/fashion-mnist/*.gz build-h100/carry/fashion-mnist/  # the evaluator's real items
    printf '%s\n' "$prebuilt_root" > build-h100/carry/source-dir
    tar -C build-h100 -cf - bin/ditgen tests/ditgen_tests carry | xz -T2 -6 > build-h100/prebuilt.tar.xz
    ls -la build-h100/prebuilt.tar.xz
    ;;
  use)
    tar -C "$prebuilt_root/build-h100" -xJf "$prebuilt_root/build-h100/prebuilt.tar.xz"
    built_in="$(cat "$prebuilt_root/build-h100/carry/source-dir")"
    if [ "$built_in" != "$prebuilt_root" ] && [ ! -e "$built_in" ]; then
      mkdir -p "$(dirname "$built_in")" && ln -s "$prebuilt_root" "$built_in"
    fi
    torch_lib="$(python3 -c 'import os, torch; print(os.path.join(os.path.dirname(torch.__file__), "lib"))')"
    export LD_LIBRARY_PATH="$torch_lib:$prebuilt_root/build-h100/carry/lib${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH}"
    export DITGEN_BIN="$prebuilt_root/build-h100/bin/ditgen" DITGEN_TESTS="$prebuilt_root/build-h100/tests/ditgen_tests"
    export DITGEN_FMNIST_GZ="$prebuilt_root/build-h100/carry/fashion-mnist"
    ;;
  *) echo "usage: bash scripts/gpu/prebuilt.sh pack | source scripts/gpu/prebuilt.sh use" >&2; return 2 2>/dev/null || exit 2 ;;
esac
