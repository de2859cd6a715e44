#!/usr/bin/env bash
# DiffuSSM's figures on the GPU machine (docs/DIFFUSSM.md), in stages that each fit a device call:
#   build   configure and build build-gpu, unpack Fashion-MNIST (scripts/gpu/flexidit.sh build)
#   test    the DiffuSSM tests (their GPU halves included)
#   bench   whole forwards and token mixing of DiffuSSM-XL (a kernel per channel, and shared) against
#           DiT-XL/2 (random weights, width 1152) at L = 1k, 4k, 16k and 64k tokens: DiffuSSM at 32..256
#           latent pixels (patch 1), DiT at 64..512 (patch 2); MODELS and PATHS (default fused,fast) narrow it
#   time    seconds per training step of the Fashion-MNIST recipe (STEPS=300 steps)
#   train   the Fashion-MNIST recipe for STEPS steps; STOP=N stops after step N with a checkpoint and
#           RESUME=1 continues the run (for recipes longer than one call on a machine kept warm)
#   eval    FID-FMNIST and class accuracy (10,000 samples, DDIM 50) at CFG 1.5 and 3, seeds 0 and 20000
#   compare the DiffuSSM and the default DiT recipes side by side for STEPS steps each with EMA decay EMA
#           (default 0.999, for short runs), then FID-FMNIST and class accuracy of both (10,000 samples,
#           DDIM 50, CFG 1.5, seed 0)
# Results go to $OUT.
source "$(dirname "$0")/common.sh"
steps=${STEPS:-15000}
run=runs/fmnist-diffussm-$steps
for stage in "$@"; do
  echo "== $stage $(date +%T)" >&2
  case "$stage" in
    build) bash scripts/gpu/flexidit.sh build ;;
    test) build-gpu/tests/ditgen_tests "[diffussm]" 2>&1 | tail -4 ;;
    bench)
      # One process a size: peak memory is the size's own (an SSM keeps the spectra of every length it ran).
      for side in 32 64 128 256; do
        for m in ${MODELS:-DiffuSSM-XL configs/models/diffussm-xl-shared.yaml DiT-XL/2}; do
          size=$side; [ $m = DiT-XL/2 ] && size=$((2 * side))
          $bin bench -m $m --size $size -b 1 --path ${PATHS:-fused,fast} --mixing --sample-batch 0 --warmup 2 --reps 5 \
            --json >> "$OUT/bench.jsonl" || echo "bench $m $size failed" >&2
        done
      done
      ;;
    time|train)
      mkdir -p runs
      sed "s|^steps: .*|steps: $steps|; s|^output: .*|output: $run|; s|^model: \.\./|model: $PWD/configs/|" \
        configs/train/fmnist-diffussm.yaml > $run.yaml
      [ "${RESUME:-0}" = 1 ] || rm -rf $run
      /usr/bin/time -f "$steps steps: wall %e s" $bin train $run.yaml --device cuda $([ "${RESUME:-0}" = 1 ] && echo --resume) \
        ${STOP:+--stop-after $STOP} 2>&1 | tail -3
      if [ "$stage" = train ] && [ -f $run/model.safetensors ]; then
        cp $run/log.jsonl "$OUT/fmnist-diffussm-$steps-log.jsonl"
        cp $run/model.safetensors "$OUT/fmnist-diffussm-$steps.safetensors"
      fi
      ;;
    eval)
      for cfg in 1.5 3; do
        for seed in 0 20000; do
          $bin eval -m $run/model.safetensors --cfg-scale $cfg -n 10000 --seed $seed --device cuda \
            2>/dev/null | tr -d '\n ' >> "$OUT/eval.jsonl"
          echo >> "$OUT/eval.jsonl"
          tail -1 "$OUT/eval.jsonl" | cut -c1-300 >&2
        done
      done
      ;;
    compare)
      mkdir -p runs
      for name in fmnist-diffussm fmnist-dit; do
        sed "s|^steps: .*|steps: $steps|; s|^output: .*|output: runs/$name-$steps|; s|^ema_decay: .*|ema_decay: ${EMA:-0.999}|; s|^model: \.\./|model: $PWD/configs/|" \
          configs/train/$name.yaml > runs/$name-$steps.yaml
        rm -rf runs/$name-$steps
        (/usr/bin/time -f "$name $steps steps: wall %e s" $bin train runs/$name-$steps.yaml --device cuda 2>&1 | tail -2) &
      done
      wait
      for name in fmnist-diffussm fmnist-dit; do
        cp runs/$name-$steps/log.jsonl "$OUT/$name-$steps-log.jsonl"
        ($bin eval -m runs/$name-$steps/model.safetensors --cfg-scale 1.5 -n 10000 --seed 0 --device cuda 2>/dev/null \
          | tr -d '\n ' > "$OUT/$name-$steps-eval.json") &
      done
      wait
      cp runs/fmnist-diffussm-$steps/model.safetensors "$OUT/fmnist-diffussm-$steps.safetensors"
      cat "$OUT"/*-eval.json | cut -c1-400 >&2
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
