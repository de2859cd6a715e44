#!/usr/bin/env bash
# CTest install_relocated: installs into a temporary prefix, then runs the installed ditgen on the shipped
# default model in a mount namespace where the LibTorch package folder (the venv) and the source tree's models
# and schedule presets are hidden under empty tmpfs mounts, as if ~/.cache/ditgen and the checkout were gone.
# Exits 77 (CTest: skipped) only where no mount namespace can be made (not root, or a container forbids it).
#   tests/install_test.sh BUILD_DIR TORCH_PACKAGES SOURCE_DIR
set -euo pipefail
build="$1" packages="$2" source="$3"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
prefix="$work/prefix"
fail() { echo "FAIL: $*"; exit 1; }

start=$SECONDS
cmake --install "$build" --prefix "$prefix" >/dev/null
echo "installed in $((SECONDS - start)) s, $(du -sh "$prefix" | cut -f1): $(ls "$prefix/lib/ditgen" 2>/dev/null | tr '\n' ' ')"
exe="$prefix/bin/ditgen"
[ -x "$exe" ] || fail "no $exe"
for f in share/ditgen/models/scenes-dit.safetensors share/ditgen/models/scenes-dit.md \
         share/ditgen/schedules/flexi-50-guided.yaml; do
  [ -f "$prefix/$f" ] || fail "$f not installed"
done

# Every library the installed binary loads resolves, and none into the LibTorch package folder.
libs="$(env -u LD_LIBRARY_PATH ldd "$exe")"
if grep -e "$packages" -e "not found" <<<"$libs"; then fail "libraries resolve outside the prefix (above)"; fi

hide=("$packages" "$source/models" "$source/configs/schedules")
if ! unshare --mount --propagation private mount -t tmpfs none "${hide[0]}" 2>/dev/null; then
  echo "skipped: no mount namespace here (unshare --mount needs root); the ldd check above passed"
  exit 77
fi
# shellcheck disable=SC2016
unshare --mount --propagation private bash -euo pipefail -c '
  exe="$1" prefix="$2" out="$3"; shift 3
  for d in "$@"; do mount -t tmpfs none "$d"; done
  [ -z "$(ls -A "$1")" ] || { echo "FAIL: $1 still visible"; exit 1; }
  run() { env -u LD_LIBRARY_PATH -u DITGEN_MODELS_DIR -u DITGEN_SCHEDULES_DIR -u DITGEN_MODEL "$exe" "$@"; }
  run generate "a red sneaker in the top left" -s 0 --steps 2 --device cpu -o "$out/sneaker.png"
  [ -s "$out/sneaker.png" ] || { echo "FAIL: no image written"; exit 1; }
  run info "$prefix/share/ditgen/models/fmnist-flexidit.safetensors" --schedule flexi-50-guided >/dev/null
' _ "$exe" "$prefix" "$work" "${hide[@]}"
echo "the installed ditgen generated an image with the venv and the source tree's models hidden"
