#!/usr/bin/env bash
# Builds the libFuzzer targets (clang, ASan + UBSan; no LibTorch) and fuzzes each one for a while.
#   bash scripts/fuzz.sh [seconds per target, default 60]      (TARGETS="a b" picks targets)
# Inputs start from the seeds and saved findings in tests/fuzz/corpus/TARGET (replayed first: the
# regression corpus); new corpus entries go to build-fuzz/corpus/TARGET. A crash stops with its input
# saved as build-fuzz/crash-TARGET-*; add such inputs to tests/fuzz/corpus/TARGET once fixed. Inputs may be
# 200,000 bytes long: enough to nest JSON or YAML 60,000 levels deep (tests/fuzz/make_deep_corpus.py).
# Exits 77 (CTest's "skipped") where clang with libFuzzer is missing, as on the GPU machine.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
if ! command -v clang++ > /dev/null || ! echo 'extern "C" int LLVMFuzzerTestOneInput(const char*, long) { return 0; }' |
     clang++ -x c++ -fsanitize=fuzzer,address,undefined -o /dev/null - 2> /dev/null; then
  echo "fuzz.sh: clang with libFuzzer and the sanitizer runtimes is not installed (Debian: clang libclang-rt-14-dev)"
  exit 77
fi
build=${FUZZ_BUILD_DIR:-build-fuzz}
mkdir -p "$build"
if [ -z "${FUZZ_NO_BUILD:-}" ]; then
  CC=clang CXX=clang++ cmake -S . -B "$build" -G Ninja -DDITGEN_FUZZ=ON -DCMAKE_BUILD_TYPE=RelWithDebInfo > /dev/null
  cmake --build "$build" -j "$(nproc)" > "$build/ditgen-build.log" 2>&1 || { tail -30 "$build/ditgen-build.log"; exit 1; }
fi
total=0
for target in ${TARGETS:-safetensors png_text prompt_file model_spec schedule scene_caption moving_caption gif}; do
  mkdir -p "$build/corpus/$target"
  log="$build/fuzz-$target.log"
  "$build/tests/fuzz/fuzz_$target" "$build/corpus/$target" "tests/fuzz/corpus/$target" \
    -max_total_time="$seconds" -print_final_stats=1 \
    -artifact_prefix="$build/crash-$target-" -rss_limit_mb=2048 -max_len=200000 > "$log" 2>&1 || {
      echo "fuzz_$target: FAILED (see $log)"; grep -m3 -E "ERROR|runtime error|SUMMARY" "$log" || true; exit 1; }
  runs=$(grep "stat::number_of_executed_units" "$log" | awk '{s+=$2} END {print s+0}')
  total=$((total + runs))
  echo "fuzz_$target: $runs executions in ${seconds} s, no findings"
done
echo "total: $total executions"
