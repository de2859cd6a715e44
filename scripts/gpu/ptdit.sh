#!/usr/bin/env bash
# PT-DiT's figures on the GPU machine (docs/PTDIT.md), in stages that each fit a device call:
#   build   configure and build build-gpu, unpack Fashion-MNIST (scripts/gpu/flexidit.sh build)
#   test    the PT-DiT tests (their GPU halves included)
#   bench   token mixing and whole forwards of PT-DiT-XL/2 against DiT-XL/2 (random weights, equal width)
#           at 256, 512, 1024 and 2048 px (32..256 latent pixels)
#   time    seconds per training step of both Fashion-MNIST recipes (STEPS=300 steps each, alone)
#   train   the PT-DiT and the default DiT recipes side by side for STEPS steps each (same seeds and data)
#   eval    FID-FMNIST and class accuracy of both (10,000 samples, DDIM 50, CFG $CFG)
# Results go to $OUT.
source "$(dirname "$0")/common.sh"
steps=${STEPS:-15000}
for stage in "$@"; do
  echo "== $stage $(date +%T)" >&2
  case "$stage" in
    build) bash scripts/gpu/flexidit.sh build ;;
    test) build-gpu/tests/ditgen_tests "[ptdit]" 2>&1 | tail -4 ;;
    bench)
      for m in PT-DiT-XL/2 DiT-XL/2; do
        $bin bench -m $m --size 32,64,128,256 -b 1,4 --path fast --mixing --sample-batch 0 --warmup 3 --reps 10 \
          --json >> "$OUT/bench.jsonl"
      done
      ;;
    time|train)
      mkdir -p runs
      for run in fmnist-ptdit fmnist-dit; do recipe $run $steps runs/$run-$steps; rm -rf runs/$run-$steps; done
      if [ "$stage" = time ]; then
        for run in fmnist-ptdit fmnist-dit; do
          /usr/bin/time -f "$run $steps steps: wall %e s" $bin train runs/$run-$steps.yaml --device cuda 2>&1 | tail -1
        done
      else
        for run in fmnist-ptdit fmnist-dit; do
          (/usr/bin/time -f "$run $steps steps: wall %e s" $bin train runs/$run-$steps.yaml --device cuda 2>&1 | tail -2) &
        done
        wait
        for run in fmnist-ptdit fmnist-dit; do
          cp runs/$run-$steps/log.jsonl "$OUT/$run-$steps-log.jsonl"
          cp runs/$run-$steps/model.safetensors "$OUT/$run-$steps.safetensors"
        done
      fi
      ;;
    eval)
      for run in fmnist-ptdit fmnist-dit; do
        for seed in 0 20000; do
          $bin eval -m runs/$run-$steps/model.safetensors --cfg-scale "${CFG:-1.5}" -n 10000 --seed $seed --device cuda \
            2>/dev/null >> "$OUT/eval.jsonl"
          tail -1 "$OUT/eval.jsonl" | cut -c1-300 >&2
        done
      done
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
