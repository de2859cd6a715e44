#!/usr/bin/env bash
# DiffuSSM's figures on the GPU machine (docs/DIFFUSSM.md), in stages that each fit a device call:
#   build   configure and build build-gpu, unpack Fashion-MNIST (scripts/gpu/flexidit.sh build)
#   test    the DiffuSSM tests (their GPU halves included)
#   bench   whole forwards and token mixing of DiffuSSM-XL (a kernel per channel, and shared) against
#           DiT-XL/2 (random weights, width 1152) at L = 1k, 4k, 16k and 64k tokens: DiffuSSM at 32..256
#           latent pixels (patch 1), DiT at 64..512 (patch 2); MODELS and PATHS (default fused,fast) narrow it;
#           SCAN=1 mixes DiffuSSM's tokens with the fused scan kernel instead of FFT convolutions
#   train   start the Fashion-MNIST recipe (STEPS steps, default the recipe's) in the background: it outlives
#           the call while the machine is kept warm
#   wait    wait for that run until it ends or UNTIL seconds (default 560) into the call; its log, and the
#           model once it is finished, go to $OUT
#   eval    FID-FMNIST and class accuracy (10,000 samples, DDIM 50) at CFGS (1.5 3), seeds SEEDS (0 20000)
#   compare the DiffuSSM and the default DiT recipes side by side for STEPS steps each with EMA decay EMA
#           (default 0.999, for short runs), then FID-FMNIST and class accuracy of both (10,000 samples,
#           DDIM 50, CFG 1.5, seed 0)
# Results go to $OUT.
source "$(dirname "$0")/common.sh"
steps=${STEPS:-$(grep -o '^steps: [0-9]*' configs/train/fmnist-diffussm.yaml | cut -d' ' -f2)}
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
            ${SCAN:+--ssm-scan} --json >> "$OUT/bench.jsonl" || echo "bench $m $size failed" >&2
        done
      done
      ;;
    train) start_run fmnist-diffussm $steps ;;
    wait) wait_for_run $run ${UNTIL:-560} ;;
    eval)
      for cfg in ${CFGS:-1.5 3}; do
        for seed in ${SEEDS:-0 20000}; do
          $bin eval -m $run/model.safetensors --cfg-scale $cfg -n 10000 --seed $seed --device cuda \
            2>/dev/null | tr -d '\n ' >> "$OUT/eval.jsonl"
          echo >> "$OUT/eval.jsonl"
          tail -1 "$OUT/eval.jsonl" | cut -c1-300 >&2
        done
      done
      ;;
    compare)
      for name in fmnist-diffussm fmnist-dit; do
        recipe $name $steps runs/$name-$steps "s|^ema_decay: .*|ema_decay: ${EMA:-0.999}|"
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
