#!/usr/bin/env bash
# Quantization on the GPU machine (docs/QUANT.md), in stages that fit one device call with the build (carry .deps):
#   bash scripts/gpu/quant.sh build test speed profile eval
#   build    configure and build build-gpu (scripts/gpu/flexidit.sh build)
#   test     every [cuda] test (kernels against their LibTorch references; the CPU ones run on CI), to
#            $OUT/quant-tests.txt
#   speed    DiT-XL/2 256 px batch-64 forwards on the fast path: bf16, W8A8, FP8, W8A8 with symmetric weights (a
#            merged IntLoRA model's format), W4A8, and W8A8 with rank-4 float LoRA beside it; $OUT/xl-speed.jsonl
#   profile  the fast path's kernels for W8A8 and FP8, to $OUT/xl-profile-{w8a8,fp8}.txt
#   eval     the default model's scene benchmark (8,000 images, CFG 5.5, bf16) of W8A8 with static activations
#            (calibrated on the GPU), one JSON line in $OUT/quant-evals.jsonl
# Each stage is time-boxed so that a failing one leaves the rest of the call to the others.
source "$(dirname "$0")/common.sh"
set +e
for stage in "$@"; do
  echo "== $stage $(date +%T)" >&2
  case "$stage" in
    build) bash scripts/gpu/flexidit.sh build || exit 1 ;;
    test)
      timeout 150 $tests "[cuda]" > "$OUT/quant-tests.txt" 2>&1
      tail -3 "$OUT/quant-tests.txt" >&2
      ;;
    speed)
      for q in none w8a8 fp8 w8a8-sym "w8a8 --lora-rank 4" w4a8; do
        args=""; [ "$q" != none ] && args="--quantize $q"
        timeout 120 $bin bench -m DiT-XL/2 -b 64 --path fast --sample-batch 0 --warmup 5 --reps 20 $args --json \
          >> "$OUT/xl-speed.jsonl" 2>> "$OUT/xl-speed.err"
        echo "$q: $(tail -1 "$OUT/xl-speed.jsonl" | grep -oE '"(quantization|ms)":("[^"]*"|[0-9.]+)' | tr '\n' ' ')" >&2
      done
      ;;
    profile)
      for q in w8a8 fp8; do
        timeout 90 $bin bench -m DiT-XL/2 -b 64 --path fast --sample-batch 0 --warmup 3 --reps 3 --quantize $q --profile \
          > "$OUT/xl-profile-$q.txt" 2>&1
        head -12 "$OUT/xl-profile-$q.txt" >&2
      done
      ;;
    eval)
      unpack_fmnist
      timeout 150 $bin quantize models/scenes-dit.safetensors --weights 8 --acts static --device cuda \
        -o /tmp/scenes-dit-w8a8-static.safetensors >&2
      timeout 150 $bin eval -m /tmp/scenes-dit-w8a8-static.safetensors -n 8000 --cfg-scale 5.5 --seed 0 --device cuda \
        --dtype bf16 --batch-size 500 2> "$OUT/quant-evals.err" |
        python3 -c 'import json, sys; print(json.dumps(json.load(sys.stdin)))' >> "$OUT/quant-evals.jsonl"
      tail -2 "$OUT/quant-evals.err" >&2
      tail -1 "$OUT/quant-evals.jsonl" | cut -c1-160 >&2
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
