#!/usr/bin/env bash
# Trains the shipped models on the GPU machine (see docs/TRAINING.md). Two phases, so that each fits a
# device call: `start` builds, trains the classifier and starts the DiT run in the background; `finish`
# waits for it, evaluates, and copies the results to $OUT.
set -euo pipefail
cd "$(dirname "$0")/../.."
export DITGEN_FMNIST_DIR=/tmp/fmnist
bin=build-gpu/bin/ditgen
case "${1:-}" in
  start)
    DITGEN_NO_APT=1 BUILD_DIR=$PWD/build-gpu DITGEN_CMAKE_ARGS="-DDITGEN_STB_DIR=$PWD/.deps/stb -DDITGEN_GLOO_DIR=$PWD/.deps" \
      bash scripts/setup.sh 2>&1 | tail -2
    mkdir -p $DITGEN_FMNIST_DIR
    for f in .deps/fashion-mnist/*.gz; do gunzip -c "$f" > "$DITGEN_FMNIST_DIR/$(basename "${f%.gz}")"; done
    /usr/bin/time -f "classifier wall %e s" $bin train-classifier -o models/fmnist-classifier.safetensors \
      --device cuda --epochs 10
    rm -rf runs/fmnist-dit
    setsid nohup $bin train configs/train/fmnist-dit.yaml --device cuda > /tmp/train.log 2>&1 < /dev/null &
    ;;
  wait)
    while pgrep -f "ditgen train configs" > /dev/null && [ "$SECONDS" -lt "${2:-540}" ]; do sleep 10; done
    tail -3 /tmp/train.log
    ;;
  *) echo "usage: $0 start|wait [seconds]" >&2; exit 2 ;;
esac
