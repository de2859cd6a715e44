# Sourced by the GPU stage scripts: the repository root as working folder, $OUT for results, the unpacked
# Fashion-MNIST folder and the GPU build's binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export DITGEN_FMNIST_DIR=/tmp/fmnist
bin=${DITGEN_BIN:-build-gpu/bin/ditgen}        # scripts/gpu/prebuilt.sh sets these two
tests=${DITGEN_TESTS:-build-gpu/tests/ditgen_tests}
# A training recipe for this machine: configs/train/$1.yaml with $2 steps and output folder $3 (its model
# and teacher paths made absolute), plus any further sed expressions in $4, written to $3.yaml.
recipe() {
  mkdir -p "$(dirname "$3")"
  sed "s|^steps: .*|steps: $2|; s|^output: .*|output: $3|; s|^model: \.\./|model: $PWD/configs/|; \
    s|^teacher: \.\./|teacher: $PWD/configs/|; ${4:-}" \
    "configs/train/$1.yaml" > "$3.yaml"
}
# Fashion-MNIST unpacked into $DITGEN_FMNIST_DIR from the carried .deps, unless a warm machine has it already.
unpack_fmnist() {
  [ -f "$DITGEN_FMNIST_DIR/t10k-labels-idx1-ubyte" ] && return
  mkdir -p "$DITGEN_FMNIST_DIR"
  for f in "${DITGEN_FMNIST_GZ:-.deps/fashion-mnist}"/*.gz; do gunzip -c "$f" > "$DITGEN_FMNIST_DIR/$(basename "${f%.gz}")"; done
}
# Starts configs/train/$1.yaml for $2 steps (further sed expressions in $3) in the background as the run folder
# runs/$1-$2: the run outlives the device call while the machine is kept warm; wait_for_run collects it.
start_run() {
  unpack_fmnist
  rm -rf "runs/$1-$2"
  recipe "$1" "$2" "runs/$1-$2" "${3:-}"
  setsid nohup $bin train "runs/$1-$2.yaml" --device cuda > "runs/$1-$2.out" 2>&1 < /dev/null &
}
# Copies file $1 to $OUT/$2, or, over the 16 MiB a returned file may have, in 15 MiB parts $OUT/$2.part-aa,
# -ab, ... (cat them back in order).
collect() {
  if [ "$(stat -c %s "$1")" -gt 16000000 ]; then split -b 15M "$1" "$OUT/$2.part-"; else cp "$1" "$OUT/$2"; fi
}
# Waits for the run folder $1 until it ends or $2 seconds into the call; its log once it has one, and its
# model once finished, go to $OUT.
wait_for_run() {
  while pgrep -f "ditgen train $1.yaml" > /dev/null && [ "$SECONDS" -lt "$2" ]; do sleep 5; done
  if [ -f "$1.out" ]; then tail -2 "$1.out" >&2; fi
  if [ -f "$1/log.jsonl" ]; then cp "$1/log.jsonl" "$OUT/$(basename "$1")-log.jsonl"; fi
  if [ -f "$1/model.safetensors" ]; then collect "$1/model.safetensors" "$(basename "$1").safetensors"; fi
}
# Stops every background `ditgen train runs/...` now (SIGTERM: each stops after its step in flight with a
# checkpoint), then resumes each stopped run with its steps lowered to where it stopped, which writes its
# model at once: a run cut by the device deadline still leaves a model to evaluate. Collect them afterwards.
stop_runs() {
  pkill -TERM -f "[b]in/ditgen train runs/" || true
  while pgrep -f "[b]in/ditgen train runs/" > /dev/null; do sleep 1; done
  local out run step
  for out in runs/*.out; do
    run=${out%.out}
    [ -f "$run/checkpoint.safetensors" ] && [ ! -f "$run/model.safetensors" ] || continue
    step=$(grep -o "stopped at step [0-9]*" "$out" | tail -1 | grep -o "[0-9]*$") || continue
    sed -i "s|^steps: .*|steps: $step|" "$run.yaml"
    $bin train "$run.yaml" --resume --device cuda >> "$out" 2>&1
    echo "$run: stopped at step $step, model written" >&2
  done
}
