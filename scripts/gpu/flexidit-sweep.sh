#!/usr/bin/env bash
# A FlexiDiT schedule sweep on the GPU machine (docs/FLEXIDIT.md): build, the engine's GPU tests, then each
# "schedule|cfg" of SWEEP evaluated (10,000 samples) on the seed-0 and seed-20,000 sets and timed against dense
# and flexi-55-guided in three bench calls (batch 64, merged adapters; all at CFG 2: a scale other than 1 does
# not change the work, only whether there is guidance).
#   bash scripts/gpu/flexidit-sweep.sh       (the sweep of results/flexidit-*-sweep2.jsonl by default)
#   SWEEP="cond=4:0.5,guide=4:0.8,weak-scale=3|2 ..." bash scripts/gpu/flexidit-sweep.sh
set -uo pipefail
export OUT=${OUT:-/tmp/out}
cd "$(dirname "$0")/../.."
timeout 300 bash scripts/gpu/flexidit.sh build || exit 1
echo "== engine GPU tests $(date +%T)"
timeout 120 build-gpu/tests/ditgen_tests "[engine][cuda]" 2>&1 | tail -15
f=models/fmnist-flexidit.safetensors
sweep=${SWEEP:-"cond=4:0.55,guide=4:0.7,weak-scale=3|2 cond=4:0.55,guide=4:0.75,weak-scale=3|2
  cond=4:0.6,guide=4:0.7,weak-scale=3|2 cond=4:0.6,guide=4:0.75,weak-scale=3|2 cond=4:0.6,guide=4:0.7,weak-scale=3|2.25
  cond=4:0.55,guide=4:0.7,weak-scale=2.5|2"}
pairs="" schedules="dense;flexi-55-guided"
for s in $sweep; do pairs="$pairs $f|$s"; schedules="$schedules;${s%|*}"; done
for seed in 0 20000; do PAIRS="$pairs" SEED=$seed timeout 200 bash scripts/gpu/flexidit.sh eval; done
echo "== bench $(date +%T)"
for i in 1 2 3; do
  timeout 100 build-gpu/bin/ditgen bench -m $f -b 64 --patch 2 --path fast --sample-batch 64 --sample-reps 5 \
    --cfg-scale 2 --merge-lora --schedule "$schedules" --json >> "$OUT/bench.jsonl"
done
python3 - <<'PY'
import json, os
for line in open(os.environ["OUT"] + "/bench.jsonl"):
    j = json.loads(line)
    if j["kind"] == "sample":
        print(j["schedule"], round(j["ms"], 2), round(j.get("gflops_per_generation", 0), 1))
PY
