#!/usr/bin/env bash
# FlexiDiT's figures on the GPU machine (docs/FLEXIDIT.md), in stages that each fit a device call:
#   build   configure and build build-gpu, unpack Fashion-MNIST
#   test    the FlexiDiT and engine tests (their GPU halves)
#   train   fine-tune the shipped model: shared weights (variant A) and LoRA distillation (variant B)
#   eval    FID-FMNIST and class accuracy of the dense model and of several schedules (10,000 samples each)
#   bench   whole-generation wall clock per schedule (shipped flexible model; random FlexiDiT-XL/2) and
#           forward times per patch size (is packing CFG branches of different patch sizes worth it?)
# Results go to $OUT: models, train logs, eval.jsonl, bench.jsonl.
source "$(dirname "$0")/common.sh"
flexa=${FLEXA:-models/fmnist-flexidit.safetensors}
flexb=${FLEXB:-runs/fmnist-flexidit-lora/model.safetensors}
cfg=${CFG:-1.5}
for stage in "$@"; do
  echo "== $stage $(date +%T)" >&2
  case "$stage" in
    build)
      # CUTLASS's headers travel packed (.deps/cutlass.tar.xz: include/ and tools/util/include/ of nvidia-cutlass).
      [ -d .deps/cutlass/include ] || { mkdir -p .deps/cutlass && tar -xJf .deps/cutlass.tar.xz -C .deps/cutlass; }
      DITGEN_NO_APT=1 BUILD_DIR=$PWD/build-gpu \
        DITGEN_CMAKE_ARGS="-DDITGEN_STB_DIR=$PWD/.deps/stb -DDITGEN_GLOO_DIR=$PWD/.deps -DDITGEN_CUTLASS_DIR=$PWD/.deps/cutlass" \
        bash scripts/setup.sh > "$OUT/build.log" 2>&1 || { tail -30 "$OUT/build.log"; exit 1; }
      unpack_fmnist
      ;;
    test)
      build-gpu/tests/ditgen_tests "[flexidit],[engine]" 2>&1 | tail -4
      ;;
    continue)
      # More distillation for the LoRA model, from the file FLEXB (configs/train/fmnist-flexidit-lora-continue.yaml).
      rm -rf runs/fmnist-flexidit-lora-continue
      /usr/bin/time -f "continue wall %e s" $bin train configs/train/fmnist-flexidit-lora-continue.yaml --device cuda \
        2>&1 | tail -2
      cp runs/fmnist-flexidit-lora-continue/log.jsonl "$OUT/fmnist-flexidit-lora-continue-log.jsonl"
      cp runs/fmnist-flexidit-lora-continue/model.safetensors "$OUT/fmnist-flexidit-lora-continue.safetensors"
      ;;
    train)
      # Side by side: the small model leaves the GPU mostly idle.
      for run in fmnist-flexidit fmnist-flexidit-lora; do
        rm -rf runs/$run
        (/usr/bin/time -f "$run wall %e s" $bin train configs/train/$run.yaml --device cuda 2>&1 | tail -3) &
      done
      wait
      for run in fmnist-flexidit fmnist-flexidit-lora; do cp runs/$run/log.jsonl "$OUT/$run-log.jsonl"; done
      cp runs/fmnist-flexidit/model.safetensors "$OUT/fmnist-flexidit.safetensors"
      cp runs/fmnist-flexidit-lora/model.safetensors "$OUT/fmnist-flexidit-lora.safetensors"
      ;;
    eval)
      # model|schedule[|cfg] triples; the dense original first.
      # The original at its own patch: a LoRA-mode file computes it bit for bit (ORIG may point there).
      for pair in ${PAIRS:-"${ORIG:-models/fmnist-dit.safetensors}|dense" "$flexa|dense" "$flexa|flexi-64" \
                  "$flexa|flexi-55" "$flexa|flexi-46" "$flexa|flexi-29" "$flexa|weak=4:1" "$flexb|flexi-55"}; do
        IFS='|' read -r m s c <<< "$pair"
        $bin eval -m "$m" --schedule "$s" --cfg-scale "${c:-$cfg}" -n 10000 --seed "${SEED:-0}" --device cuda 2>/dev/null \
          | python3 -c "import json,sys; j=json.load(sys.stdin); print(json.dumps(j))" >> "$OUT/eval.jsonl"
        tail -1 "$OUT/eval.jsonl" | cut -c1-400 >&2
      done
      ;;
    bench-lora)
      for merge in "" --merge-lora; do
        $bin bench -m "$flexb" -b 64 --patch 2,4 --path fast --sample-batch 64 --cfg-scale 1.5 $merge \
          --schedule "dense;flexi-64;flexi-55;flexi-46;flexi-29;cond=4:0.3,guide=4:1" --json >> "$OUT/bench-lora$merge.jsonl"
      done
      ;;
    bench)
      $bin bench -m "$flexa" -b 64,256 --patch 2,4 --path fast --sample-batch 64 --cfg-scale 1.5 \
        --schedule "dense;flexi-64;flexi-55;flexi-46;flexi-29" --json >> "$OUT/bench.jsonl"
      $bin bench -m FlexiDiT-XL/2 -b 8,16,32,64,128 --patch 2,4 --path fast --sample-batch 8 --cfg-scale 4 \
        --schedule "dense;flexi-64;flexi-55" --json >> "$OUT/bench.jsonl"
      $bin bench -m FlexiDiT-XL/2 -b 64 --path fast --sample-batch 64 --sample-reps 2 --cfg-scale 4 \
        --schedule "dense;flexi-64" --json >> "$OUT/bench.jsonl"
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
