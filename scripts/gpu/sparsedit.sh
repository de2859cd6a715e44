#!/usr/bin/env bash
# SparseDiT's figures on the GPU machine (docs/SPARSEDIT.md), in stages that each fit a device call:
#   build   configure and build build-gpu, unpack Fashion-MNIST (scripts/gpu/flexidit.sh build)
#   test    the SparseDiT tests (their GPU halves included)
#   train   fine-tune the shipped model into sparse layouts a and c on the data objective, side by side
#           (RUNS: config names under configs/train, without .yaml)
#   continue  more steps for layout c, distilled from the dense model (configs/train/fmnist-sparsedit-c-continue.yaml
#           reads models/fmnist-sparsedit-c.safetensors: copy the train stage's c model there first)
#   longer  layout c (or the sparse config LAYOUT, e.g. "{pooling_blocks: 0, modules: 1, groups: [1, 4, 1, 0],
#           min_grid: 4, max_grid: 16}") from scratch with longer distillation, as one background chain that
#           outlives the call while the machine is kept warm: the data objective (4,000 steps), then STEPS
#           (default 16,000) distilled steps, then MORE_STEPS (default 6,000) at half the learning rate, every
#           run with sparse_grids GRIDS (default uniform; timestep-batch trains each batch at its noise levels'
#           grid), in run folders runs/NAME-{data,distill,more} (NAME default c: chains with other NAMEs run
#           side by side); `UNTIL=560 ... wait-longer` collects it
#   wait-longer  wait for the chain NAME until it ends or UNTIL seconds into the call; its logs and models go to $OUT
#   extend  fine-tune by RECIPE (a config name under configs/train, default fmnist-sparsedit: more distillation
#           of a sparse model; fmnist-sparsedit-flex: the shipped one made flexible) for STEPS (default 28,000)
#           steps, its model MODEL and learning rate LR if given, in the background as runs/RECIPE-STEPS;
#           `UNTIL=560 ... wait-extend` collects it
#   distill layout c converted and distilled in one run per VARIANTS entry (sparse_grids values, default
#           "timestep-batch uniform"), side by side in the background
#           (configs/train/fmnist-sparsedit-c-distill.yaml): 300 probe steps of the pair measure the seconds
#           per step, then each run gets the steps that fit BUDGET seconds (default 1250); `UNTIL=560 ...
#           wait-distill` collects them
#   wait-distill  wait for those runs until they end or UNTIL seconds into the call; logs and models to $OUT
#   stop    stop every background run now with a checkpoint and write its model at the step it reached
#           (common.sh stop_runs), e.g. before the device budget ends; then wait-longer / wait-distill collect
#   eval    FID-FMNIST and class accuracy of the dense model and of schedules (PAIRS="model|schedule ...")
#   bench   whole-generation wall clock of the fmnist models (SPARSE: the sparse model file); forward times
#           and generation of DiT-XL/2 against SparseDiT-XL/2 at 512 px (random weights)
# Results go to $OUT.
source "$(dirname "$0")/common.sh"
sparse=${SPARSE:-models/fmnist-sparsedit.safetensors}
# Waits until no `ditgen train $1*` runs or UNTIL seconds into the call; the run folders $1$2, $1$3, ... then
# go to $OUT as wait_for_run gives them.
collect_runs() {
  local prefix=$1 run; shift
  while pgrep -f "[b]in/ditgen train $prefix" > /dev/null && [ "$SECONDS" -lt "${UNTIL:-560}" ]; do sleep 5; done
  for run in "$@"; do wait_for_run "$prefix$run" 0; done
}
runs=${RUNS:-"fmnist-sparsedit-a-data fmnist-sparsedit-c-data"}
chain_name=${NAME:-c}
recipe_name=${RECIPE:-fmnist-sparsedit}
for stage in "$@"; do
  echo "== $stage $(date +%T)" >&2
  case "$stage" in
    build) bash scripts/gpu/flexidit.sh build ;;
    test) build-gpu/tests/ditgen_tests "[sparsedit]" 2>&1 | tail -4 ;;
    train)
      # Side by side: the small model leaves the GPU mostly idle.
      for run in $runs; do
        rm -rf runs/$run
        (/usr/bin/time -f "$run wall %e s" $bin train configs/train/$run.yaml --device cuda 2>&1 | tail -4) &
      done
      wait
      for run in $runs; do
        cp runs/$run/log.jsonl "$OUT/$run-log.jsonl"
        cp runs/$run/model.safetensors "$OUT/$run.safetensors"
      done
      ;;
    continue)
      rm -rf runs/fmnist-sparsedit-c-continue
      /usr/bin/time -f "continue wall %e s" $bin train configs/train/fmnist-sparsedit-c-continue.yaml --device cuda \
        2>&1 | tail -2
      cp runs/fmnist-sparsedit-c-continue/log.jsonl "$OUT/fmnist-sparsedit-c-continue-log.jsonl"
      cp runs/fmnist-sparsedit-c-continue/model.safetensors "$OUT/fmnist-sparsedit-c-continue.safetensors"
      ;;
    longer)
      unpack_fmnist
      rm -rf runs/$chain_name-data runs/$chain_name-distill runs/$chain_name-more
      grids="s|^steps: |sparse_grids: ${GRIDS:-uniform}\nsteps: |"
      layout=${LAYOUT:+"s|^sparse: .*|sparse: $LAYOUT|"}  # else the data config's own layout c
      recipe fmnist-sparsedit-c-data 4000 runs/$chain_name-data "$grids; $layout"
      recipe fmnist-sparsedit-c-continue "${STEPS:-16000}" runs/$chain_name-distill \
        "$grids; s|^model: .*|model: $PWD/runs/$chain_name-data/model.safetensors|"
      recipe fmnist-sparsedit-c-continue "${MORE_STEPS:-6000}" runs/$chain_name-more \
        "$grids; s|^model: .*|model: $PWD/runs/$chain_name-distill/model.safetensors|; s|^lr: .*|lr: 5.0e-5|; s|^seed: 3|seed: 4|"
      chain=""
      for run in data distill more; do
        chain+="$bin train runs/$chain_name-$run.yaml --device cuda > runs/$chain_name-$run.out 2>&1 && "
      done
      setsid nohup bash -c "${chain}true" < /dev/null > /dev/null 2>&1 &
      ;;
    wait-longer) collect_runs "runs/$chain_name-" data distill more ;;
    extend)
      start_run "$recipe_name" "${STEPS:-28000}" \
        "${MODEL:+s|^model: .*|model: $(realpath "$MODEL")|;} ${LR:+s|^lr: .*|lr: $LR|}"
      ;;
    wait-extend) wait_for_run "runs/$recipe_name-${STEPS:-28000}" "${UNTIL:-560}" ;;
    distill)
      unpack_fmnist
      variants=${VARIANTS:-"timestep-batch uniform"}
      distill_recipe() {  # variant steps folder [sed]
        recipe fmnist-sparsedit-c-distill "$2" "$3" "s|^sparse_grids: .*|sparse_grids: $1|; ${4:-}"
      }
      for v in $variants; do
        rm -rf runs/probe-$v runs/d-$v
        distill_recipe "$v" 300 runs/probe-$v "s|^log_every: .*|log_every: 100|"
        $bin train runs/probe-$v.yaml --device cuda > runs/probe-$v.out 2>&1 &
      done
      wait
      # Seconds per step side by side, from the slowest run's log between steps 100 and 300.
      per_step=$(cat runs/probe-*/log.jsonl | python3 -c "
import json, sys
t = {}
for line in sys.stdin:
    j = json.loads(line); t.setdefault(j['step'], []).append(j['elapsed_s'])
print((max(t[300]) - max(t[100])) / 200)")
      steps=$(python3 -c "print(int(${BUDGET:-1250} / $per_step) // 500 * 500)")
      echo "probe: $per_step s a step side by side; $steps steps each" >&2
      for v in $variants; do
        distill_recipe "$v" "$steps" runs/d-$v
        setsid nohup $bin train runs/d-$v.yaml --device cuda > runs/d-$v.out 2>&1 < /dev/null &
      done
      ;;
    wait-distill) collect_runs runs/d- ${VARIANTS:-timestep-batch uniform} ;;
    stop) stop_runs ;;
    eval)
      for pair in ${PAIRS:-"models/fmnist-dit.safetensors|dense" "$sparse|dense"}; do
        IFS='|' read -r m s c <<< "$pair"
        $bin eval -m "$m" --schedule "$s" --cfg-scale "${c:-1.5}" -n 10000 --seed "${SEED:-0}" --batch-size 64 \
          --device cuda 2>"$OUT/eval-error.txt" \
          | python3 -c "import json,sys; j=json.load(sys.stdin); print(json.dumps(j))" >> "$OUT/eval.jsonl"
        tail -1 "$OUT/eval.jsonl" | cut -c1-300 >&2
      done
      ;;
    bench)
      $bin bench -m models/fmnist-dit.safetensors -b 64 --path fast --sample-batch 64 --cfg-scale 1.5 --json \
        >> "$OUT/bench.jsonl"
      $bin bench -m "$sparse" -b 64 --grid 4,6,8,10,12 --path fast --sample-batch 64 --cfg-scale 1.5 \
        --schedule "${SCHEDULES:-dense;density=6:10;grid=12}" --json >> "$OUT/bench.jsonl"
      $bin bench -m DiT-XL/2-512 -b 8,32 --path fast --sample-batch 8 --steps 50 --cfg-scale 4 --sample-reps 2 \
        --json >> "$OUT/bench.jsonl"
      $bin bench -m SparseDiT-XL/2-512 -b 8,32 --grid 6,8,10 --path fast --sample-batch 8 --steps 50 --cfg-scale 4 \
        --sample-reps 2 --schedule "dense;grid=8" --json >> "$OUT/bench.jsonl"
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
