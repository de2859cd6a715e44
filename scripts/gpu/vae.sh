#!/usr/bin/env bash
# The SD-VAE's figures on the GPU machine (docs/VAE.md), in stages that each fit a device call:
#   build   configure and build build-gpu (scripts/gpu/flexidit.sh build)
#   test    the VAE tests, their GPU half included (CUDA decoding against the CPU reference)
#   bench   DiT-XL/2 at 256 and 512 px (32 and 64 latents, random weights) with the full-size SD-VAE (random
#           weights, block_out_channels 128,256,512,512, 2 layers a block, 4 latent channels): a whole generation
#           (DDIM 50 steps, CFG 4, fast path) of 1 and of 8 images, then decoding its latents whole, tiled as
#           auto chooses, and in tiles of 16 and 32 latents: ms, peak memory and decoding's share of the
#           generation, in bf16 (DTYPES adds others, e.g. "bf16 fp32")
# Results go to $OUT: bench.jsonl (one JSON record a line; kind "decode" holds the VAE's).
source "$(dirname "$0")/common.sh"
for stage in "$@"; do
  echo "== $stage $(date +%T)" >&2
  case "$stage" in
    build) bash scripts/gpu/flexidit.sh build ;;
    test) build-gpu/tests/ditgen_tests "[vae]" 2>&1 | tail -4 ;;
    bench)
      for dtype in ${DTYPES:-bf16}; do
        for batch in 1 8; do
          $bin bench -m DiT-XL/2 --size 32,64 -b "$batch" --path fast --dtype "$dtype" --sample-batch "$batch" \
            --steps 50 --cfg-scale 4 --sample-reps 2 --warmup 3 --reps 10 --vae sd-vae --vae-tile off,auto,16,32 \
            --json >> "$OUT/bench.jsonl"
        done
      done
      grep '"decode"' "$OUT/bench.jsonl" | python3 -c "
import json, sys
for line in sys.stdin:
    r = json.loads(line)
    print(f\"{r['height'] * 8} px {r['dtype']} batch {r['batch']} {r['vae_tile']:>4} (tile {r['tile']}): \"
          f\"{r['ms_per_image']:.1f} ms/image, peak {r['peak_memory_gib']:.2f} GiB \"
          f\"(+{r['decode_memory_gib']:.2f}), {100 * r['decode_share']:.1f}% of the generation\")" >&2
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
