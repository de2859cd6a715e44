#!/usr/bin/env bash
# IntLoRA's quality table on the GPU machine (docs/INTLORA.md, "Not done"), in one device call with the build
# (carry .deps; about 145 s of build, then at most DEADLINE - 145 s of this script):
#   export CALL_START=$(date +%s); bash scripts/gpu/scenes.sh build && bash scripts/gpu/intlora_table.sh 570
# or, the GPU build already there: bash scripts/gpu/intlora_table.sh [DEADLINE]
# For each subject (test-split Fashion-MNIST indices) and each method it fine-tunes the shipped text-to-image
# model on that subject with configs/train/scenes-subject-{lora,qlora,intlora}.yaml (same rank, steps, lr,
# batch, seed and subject settings: only the adapters and the quantization differ), then scores the model with
# `ditgen eval --subject INDEX --subject-word zq`. Methods:
#   lora               float LoRA (fp32 training and evaluation)
#   qlora-w8 qlora-w4  QLoRA W8A8 / W4A8 (float adapters beside the fake-quantized model, merged, re-quantized)
#   mul-w8 mul-w4      IntLoRA-MUL W8A8 / W4A8 (merged into the integers)
#   shift-w8 shift-w4  IntLoRA-SHIFT W8A8 / W4A8
# Every evaluation runs on $DEVICE in fp32 (quantized models through the integer linear's CUDA path, the same
# integers as on the CPU; QUANT_EVAL_DEVICE=cpu evaluates them on this machine's CPU cores instead, one thread each).
# A quantized run trains its STEPS steps on $DEVICE (its recipe set to STEPS + 1 steps, stopped by --stop-after
# STEPS with a checkpoint), and a CPU process resumes it with steps lowered to STEPS, which trains nothing and
# writes the grid (at SAMPLE_STEPS sampler steps) and the merged model: the merge runs where it was tested.
# (With a constant learning rate the extra step in the recipe changes nothing.)
# DEADLINE (default 420): seconds after this script starts (or after CALL_START, epoch seconds, when set) by
# which everything is done. Trainings still going EVAL_RESERVE seconds before it are stopped with a checkpoint
# (SIGTERM) and resumed with their steps lowered to where they stopped (common.sh stop_runs' semantics, in
# parallel; quantized runs on the CPU as above), which writes their models at once; evaluations still going
# FINAL_RESERVE seconds before it are killed (their figures are then missing from the table, which lists them).
# The tar is rewritten after every evaluation, so a call cut short still returns what was measured.
# Results: one tar, $OUT/intlora-table.tar.gz (eval-METHOD-sSUBJECT.json, info-*.json with each model's
# training record, log-*.jsonl training logs, *.out.tail, jobs.tsv with every job's times, settings.json),
# and $OUT/intlora-table.md (scripts/intlora_table.py's tables, when python3 is there). Models are not returned.
# Settings (environment): SUBJECTS, METHODS, STEPS and BATCH (default: the recipes'), EVAL_N (16 = one image per
# prompt), EVAL_STEPS (50), TRAIN_JOBS (trainings at once, 8), CPU_JOBS (CPU cores to use, nproc), GPU_EVAL_JOBS
# (6), EVAL_RESERVE (150), FINAL_RESERVE (15), SAMPLE_STEPS (sampler steps of each run's final 100-image sample
# grid and so of its model's sampler defaults, 1: the evaluations set their own steps, and the grids of quantized
# runs are drawn on the CPU), BASELINES=1 (also each method after 1 step at lr 1e-12, i.e. untrained: the
# float model, plain quantization, IntLoRA's starting point; evaluated for every subject; BASELINES=only runs
# just them),
# DEVICE (cuda; cpu for a dry run), DITGEN_BIN (default build-gpu/bin/ditgen).
# A CPU dry run (one subject, 2 steps, 2 images):
#   OUT=/tmp/itab-out DEVICE=cpu DITGEN_BIN=build/bin/ditgen SUBJECTS=17 STEPS=2 BATCH=2 EVAL_N=2 EVAL_STEPS=2 \
#     TRAIN_JOBS=1 CPU_JOBS=2 bash scripts/gpu/intlora_table.sh 1800
source "$(dirname "$0")/common.sh"
deadline=${1:-420}
# CALL_START (epoch seconds, e.g. exported before the build in the same device call) makes DEADLINE count from
# then: $SECONDS starts at the time already spent.
if [ -n "${CALL_START:-}" ]; then SECONDS=$(($(date +%s) - CALL_START)); fi
DEVICE=${DEVICE:-cuda}
bin=${DITGEN_BIN:-$bin}
SUBJECTS=${SUBJECTS:-"17 100 1234 4321 9000"}
METHODS=${METHODS:-"mul-w8 mul-w4 shift-w8 shift-w4 qlora-w8 qlora-w4 lora"}
EVAL_N=${EVAL_N:-16}
EVAL_STEPS=${EVAL_STEPS:-50}
TRAIN_JOBS=${TRAIN_JOBS:-8}
CPU_JOBS=${CPU_JOBS:-$(nproc)}
GPU_EVAL_JOBS=${GPU_EVAL_JOBS:-6}
QUANT_EVAL_DEVICE=${QUANT_EVAL_DEVICE:-$DEVICE}
EVAL_RESERVE=${EVAL_RESERVE:-150}
FINAL_RESERVE=${FINAL_RESERVE:-15}
SAMPLE_STEPS=${SAMPLE_STEPS:-1}
BASELINES=${BASELINES:-0}
dir=runs/intlora-table
res=$dir/results
rm -rf "$dir"
mkdir -p "$res"
[ -x "$bin" ] || { echo "no $bin: build first (bash scripts/gpu/scenes.sh build)" >&2; exit 1; }
unpack_fmnist

# The recipe of a method and the sed expressions that make it one subject's run.
recipe_of() { case "${1#u-}" in lora) echo scenes-subject-lora ;; qlora-*) echo scenes-subject-qlora ;; *) echo scenes-subject-intlora ;; esac; }
sed_of() {  # method subject
  local m=${1#u-} s="s|^  index: .*|  index: $2|"
  case "$m" in *-w8) s="$s; s|^  weights: .*|  weights: 8|" ;; *-w4) s="$s; s|^  weights: .*|  weights: 4|" ;; esac
  case "$m" in mul-*) s="$s; s|^  kind: .*|  kind: mul|" ;; shift-*) s="$s; s|^  kind: .*|  kind: shift|" ;; esac
  if [ -n "${BATCH:-}" ]; then s="$s; s|^batch_size: .*|batch_size: $BATCH|"; fi
  if [ "${1#u-}" != "$1" ]; then s="$s; s|^lr: .*|lr: 1.0e-12|"; fi   # untrained baseline
  echo "$s"
}
quantized() { [ "${1#u-}" != lora ]; }   # every method but float LoRA writes a quantized model
method_of() { local n=${1#eval:}; n=${n%%:*}; echo "${n%-s*}"; }

# Jobs run in the background; $dir/JOB.pid holds the ditgen process, $dir/JOB.rc its exit code once done.
# JOB is RUN (training on $DEVICE), RUN.finish (a quantized run's CPU finish) or eval:RUN:SUBJECT; RUN is
# METHOD-sSUBJECT.
log_job() { printf '%s\t%s\t%s\n' "$1" "$2" "$SECONDS" >> "$res/jobs.tsv"; }
# One core a job (OMP_NUM_THREADS=1), and glibc told to keep its memory (docs/QUANT.md, "CPU speed": LibTorch's
# fresh temporaries otherwise fault in zeroed pages on every call): a quantized model's CPU finish took 19.5 s
# instead of 29 s, an evaluation 10 % less time.
tunables=${GLIBC_TUNABLES:-glibc.malloc.mmap_threshold=268435456:glibc.malloc.trim_threshold=1073741824}
launch() {  # job, then the command
  local job=$1; shift
  rm -f "$dir/$job.rc" "$dir/$job.pid"
  (
    OMP_NUM_THREADS=1 GLIBC_TUNABLES=$tunables "$@" > "$dir/$job.out" 2>&1 < /dev/null &
    echo $! > "$dir/$job.pid"
    rc=0
    wait $! || rc=$?
    echo $rc > "$dir/$job.rc.tmp" && mv "$dir/$job.rc.tmp" "$dir/$job.rc"
  ) &
  log_job "$job" start
}
done_job() { [ -f "$dir/$1.rc" ]; }
stopped_step() { grep -o "stopped at step [0-9]*" "$1" | tail -1 | grep -o "[0-9]*$" || true; }

train_queue=()
if [ "$BASELINES" != only ]; then
  for s in $SUBJECTS; do for m in $METHODS; do train_queue+=("$m-s$s"); done; done
fi
if [ "$BASELINES" != 0 ]; then
  first=${SUBJECTS%% *}
  for m in $METHODS; do train_queue+=("u-$m-s$first"); done
fi
declare -A target=()  # RUN -> the steps it trains
start_training() {  # run
  local run=$1 m=${1%-s*} s=${1##*-s} r steps
  r=$(recipe_of "$m")
  steps=${STEPS:-$(sed -n 's/^steps: //p' "configs/train/$r.yaml")}
  if [ "${m#u-}" != "$m" ]; then steps=1; fi
  target[$run]=$steps
  recipe "$r" "$steps" "$dir/$run" "$(sed_of "$m" "$s")"
  printf 'sampler_defaults:\n  sampler: ddim\n  steps: %s\n  cfg_scale: 5.5\n  cfg_channels: 0\n' "$SAMPLE_STEPS" >> "$dir/$run.yaml"
  if quantized "$m"; then
    sed -i "s|^steps: .*|steps: $((steps + 1))|" "$dir/$run.yaml"
    launch "$run" "$bin" train "$dir/$run.yaml" --device "$DEVICE" --stop-after "$steps"
  else
    launch "$run" "$bin" train "$dir/$run.yaml" --device "$DEVICE"
  fi
}
# A quantized run stopped with a checkpoint at step N (N > 0) is resumed on the CPU with its steps set to N:
# the grid, the merge and model.safetensors. Returns 1 when there is nothing to finish.
start_finish() {  # run, out file to read the step from
  local run=$1 step
  step=$(stopped_step "$2")
  if [ ! -f "$dir/$run/checkpoint.safetensors" ] || [ -z "$step" ] || [ "$step" -lt 1 ]; then return 1; fi
  sed -i "s|^steps: .*|steps: $step|" "$dir/$run.yaml"
  launch "$run.finish" "$bin" train "$dir/$run.yaml" --resume --device cpu
}
training=()    # runs training on $DEVICE, not yet reaped
finishing=()   # RUN.finish jobs and resumes of cut float runs
eval_queue=()
evals_running=()
queue_evals() {  # a finished run's evaluations
  local run=$1 m=${1%-s*} s
  if [ "${m#u-}" != "$m" ]; then for s in $SUBJECTS; do eval_queue+=("eval:$run:$s"); done
  else eval_queue+=("eval:$run:${run##*-s}"); fi
}
start_eval() {  # eval:RUN:SUBJECT
  local job=$1 run m s dev
  IFS=: read -r _ run s <<< "$job"
  m=${run%-s*}
  if quantized "$m"; then dev=$QUANT_EVAL_DEVICE; else dev=$DEVICE; fi
  launch "$job" "$bin" eval -m "$dir/$run/model.safetensors" --subject "$s" --subject-word zq -n "$EVAL_N" \
    --steps "$EVAL_STEPS" --seed 0 --device "$dev" --dtype fp32 --progress none -o "$res/eval-$m-s$s.json"
}
on_cpu() { { quantized "$(method_of "$1")" && [ "$QUANT_EVAL_DEVICE" = cpu ]; } || [ "$DEVICE" = cpu ]; }
model_done() {  # run job: its model to the evaluations, or a note why there is none
  local job=$1 run=${1%.finish}
  log_job "$job" "end-rc$(cat "$dir/$job.rc")"
  if [ -f "$dir/$run/model.safetensors" ]; then
    queue_evals "$run"
    info "$run" &   # its training record (about 1 s), beside the scheduling
  else echo "$run: no model (rc $(cat "$dir/$job.rc")): $(tail -2 "$dir/$job.out" | tr '\n' ' ')" >&2; fi
}
info() {  # run: the model's description and training record, and the training log, to the results
  cp "$dir/$1/log.jsonl" "$res/log-$1.jsonl" 2>/dev/null || true
  OMP_NUM_THREADS=1 "$bin" info --json "$dir/$1/model.safetensors" > "$res/info-$1.json.tmp" 2>/dev/null &&
    mv "$res/info-$1.json.tmp" "$res/info-$1.json" || true
}

# Stops every run still training on $DEVICE (SIGTERM: a checkpoint after the step in flight), drops the queued
# ones, and resumes each stopped run with its steps lowered to where it stopped, in parallel: that writes its
# model (a quantized run's on the CPU).
cut_trainings() {
  local run step
  echo "$(date +%T) [$SECONDS s] cutting: ${#training[@]} runs training, ${#train_queue[@]} not started (${train_queue[*]})" >&2
  for run in "${train_queue[@]}"; do log_job "$run" dropped; done
  train_queue=()
  for run in "${training[@]}"; do
    until [ -s "$dir/$run.pid" ] || done_job "$run"; do sleep 0.2; done
    kill -TERM "$(cat "$dir/$run.pid")" 2>/dev/null || true
  done
  for run in "${training[@]}"; do while ! done_job "$run"; do sleep 1; done; done
  for run in "${training[@]}"; do
    log_job "$run" "end-rc$(cat "$dir/$run.rc")"
    step=$(stopped_step "$dir/$run.out")
    if [ -f "$dir/$run/model.safetensors" ]; then
      queue_evals "$run"   # a float run that had finished
    elif quantized "${run%-s*}" && start_finish "$run" "$dir/$run.out"; then
      echo "$run: stopped at step $step of ${target[$run]}, finished on the CPU" >&2
      log_job "$run" "cut-at-$step"
      finishing+=("$run.finish")
    elif [ -f "$dir/$run/checkpoint.safetensors" ] && [ -n "$step" ] && [ "$step" -gt 0 ]; then
      sed -i "s|^steps: .*|steps: $step|" "$dir/$run.yaml"
      echo "$run: stopped at step $step of ${target[$run]}, resumed to write its model" >&2
      log_job "$run" "cut-at-$step"
      launch "$run.finish" "$bin" train "$dir/$run.yaml" --resume --device "$DEVICE"
      finishing+=("$run.finish")
    else
      echo "$run: cut before its first step, no model" >&2
      log_job "$run" "cut-without-model"
    fi
  done
  training=()
}

# The results so far into $OUT/intlora-table.tar.gz (replaced atomically): after every evaluation, so a call cut
# short still returns what was measured.
# Files that change while tar reads them (an evaluation writing its report) make tar exit 1: the next pack
# takes them; only a failure (2) keeps the previous tar.
pack() {
  local rc=0
  tar --warning=no-file-changed -czf "$OUT/intlora-table.tar.gz.tmp" -C "$dir" results || rc=$?
  if [ "$rc" -le 1 ]; then mv "$OUT/intlora-table.tar.gz.tmp" "$OUT/intlora-table.tar.gz"; fi
}
settings() {
  local gpu
  gpu=$(nvidia-smi --query-gpu=name --format=csv,noheader 2>/dev/null | head -1 || true)
  cat > "$res/settings.json" <<EOF
{"subjects": "$SUBJECTS", "methods": "$METHODS", "steps": "${STEPS:-recipe}", "batch": "${BATCH:-recipe}",
 "eval_n": $EVAL_N, "eval_steps": $EVAL_STEPS, "train_jobs": $TRAIN_JOBS, "cpu_jobs": $CPU_JOBS,
 "sample_steps": $SAMPLE_STEPS, "device": "$DEVICE", "gpu": "$gpu",
 "cpu": "$(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | sed 's/^ //')", "nproc": $(nproc),
 "deadline": $deadline, "baselines": "$BASELINES", "commit": "$(git rev-parse HEAD 2>/dev/null || true)",
 "changed_files": "$(git status --porcelain 2>/dev/null | wc -l)"}
EOF
  cp configs/train/scenes-subject-{lora,qlora,intlora}.yaml "$res/"
}
settings
echo "$(date +%T) [$SECONDS s] ${#train_queue[@]} runs, deadline $deadline s" >&2

cut=0
while :; do
  # Reap: a finished quantized training goes on to its CPU finish; a finished model to its evaluations.
  left=()
  for run in "${training[@]}"; do
    if ! done_job "$run"; then left+=("$run"); continue; fi
    if quantized "${run%-s*}" && [ ! -f "$dir/$run/model.safetensors" ]; then
      log_job "$run" "end-rc$(cat "$dir/$run.rc")"
      if start_finish "$run" "$dir/$run.out"; then finishing+=("$run.finish")
      else echo "$run: no checkpoint to finish (rc $(cat "$dir/$run.rc")): $(tail -2 "$dir/$run.out" | tr '\n' ' ')" >&2; fi
    else
      model_done "$run"
    fi
  done
  training=("${left[@]}")
  left=()
  for job in "${finishing[@]}"; do if done_job "$job"; then model_done "$job"; else left+=("$job"); fi; done
  finishing=("${left[@]}")
  left=()
  for job in "${evals_running[@]}"; do
    if done_job "$job"; then
      log_job "$job" "end-rc$(cat "$dir/$job.rc")"
      [ "$(cat "$dir/$job.rc")" = 0 ] || echo "$job failed: $(tail -2 "$dir/$job.out" | tr '\n' ' ')" >&2
      pack
    else left+=("$job"); fi
  done
  evals_running=("${left[@]}")
  if [ "$cut" = 0 ] && [ "$SECONDS" -ge $((deadline - EVAL_RESERVE)) ] && [ $((${#training[@]} + ${#train_queue[@]})) -gt 0 ]; then
    cut=1
    cut_trainings
    continue
  fi
  while [ "${#training[@]}" -lt "$TRAIN_JOBS" ] && [ "${#train_queue[@]}" -gt 0 ]; do
    start_training "${train_queue[0]}"
    training+=("${train_queue[0]}")
    train_queue=("${train_queue[@]:1}")
  done
  # Evaluations: CPU ones on the cores the trainings and finishes leave, GPU ones up to GPU_EVAL_JOBS.
  cpu_busy=$((${#training[@]} + ${#finishing[@]}))
  gpu_evals=0
  for job in "${evals_running[@]}"; do
    cpu_busy=$((cpu_busy + 1))
    on_cpu "$job" || gpu_evals=$((gpu_evals + 1))
  done
  left=()
  for job in "${eval_queue[@]}"; do
    free=$((CPU_JOBS - cpu_busy))
    if ! on_cpu "$job" && [ "$gpu_evals" -ge "$GPU_EVAL_JOBS" ]; then free=0; fi
    if [ "$free" -gt 0 ]; then
      start_eval "$job"
      evals_running+=("$job")
      cpu_busy=$((cpu_busy + 1))
      on_cpu "$job" || gpu_evals=$((gpu_evals + 1))
    else left+=("$job"); fi
  done
  eval_queue=("${left[@]}")
  if [ $((${#training[@]} + ${#train_queue[@]} + ${#finishing[@]} + ${#evals_running[@]} + ${#eval_queue[@]})) -eq 0 ]; then
    break
  fi
  if [ "$SECONDS" -ge $((deadline - FINAL_RESERVE)) ]; then
    echo "$(date +%T) [$SECONDS s] deadline: killing ${#evals_running[@]} evaluations, ${#finishing[@]} finishes" \
      "and ${#training[@]} trainings; evaluations not started: ${eval_queue[*]}" >&2
    for job in "${evals_running[@]}" "${finishing[@]}" "${training[@]}"; do
      kill -KILL "$(cat "$dir/$job.pid" 2>/dev/null)" 2>/dev/null || true
      log_job "$job" killed
    done
    for job in "${eval_queue[@]}"; do log_job "$job" not-started; done
    break
  fi
  sleep 2
done

# Collect: the logs of runs without a model, the tails of every job's output; one tar.
sleep 2   # the last training records
for yaml in "$dir"/*.yaml; do
  run=$(basename "$yaml" .yaml)
  if [ ! -f "$res/log-$run.jsonl" ] && [ -f "$dir/$run/log.jsonl" ]; then cp "$dir/$run/log.jsonl" "$res/log-$run.jsonl"; fi
done
for f in "$dir"/*.out; do tail -5 "$f" > "$res/$(basename "$f").tail"; done
echo "$(date +%T) [$SECONDS s] done: $(ls "$res"/eval-*.json 2>/dev/null | wc -l) evaluations" >&2
pack
if command -v python3 > /dev/null; then
  python3 scripts/intlora_table.py "$res" > "$OUT/intlora-table.md" && cat "$OUT/intlora-table.md" || true
fi
