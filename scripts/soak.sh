#!/usr/bin/env bash
# Soak test (issue 10, docs/HARDENING.md): N tiny-model generations in ONE ditgen process on the CPU (a
# prompt file, batch size 1, so every image is its own generate call and PNG write), sampling the process's
# resident memory once a second. Passes when the RSS after warm-up (the first 10% of the images) grows by
# at most 5% by the end.  usage: scripts/soak.sh [N=10000] [STEPS=2]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-10000}
steps=${2:-2}
bin=${DITGEN:-build/bin/ditgen}
work=$(mktemp -d /tmp/ditgen-soak.XXXXXX)
trap 'rm -rf "$work"' EXIT
$bin init configs/models/fmnist-tiny.yaml --weights normal -o "$work/tiny.safetensors" > /dev/null
classes=(sneaker bag coat dress shirt sandal trouser pullover "t-shirt/top" "ankle boot")
for ((i = 0; i < n; i++)); do echo "${classes[i % 10]}"; done > "$work/prompts.txt"
OMP_NUM_THREADS=1 $bin generate -m "$work/tiny.safetensors" -f "$work/prompts.txt" --steps "$steps" \
  --batch-size 1 --device cpu -s 0 --progress none -o "$work/out/{index:05}.png" > "$work/stdout" 2> "$work/stderr" &
pid=$!
echo "seconds,images,rss_kib" > "$work/rss.csv"
start=$SECONDS
while kill -0 $pid 2> /dev/null; do
  rss=$(awk '/^VmRSS/ {print $2}' /proc/$pid/status 2> /dev/null || true)
  [ -n "$rss" ] && echo "$((SECONDS - start)),$(wc -l < "$work/stdout"),$rss" >> "$work/rss.csv"
  sleep 1
done
wait $pid
written=$(ls "$work/out" | grep -c "\.png$")
cp "$work/rss.csv" "${SOAK_CSV:-/tmp/ditgen-soak-rss.csv}"
python3 - "$work/rss.csv" "$n" "$written" <<'PY'
import csv, sys
rows = [(int(s), int(i), int(r)) for s, i, r in list(csv.reader(open(sys.argv[1])))[1:]]
n, written = int(sys.argv[2]), int(sys.argv[3])
warm = [r for s, i, r in rows if i >= n // 10]
if written != n or len(warm) < 2:
    print(f"soak: {written} of {n} images written, {len(warm)} samples after warm-up: FAILED"); sys.exit(1)
base, peak, end = warm[0], max(warm), warm[-1]
growth = 100.0 * (peak - base) / base
print(f"soak: {n} generations in {rows[-1][0]} s; RSS after warm-up {base / 1024:.1f} MiB, peak {peak / 1024:.1f} MiB, "
      f"last {end / 1024:.1f} MiB: growth {growth:+.2f}% (limit +5%)")
sys.exit(0 if growth <= 5.0 else 1)
PY
