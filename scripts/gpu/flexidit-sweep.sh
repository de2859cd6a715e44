set -uo pipefail
export OUT=${OUT:-/tmp/out}
timeout 300 bash scripts/gpu/flexidit.sh build || exit 1
echo "== OOM test $(date +%T)"
timeout 120 build-gpu/tests/ditgen_tests "[engine][cuda]" 2>&1 | tail -15
f=models/fmnist-flexidit.safetensors
P=""
for s in "cond=4:0.55,guide=4:0.7,weak-scale=3|2" "cond=4:0.55,guide=4:0.75,weak-scale=3|2" \
         "cond=4:0.6,guide=4:0.7,weak-scale=3|2" "cond=4:0.6,guide=4:0.75,weak-scale=3|2" \
         "cond=4:0.6,guide=4:0.7,weak-scale=3|2.25" "cond=4:0.55,guide=4:0.7,weak-scale=2.5|2"; do P="$P $f|$s"; done
for seed in 0 20000; do
  PAIRS="$P" SEED=$seed timeout 200 bash scripts/gpu/flexidit.sh eval
done
echo "== bench $(date +%T)"
for i in 1 2 3; do
timeout 100 build-gpu/bin/ditgen bench -m $f -b 64 --patch 2 --path fast --sample-batch 64 --sample-reps 5 --cfg-scale 2 --merge-lora \
  --schedule "dense;flexi-55-guided;cond=4:0.55,guide=4:0.7,weak-scale=3;cond=4:0.55,guide=4:0.75,weak-scale=3;cond=4:0.6,guide=4:0.7,weak-scale=3;cond=4:0.6,guide=4:0.75,weak-scale=3" --json >> $OUT/bench.jsonl
done
python3 - <<'PY'
import json,os
for l in open(os.environ["OUT"]+"/bench.jsonl"):
    j=json.loads(l)
    if j["kind"]=="sample": print(j["schedule"], round(j["ms"],2), round(j.get("gflops_per_generation",0),1))
PY
