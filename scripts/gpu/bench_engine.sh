#!/usr/bin/env bash
# The performance figures of docs/PERFORMANCE.md on the GPU machine, in stages that each fit a device call:
#   build    configure and build build-gpu (ninja, -j16) and write the random DiT-XL/2 file both sides load
#   test     the whole test suite (the engine's kernel and CUDA-graph checks need the GPU)
#   ditgen   ditgen bench: batch sweep (all paths), resolution sweep, cuDNN attention
#   eager    the PyTorch reference, eager: same sweeps (official and contiguous token layouts), explicit attention
#   final    the acceptance comparison in one go (ditgen fast; reference eager and compiled, both layouts)
#   official the same against the official-style written-out attention; the reference's resolution sweep
#   ceilings copy bandwidth, GEMM and SDPA rates at the DiT shapes, a kernel profile of the reference
#   compile  the PyTorch reference under torch.compile (batches 1, 8, 64 and a whole generation)
#   bf16     bf16 against fp32 for fixed initial noise (shipped model and random DiT-XL/2)
# Records go to $OUT/*.jsonl (the keys of `ditgen bench --json`); plot with scripts/bench/plot_bench.py.
set -euo pipefail
cd "$(dirname "$0")/../.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
bin=build-gpu/bin/ditgen
xl=/tmp/dit-xl2-normal.safetensors
batches=1,2,4,8,16,32,64,128,256
for stage in "$@"; do
  echo "== $stage" >&2
  case "$stage" in
    build)
      DITGEN_NO_APT=1 BUILD_DIR=$PWD/build-gpu DITGEN_CMAKE_ARGS="-DDITGEN_STB_DIR=$PWD/.deps/stb -DDITGEN_GLOO_DIR=$PWD/.deps" \
        bash scripts/setup.sh > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
      [ -f $xl ] || $bin init DiT-XL/2 --weights normal --dtype bf16 -o $xl > /dev/null
      ;;
    test)
      ctest --test-dir build-gpu -j 8 --output-on-failure > "$OUT/ctest.log" 2>&1 || true
      grep -E "tests passed|tests failed|Failed|\*\*\*" "$OUT/ctest.log" | tail -12
      ;;
    ditgen)
      $bin bench -m $xl -b $batches --path eager,fused,fast --sample-batch 8 --json > "$OUT/ditgen-batch.jsonl"
      $bin bench -m $xl -b 8 --size 32,64,96,128 --path eager,fast --sample-batch 0 --json > "$OUT/ditgen-size.jsonl"
      $bin bench -m $xl -b 8,64 --path fast --attention cudnn --sample-batch 8 --json > "$OUT/ditgen-cudnn.jsonl"
      ;;
    eager)
      python3 scripts/bench/torch_reference.py --model $xl --modes eager --batches $batches --sample-batch 8 \
        > "$OUT/torch-eager-batch.jsonl"
      python3 scripts/bench/torch_reference.py --model $xl --modes eager --batches 8 --sizes 32,64,96,128 \
        --sample-batch 0 > "$OUT/torch-eager-size.jsonl"
      python3 scripts/bench/torch_reference.py --model $xl --modes eager --tokens contiguous --batches $batches \
        --sample-batch 8 > "$OUT/torch-eager-contiguous.jsonl"
      python3 scripts/bench/torch_reference.py --model $xl --modes eager --attention explicit --batches 8,64 \
        --sample-batch 8 > "$OUT/torch-explicit.jsonl"
      ;;
    final)
      # The acceptance figures side by side: ditgen fast, the reference eager and compiled, both token layouts.
      $bin bench -m $xl -b 8,16,64 --path fast --sample-batch 8 --json > "$OUT/final-ditgen.jsonl"
      TORCH_BLAS_PREFER_CUBLASLT=1 $bin bench -m $xl -b 16,64 --path fast --sample-batch 8 --json \
        > "$OUT/final-ditgen-cublaslt.jsonl"
      for tokens in official contiguous; do
        python3 scripts/bench/torch_reference.py --model $xl --modes eager,compile --tokens $tokens --batches 64 \
          --sample-batch 8 > "$OUT/final-torch-$tokens.jsonl"
      done
      ;;
    official)
      # Against the official code's attention (written out, as timm's), eager and compiled, same call.
      $bin bench -m $xl -b 64 --path fast --sample-batch 8 --json > "$OUT/official-ditgen.jsonl"
      python3 scripts/bench/torch_reference.py --model $xl --modes eager,compile --attention explicit --batches 64 \
        --sample-batch 8 > "$OUT/official-torch-explicit.jsonl"
      python3 scripts/bench/torch_reference.py --model $xl --modes eager --batches 8 --sizes 32,64,96,128 \
        --sample-batch 0 > "$OUT/torch-eager-size.jsonl"
      ;;
    ceilings)
      $bin bench -m $xl -b 64 --path eager,fused,fast --sample-batch 0 --profile > "$OUT/ditgen-profile.txt" 2>&1
      python3 scripts/bench/ceilings.py --batch 64 --profile $xl > "$OUT/ceilings.txt" 2>&1 || true
      nvidia-smi --query-gpu=name,clocks.sm,clocks.max.sm,power.draw,power.limit,temperature.gpu --format=csv \
        >> "$OUT/ceilings.txt" 2>&1 || true
      ;;
    compile)
      # Registry weights (N(0, 0.02) like the file's) so this stage needs no build.
      python3 scripts/bench/torch_reference.py --model DiT-XL/2 --modes compile --batches 1,8,64 --sample-batch 8 \
        > "$OUT/torch-compile.jsonl"
      python3 scripts/bench/torch_reference.py --model DiT-XL/2 --modes compile --tokens contiguous --batches 64 \
        --sample-batch 0 > "$OUT/torch-compile-contiguous.jsonl"
      ;;
    bf16)
      python3 scripts/parity/device_check.py --ditgen $bin --config DiT-XL/2 --workdir /tmp/bf16-xl \
        --steps 50 --runs cuda:fp32 cuda:bf16 > "$OUT/bf16-xl.txt" 2>&1 || true
      for dtype in fp32 bf16; do
        $bin generate -m models/fmnist-dit.safetensors 0 1 2 3 4 5 6 7 8 9 -n 10 -s 0 --device cuda \
          --dtype $dtype -o "/tmp/fm-$dtype-{index}.png" --progress none --save-latents "/tmp/fm-$dtype.safetensors"
      done
      python3 - > "$OUT/bf16-fmnist.txt" <<'PY'
from safetensors.torch import load_file
a = load_file("/tmp/fm-fp32.safetensors")["latents"].double()
b = load_file("/tmp/fm-bf16.safetensors")["latents"].double()
d = (a - b).abs()
print(f"fmnist-dit, 100 images, 50 DDIM steps, CFG 3: bf16 vs fp32 max abs {d.max():.4f}, "
      f"mean abs {d.mean():.5f} (pixels in [-1, 1]); fp32 max |x| {a.abs().max():.3f}")
PY
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
