#!/usr/bin/env bash
# The batch acceptance run of docs/BATCH.md on the CPU: 1,000 prompts with a tiny model, interrupted with
# Ctrl-C (SIGINT) midway, then resumed. Prints the model loads, what each run did, and manifest checks.
#   bash scripts/batch_resume_check.sh [build/bin/ditgen] [seconds before the interrupt]
set -euo pipefail
bin=$(realpath "${1:-build/bin/ditgen}")
wait_s=${2:-8}
root=$(cd "$(dirname "$0")/.." && pwd)
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
cd "$work"
"$bin" init "$root/configs/models/fmnist-tiny.yaml" -o tiny.safetensors > /dev/null
names=("T-shirt/top" Trouser Pullover Dress Coat Sandal Shirt Sneaker Bag "Ankle boot")
for i in $(seq 0 999); do echo "${names[$((i % 10))]}"; done > prompts.txt
args=(generate -m tiny.safetensors -f prompts.txt -o 'out/{index:04}-{prompt}.png' --steps 5 -s 0 --progress none)

"$bin" "${args[@]}" > run1.out 2> run1.err &
pid=$!
sleep "$wait_s"
kill -INT $pid
code=0; wait $pid || code=$?
echo "run 1 (interrupted after ${wait_s} s): exit $code, $(wc -l < run1.out) images written"
cat run1.err
first=$(ls out/*.png | head -1); stamp=$(stat -c %Y "$first")

start=$(date +%s.%N)
"$bin" "${args[@]}" --resume > run2.out 2> run2.err
echo "run 2 (--resume): exit 0, $(wc -l < run2.out) images written in $(echo "$(date +%s.%N) - $start" | bc) s"
cat run2.err
[ "$(stat -c %Y "$first")" = "$stamp" ] && echo "finished images untouched: yes"
python3 - <<'PY'
import json, collections, os
rows = [json.loads(l) for l in open("out/manifest.jsonl")]
idx = collections.Counter(r["index"] for r in rows)
st = collections.Counter(r["status"] for r in rows)
pngs = sum(f.endswith(".png") for f in os.listdir("out"))
print(f"manifest: {len(rows)} lines, {len(idx)} distinct images, each once: {all(v == 1 for v in idx.values())}, "
      f"statuses {dict(st)}; {pngs} PNGs on disk")
PY
