#!/usr/bin/env bash
# The text-to-image model on the GPU machine (docs/TEXT.md), in stages that each fit a device call:
#   build   configure and build build-gpu, unpack Fashion-MNIST (scripts/gpu/flexidit.sh build)
#   test    the text and scene tests
#   train   start configs/train/$RECIPE.yaml (default scenes-dit) for STEPS steps (and LR_SCHEDULE when set) in the background
#           (runs/$RECIPE-STEPS; a run folder already there is resumed): it outlives the call while the machine
#           is kept warm
#   wait    wait for the run until it ends or UNTIL seconds (default 560) into the call; its log to $OUT
#   stop    stop the run now with a checkpoint and write its model at the step reached (common.sh stop_runs)
#   eval    the scene benchmark of $MODEL (default the run's model; EVAL_N images, default 8000 = 4 a prompt;
#           DDIM 50; EVAL_BATCH images a batch, default 500) at each guidance scale in $CFG (default 3); reports to $OUT, and the run's model and sample
#           grid when it is the run's
#   speed   batch-64 generation of the model: images/s of the fast path (CUDA graphs) and of eager launches, to
#           $OUT/speed-NAME.jsonl
#           (other bench options in BENCH_ARGS, e.g. "--frames 16,32,64 --mixing" for a video model)
# Video models train and evaluate through the same stages: RECIPE=scenes-video-ptdit or scenes-video-dit.
# Results go to $OUT.
source "$(dirname "$0")/common.sh"
steps=${STEPS:-30000}
recipe_name=${RECIPE:-scenes-dit}
run=runs/$recipe_name-$steps
model=${MODEL:-$run/model.safetensors}
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
        start_run $recipe_name $steps "${LR_SCHEDULE:+s|^lr_schedule: .*|lr_schedule: $LR_SCHEDULE|}"
      fi
      ;;
    wait) wait_for_run $run ${UNTIL:-560} ;;
    stop) stop_runs; wait_for_run $run 0 ;;
    eval)
      unpack_fmnist
      for cfg in ${CFG:-3}; do
        report="$OUT/scenes-eval-$(basename "$model" .safetensors)-cfg$cfg.json"
        $bin eval -m "$model" --cfg-scale "$cfg" -n "${EVAL_N:-8000}" --seed 0 --device cuda --batch-size "${EVAL_BATCH:-500}" \
          2>/dev/null > "$report"
        python3 -c "import json,sys; s=json.load(open(sys.argv[1]))['scenes']; print(sys.argv[2], \
          s['ratio'], 'held-out/seen', s['held_out_over_seen'])" \
          "$report" "cfg $cfg" >&2
      done
      if [ "$model" = "$run/model.safetensors" ]; then
        collect "$model" "$recipe_name.safetensors"
        ls $run/samples/*.png | tail -1 | xargs -I{} cp {} "$OUT/$recipe_name-samples.png"
      fi
      ;;
    speed)
      name=$(basename "$model"); name=${name%%.*}
      [ "$model" = "$run/model.safetensors" ] && name=$recipe_name
      report="$OUT/speed-$name.jsonl"
      $bin bench -m "$model" ${BENCH_ARGS:--b 64 --path eager,fast --sample-batch 64 --steps 50} --json > "$report"
      cut -c1-300 "$report" >&2
      ;;
    *) echo "unknown stage $stage" >&2; exit 2 ;;
  esac
done
