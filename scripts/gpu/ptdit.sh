#!/usr/bin/env bash
# PT-DiT's figures on the GPU machine (docs/PTDIT.md), in stages that each fit a device call:
#   build   configure and build build-gpu, unpack Fashion-MNIST (scripts/gpu/flexidit.sh build)
#   test    the PT-DiT tests (their GPU halves included)
#   bench   token mixing and whole forwards of PT-DiT-XL/2 against DiT-XL/2 (random weights, equal width)
#           at 256, 512, 1024 and 2048 px (32..256 latent pixels), batches BATCHES (default 1,4,16)
#   profile PT-DiT-XL/2's kernels at 1024 px, batch 16 (fused path)
#   time    seconds per training step of both Fashion-MNIST recipes (STEPS=300 steps each, alone)
#   train   start the PT-DiT and the default DiT recipes (RUNS narrows them) side by side for STEPS steps each
#           (same seeds and data) in the background: they outlive the call while the machine is kept warm
#   wait    wait for those runs until they end or UNTIL seconds (default 560) into the call; their logs, and
#           the models once finished, go to $OUT
#   eval    FID-FMNIST and class accuracy of those runs (10,000 samples, DDIM 50, CFG $CFG, seeds 0 and 20000;
#           EVAL_ARGS adds options, e.g. --dtype fp32)
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
        $bin bench -m $m --size 32,64,128,256 -b "${BATCHES:-1,4,16}" --path fast --mixing --sample-batch 0 --warmup 3 \
          --reps 10 --json >> "$OUT/bench.jsonl"
      done
      ;;
    profile)
      $bin bench -m PT-DiT-XL/2 --size 128 -b 16 --path fused --sample-batch 0 --profile --json >> "$OUT/profile.jsonl"
      ;;
    time)
      for run in fmnist-ptdit fmnist-dit; do
        recipe $run $steps runs/$run-$steps
        rm -rf runs/$run-$steps
        /usr/bin/time -f "$run $steps steps: wall %e s" $bin train runs/$run-$steps.yaml --device cuda 2>&1 | tail -1
      done
      ;;
    train) for run in ${RUNS:-fmnist-ptdit fmnist-dit}; do start_run $run $steps; done ;;
    wait) for run in ${RUNS:-fmnist-ptdit fmnist-dit}; do wait_for_run runs/$run-$steps ${UNTIL:-560}; done ;;
    eval)
      for run in ${RUNS:-fmnist-ptdit fmnist-dit}; do
        for seed in 0 20000; do
          $bin eval -m runs/$run-$steps/model.safetensors --cfg-scale "${CFG:-1.5}" -n 10000 --seed $seed --device cuda \
            ${EVAL_ARGS:-} 2>/dev/null >> "$OUT/eval.jsonl"
          tail -1 "$OUT/eval.jsonl" | cut -c1-300 >&2
        done
      done
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
