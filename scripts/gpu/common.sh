# Sourced by the GPU stage scripts: the repository root as working folder, $OUT for results, the unpacked
# Fashion-MNIST folder and the GPU build's binary.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${OUT:-/tmp/out}
mkdir -p "$OUT"
export DITGEN_FMNIST_DIR=/tmp/fmnist
bin=build-gpu/bin/ditgen
