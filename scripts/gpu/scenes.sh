#!/usr/bin/env bash
# The text-to-image model on the GPU machine (docs/TEXT.md), in stages that each fit a device call:
#   build   configure and build build-gpu, unpack Fashion-MNIST (scripts/gpu/flexidit.sh build)
#   test    the text and scene tests
#   train   start configs/train/scenes-dit.yaml for STEPS steps in the background (runs/scenes-dit-STEPS; a
#           run folder already there is resumed): it outlives the call while the machine is kept warm
#   wait    wait for the run until it ends or UNTIL seconds (default 560) into the call; its log to $OUT
#   stop    stop the run now with a checkpoint and write its model at the step reached (common.sh stop_runs)
#   eval    the scene benchmark of the run's model (EVAL_N images, default 8000 = 4 a prompt; DDIM 50; CFG $CFG)
#           and its sample grid; model, report and grid to $OUT
#   speed   batch-64 generation of the model: images/s of the fast path (CUDA graphs) and of eager launches
# Results go to $OUT.
source "$(dirname "$0")/common.sh"
steps=${STEPS:-30000}
run=runs/scenes-dit-$steps
for stage in "$@"; do
  echo "== $stage $(date +%T)" >&2
  case "$stage" in
    build) bash scripts/gpu/flexidit.sh build ;;
    test) build-gpu/tests/ditgen_tests "[text],[scenes]" 2>&1 | tail -4 ;;
    train)
      unpack_fmnist
      if [ -d "$run" ]; then
        setsid nohup $bin train "$run.yaml" --resume --device cuda >> "$run.out" 2>&1 < /dev/null &
      else
        start_run scenes-dit $steps "s|^lr_schedule: .*|lr_schedule: ${LR_SCHEDULE:-constant}|"
      fi
      ;;
    wait) wait_for_run $run ${UNTIL:-560} ;;
    stop) stop_runs; wait_for_run $run 0 ;;
    eval)
      $bin eval -m $run/model.safetensors --cfg-scale "${CFG:-3}" -n "${EVAL_N:-8000}" --seed 0 --device cuda \
        --batch-size 500 2>/dev/null > "$OUT/scenes-eval.json"
      cut -c1-600 "$OUT/scenes-eval.json" >&2
      cp $run/model.safetensors "$OUT/scenes-dit.safetensors"
      ls $run/samples/*.png | tail -1 | xargs -I{} cp {} "$OUT/scenes-dit-samples.png"
      ;;
    speed)
      $bin bench -m $run/model.safetensors -b 64 --path eager,fast --sample-batch 64 --steps 50 --json \
        > "$OUT/scenes-speed.jsonl"
      cut -c1-400 "$OUT/scenes-speed.jsonl" >&2
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
